"""What a killed pod can lose on Redis: how long an accepted event waits in the host's journal.

On Redis, ``track()`` still writes only to the host's own journal (a memory-mapped file); a web
process's forwarder thread (``cue-front-forwarder``, ``DATACUE_DELIVERY_THREAD`` off) moves it
into Redis soon after. A pod whose process is killed keeps its journal while its disk lasts (the
next start on that disk forwards it); a pod whose disk goes too loses what was journaled but not
yet forwarded. This measures that window: from ``track()`` returning to the event being in Redis
(``appendfsync always``), one event at a time with pauses between (each one wakes an idle
forwarder: the slow path), as another host's view of the outbox sees it.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_events import percentile
from benchmarks.loopback import wait_until
from benchmarks.report import Result

API_KEY = "bench-key"
API_SECRET = "bench-secret"
#: Events measured, one at a time.
EVENTS = 300
#: Seconds between two events: the forwarder is idle (asleep) when each comes.
GAP = 0.01
EVENT = {"type": "click", "subtype": "banner", "banner_id": "b1"}
#: The goal: the forwarder lingers 10 ms to gather events, then one script moves them.
WINDOW_GOAL_MS = 100.0


def run() -> list[Result]:
    from benchmarks.redis_server import RedisServer, redis_server_path

    if redis_server_path() is None:
        print("bench_redis_window: skipped, no redis-server (apt-get install redis-server)", file=sys.stderr)
        return []
    with RedisServer(append_only=True) as server, tempfile.TemporaryDirectory() as folder:
        windows = measure(server.url, Path(folder))
    p50, p99 = statistics.median(windows), percentile(windows, 0.99)
    return [
        Result(
            "journal -> Redis window p50 (an event a pod's lost disk could take)",
            None,
            p50,
            "ms",
            "information",
            True,
        ),
        Result(
            "journal -> Redis window p99 (appendfsync always)",
            None,
            p99,
            "ms",
            f"<= {WINDOW_GOAL_MS:g} ms",
            p99 <= WINDOW_GOAL_MS,
        ),
    ]


def measure(url: str, folder: Path) -> list[float]:
    """Milliseconds from each ``track()`` returning to its event being counted in Redis."""
    from flask import Flask

    from cue_front import DataCue, track
    from cue_front.outbox.redis import RedisOutbox
    from cue_front.redis_store import connect, namespace

    app = Flask("bench_redis_window")
    app.config.update(
        SECRET_KEY="bench-shop-secret",
        DATACUE_API_KEY=API_KEY,
        DATACUE_API_SECRET=API_SECRET,
        DATACUE_DELIVERY="outbox",
        DATACUE_DELIVERY_THREAD=False,  # so the process runs a forwarder, as a web process would
        DATACUE_OUTBOX_URL=url,
        DATACUE_OUTBOX_PATH=str(folder / "outbox.sqlite3"),
    )
    DataCue(app)
    # Another host's view: no journal of its own, so reading the counts forwards nothing.
    observer = RedisOutbox(connect(url, timeout=5.0), prefix=namespace(API_KEY))
    windows: list[float] = []
    try:
        with app.test_request_context("/"):
            for _ in range(EVENTS):
                before = observer.stats().pending
                started = time.perf_counter()
                track(EVENT, user_id="bench-visitor")
                wait_until(
                    lambda before=before: observer.stats().pending != before,
                    30,
                    "a tracked event did not reach Redis",
                    interval=0.0002,
                )
                windows.append(1000 * (time.perf_counter() - started))
                time.sleep(GAP)
    finally:
        observer.close()
        app.extensions["datacue"].close()
    return windows
