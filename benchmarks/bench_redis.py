"""Scale-out on Redis: delivery by one and by two worker processes, Redis against SQLite, the
journal's forwarder, and ``track()`` with either backend.

One ``redis-server`` (``benchmarks/redis_server.py``, on a free loopback port) with the
append-only file and ``appendfsync always``, the setting that loses nothing, for every row:

* **Two workers against one.** Queued events (:data:`EVENTS` from :data:`VISITORS` visitors, in
  the outbox's 16 partitions) drained by one, then by two worker processes, each a
  :class:`~cue_front.outbox.DeliveryWorker` with 32 requests in flight serving a
  :class:`~cue_front.outbox.redis.RedisOutbox`, into the loopback sink answering after 50 ms
  (DataCue's distance). Timed from the word go (the processes have started and opened their
  outbox) until the sink has received every event. Goal: two workers at least 1.8x one: the
  partitions, leases and claims must not cost what the second worker brings.
* **Redis against SQLite.** The same one worker on a SQLite outbox (``Outbox``), the same sink,
  the same 32 in flight. Goal: Redis at least 0.8x.
* **The forwarder.** :data:`FORWARD_EVENTS` events journaled by ``put_event`` (a quarter of the
  visitors logged in: a shared key; each kind of droppability), then moved into Redis by one
  ``ingest()``. Goal: at least 20,000 events/s.
* **track().** ``bench_events``' harness (a request context per call, 1,000 returning visitors)
  on two shops, one on SQLite and one on Redis, interleaved: with each shop's delivery thread
  running, then with each shop's delivery in a worker process of its own (on Redis, the worker
  forwards the shop's journal folder, as a worker on the same host does). Goal: Redis's p50 and
  p99 at most 1.1x SQLite's (the median of the rounds' ratios).

Each figure is the median of :data:`ROUNDS` interleaved rounds. Without ``redis-server`` the rows
are skipped, said in one line.
"""

from __future__ import annotations

import gc
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.bench_delivery import event_body
from benchmarks.bench_events import CART_EVENT, Shop, percentile, wait_until_drained
from benchmarks.loopback import API_KEY, WORKER_SOURCE, distant_sink, sink_state, wait_until, worker_arguments
from benchmarks.redis_server import RedisServer, redis_server_path
from benchmarks.report import Result
from cue_front.events import visitor_key
from cue_front.outbox.journal import journal_folder
from cue_front.redis_store import namespace

ROUNDS = 3
EVENTS = 4_000
VISITORS = 2_000
IN_FLIGHT = 32
PARTITIONS = 16
SINK_DELAY = 0.05
TWO_WORKERS_GOAL = 1.8
REDIS_VS_SQLITE_GOAL = 0.8
FORWARD_EVENTS = 20_000
FORWARD_ROUNDS = 5
FORWARD_GOAL = 20_000.0
TRACK_CALLS = 3_000
TRACK_ROUNDS = 9
TRACK_GOAL = 1.1
#: The outbox's Redis client's timeout per command, as the app's (``state.py``).
REDIS_TIMEOUT = 2.0

# -- delivery by worker processes ---------------------------------------------------------------


def fill_redis(url: str) -> None:
    """:data:`EVENTS` events queued in the Redis outbox the workers serve (through the journal)."""
    from cue_front.outbox.redis import RedisOutbox
    from cue_front.redis_store import connect

    client = connect(url, timeout=REDIS_TIMEOUT)
    client.flushdb()
    with tempfile.TemporaryDirectory(prefix="bench-redis-fill-") as folder:
        outbox = RedisOutbox(client, prefix="bench:", journal=folder, partitions=PARTITIONS)
        for seq in range(EVENTS):
            outbox.put_event(event_body(seq, seq % VISITORS), visitor_key(str(seq % VISITORS)))
        outbox.ingest()
        if outbox.unfinished() != EVENTS:
            raise RuntimeError(f"the outbox holds {outbox.unfinished()} rows, not {EVENTS}")
        outbox.close()
    client.close()


def fill_sqlite(path: Path) -> None:
    from cue_front.outbox import Outbox

    path.unlink(missing_ok=True)
    with Outbox(path) as outbox:
        for seq in range(EVENTS):
            outbox.put("event", "POST", "", event_body(seq, seq % VISITORS), visitor_key(str(seq % VISITORS)))
        outbox.checkpoint()


@contextmanager
def workers(
    where: str, port: int, count: int, prefix: str = "bench:", journal: str = ""
) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` worker processes on the outbox at ``where``, ready and waiting for the word go."""
    events_url = f"http://127.0.0.1:{port}/"
    arguments = worker_arguments(
        where, events_url, in_flight=IN_FLIGHT, partitions=PARTITIONS, prefix=prefix, journal=journal
    )
    command = [sys.executable, "-c", WORKER_SOURCE, *arguments]
    pipe = subprocess.PIPE
    started = [subprocess.Popen(command, stdin=pipe, stdout=pipe, text=True) for _ in range(count)]
    try:
        for process in started:
            assert process.stdout is not None
            if not process.stdout.readline().strip():
                raise RuntimeError(f"a worker did not start: {process.communicate(timeout=5)}")
        yield started
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def go(started: list[subprocess.Popen[str]]) -> None:
    for process in started:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()


def delivery_rate(where: str, port: int, count: int) -> float:
    """Events/s ``count`` workers deliver from the filled outbox at ``where`` into the sink."""
    sink_state(port, "/reset")
    with workers(where, port, count) as started:

        def delivered() -> bool:
            if any(process.poll() is not None for process in started):
                raise RuntimeError(f"a worker exited; the sink has {sink_state(port)}")
            return bool(sink_state(port)["received"] >= EVENTS)

        began = time.perf_counter()
        go(started)
        wait_until(delivered, 120, lambda: f"the workers did not deliver: {sink_state(port)}", interval=0.01)
        elapsed = time.perf_counter() - began
    received = sink_state(port)["received"]
    if received > EVENTS * 1.01:
        raise RuntimeError(f"{received} requests for {EVENTS} events")
    return EVENTS / elapsed


def measure_delivery(server: RedisServer, folder: Path) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"redis 1": [], "redis 2": [], "sqlite 1": []}
    sqlite_path = folder / "delivery.sqlite3"
    with distant_sink(SINK_DELAY) as port:
        for round_ in range(ROUNDS):
            order = ["redis 1", "redis 2", "sqlite 1"]
            for name in order[round_ % 3 :] + order[: round_ % 3]:  # each goes first in turn
                backend, count = name.split()
                if backend == "redis":
                    fill_redis(server.url)
                    rates[name].append(delivery_rate(server.url, port, int(count)))
                else:
                    fill_sqlite(sqlite_path)
                    rates[name].append(delivery_rate(str(sqlite_path), port, 1))
    for name, found in rates.items():
        print(f"  delivery, {name} worker(s): " + ", ".join(f"{r:,.0f}" for r in found) + " events/s",
              file=sys.stderr)  # fmt: skip
    return rates


# -- the forwarder ------------------------------------------------------------------------------


def forward_rate(url: str, folder: Path) -> float:
    """Events/s one ``ingest()`` moves from a full journal into Redis (the journaling not timed)."""
    from cue_front.outbox.contract import Droppable
    from cue_front.outbox.redis import RedisOutbox
    from cue_front.redis_store import connect

    client = connect(url, timeout=REDIS_TIMEOUT)
    client.flushdb()
    outbox = RedisOutbox(client, prefix="bench:", journal=folder, max_rows=10 * FORWARD_EVENTS)
    try:
        for seq in range(FORWARD_EVENTS):
            visitor = seq % VISITORS
            shared = visitor_key(f"a{visitor}") if visitor % 4 == 0 else None
            key = visitor_key(f"u{visitor}") if shared else visitor_key(f"a{visitor}")
            body = event_body(seq, visitor)
            outbox.put_event(body, key, droppable=Droppable(seq % 3), shared_key=shared)
        gc.collect()
        started = time.perf_counter()
        moved = outbox.ingest()
        elapsed = time.perf_counter() - started
        if moved != FORWARD_EVENTS or outbox.unfinished() != FORWARD_EVENTS:
            raise RuntimeError(f"forwarded {moved}, Redis holds {outbox.unfinished()}")
    finally:
        outbox.close()
        client.close()
    return FORWARD_EVENTS / elapsed


# -- track() ------------------------------------------------------------------------------------


Percentiles = dict[str, list[tuple[float, float]]]


def measure_track(url: str, folder: Path, sink_port: int) -> tuple[Percentiles, Percentiles]:
    """The p50 and p99 (us) of ``track()`` per round, on SQLite and on Redis: with each shop's
    delivery thread running, then with delivery in a worker process of each shop's own."""
    from cue_front import track

    shops = {
        "SQLite": Shop(folder / "sqlite", sink_port),
        "Redis": Shop(folder / "redis", sink_port, {"DATACUE_OUTBOX_URL": url}),
    }
    found: Percentiles = {name: [] for name in shops}
    apart: Percentiles = {name: [] for name in shops}

    def call(visitor: int) -> object:
        return track(CART_EVENT)

    try:
        for shop in shops.values():
            shop.timed(call, 1_000)  # the outbox opens, the thread starts, the caches fill
            shop.state.delivery.flush(60)
        names = list(shops)
        for round_ in range(TRACK_ROUNDS):
            for name in names[round_ % 2 :] + names[: round_ % 2]:  # each goes first in turn
                gc.collect()
                samples = shops[name].timed(call, TRACK_CALLS)
                found[name].append((percentile(samples, 0.5), percentile(samples, 0.99)))
                shops[name].state.delivery.flush(60)
        for shop in shops.values():
            shop.state.delivery.stop()
        redis_journal = str(journal_folder(shops["Redis"].outbox_path))
        with (
            workers(str(shops["SQLite"].outbox_path), sink_port, 1) as on_sqlite,
            workers(url, sink_port, 1, namespace(API_KEY), redis_journal) as on_redis,
        ):
            go(on_sqlite + on_redis)
            for round_ in range(TRACK_ROUNDS):
                for name in names[round_ % 2 :] + names[: round_ % 2]:
                    gc.collect()
                    samples = shops[name].timed(call, TRACK_CALLS)
                    apart[name].append((percentile(samples, 0.5), percentile(samples, 0.99)))
            for shop in shops.values():
                wait_until_drained(shop, 60)
    finally:
        for shop in shops.values():
            shop.state.delivery.stop()
            shop.state.outbox.close()
    for label, figures in (("thread", found), ("worker process", apart)):
        for name, rounds in figures.items():
            per_round = ", ".join(f"{p50:.1f}/{p99:.0f}" for p50, p99 in rounds)
            print(f"  track(), {name}, delivery {label}: p50/p99 per round, us: {per_round}", file=sys.stderr)
    return found, apart


# -- the table ----------------------------------------------------------------------------------


def run() -> list[Result]:
    if redis_server_path() is None:
        print("  bench_redis: skipped, redis-server is not installed (apt-get install redis-server)",
              file=sys.stderr)  # fmt: skip
        return []
    with RedisServer(append_only=True) as server, tempfile.TemporaryDirectory(prefix="bench-redis-") as name:
        folder = Path(name)
        forwards = [forward_rate(server.url, folder / f"journal-{n}") for n in range(FORWARD_ROUNDS)]
        print("  forwarding: " + ", ".join(f"{r:,.0f}" for r in forwards) + " events/s", file=sys.stderr)
        rates = measure_delivery(server, folder)
        with distant_sink(0.0) as port:
            tracked = measure_track(server.url_for(1), folder, port)
    return results(forwards, rates, *tracked)


def results(
    forwards: list[float], rates: dict[str, list[float]], tracked: Percentiles, apart: Percentiles
) -> list[Result]:
    one, two, sqlite = (statistics.median(rates[name]) for name in ("redis 1", "redis 2", "sqlite 1"))
    two_ratio = statistics.median(b / a for a, b in zip(rates["redis 1"], rates["redis 2"], strict=True))
    redis_ratio = statistics.median(a / b for a, b in zip(rates["redis 1"], rates["sqlite 1"], strict=True))
    forward = statistics.median(forwards)
    one_worker = f"{SINK_DELAY * 1000:g} ms, {IN_FLIGHT} in flight a worker"
    setting = f"{one_worker}, {PARTITIONS} partitions"
    track_rows = []
    names = ("SQLite", "Redis")
    for where, figures in (("delivery thread running", tracked), ("delivery in a worker process", apart)):
        for n, label in enumerate(("p50", "p99")):
            on_sqlite, on_redis = (statistics.median(one[n] for one in figures[k]) for k in names)
            pairs = zip(figures["Redis"], figures["SQLite"], strict=True)
            ratio = statistics.median(r[n] / s[n] for r, s in pairs)
            track_rows.append((f"{label}, {where}", on_sqlite, on_redis, ratio))
    return [
        Result(f"Redis delivery at {setting}: 2 worker processes vs 1", one, two, "events/s",
               f">= {TWO_WORKERS_GOAL:g}x one worker (median of {ROUNDS} rounds' ratios)",
               two_ratio >= TWO_WORKERS_GOAL),
        Result(f"1 worker at {one_worker}: Redis vs SQLite", sqlite, one, "events/s",
               f">= {REDIS_VS_SQLITE_GOAL:g}x SQLite (median of {ROUNDS} rounds' ratios)",
               redis_ratio >= REDIS_VS_SQLITE_GOAL),
        Result("journal -> Redis forwarding, appendfsync always", None, forward, "events/s",
               f">= {FORWARD_GOAL:,.0f} events/s (median of {FORWARD_ROUNDS} rounds)",
               forward >= FORWARD_GOAL),
        *(Result(f"track() {label}: on Redis vs on SQLite", on_sqlite, on_redis, "us",
                 f"<= {TRACK_GOAL:g}x (median of {TRACK_ROUNDS} rounds' ratios: {ratio:.2f}x)",
                 ratio <= TRACK_GOAL)
          for label, on_sqlite, on_redis, ratio in track_rows),
    ]  # fmt: skip


if __name__ == "__main__":
    from benchmarks.report import format_table

    print(format_table(run()))
