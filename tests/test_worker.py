"""Delivery outside the web process: ``flask datacue worker``, ``DATACUE_DELIVERY_THREAD = False``,
and the flush of a web process stopped with SIGTERM, each in real processes against the emulator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from cue_front import track
from cue_front.emulator import RunningEmulator
from cue_front.errors import ConfigurationError
from cue_front.outbox import Outbox
from cue_front.testing import TEST_API_SECRET
from tests.support.waiting import wait_for

FLASK = str(Path(sys.executable).with_name("flask"))
ROOT = Path(__file__).resolve().parents[1]
SHOP = "tests.support.worker_shop"
#: The delivery thread's name (cue_front.outbox.worker).
DELIVERY_THREAD = "cue-front-delivery"
#: Generous: a stopping process has DATACUE_SHUTDOWN_GRACE, and the interpreter its own start and end.
EXITS_WITHIN = 30.0


class Process:
    """A shop process whose output (standard output and error together) is read as it comes."""

    def __init__(self, arguments: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            arguments, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str) -> str:
        def seen() -> bool:
            assert self.popen.poll() is None or any(text in line for line in self.lines), self.output
            return any(text in line for line in self.lines)

        wait_for(seen)
        return next(line for line in self.lines if text in line)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum``; the exit status once the process has ended (it must, within EXITS_WITHIN)."""
        self.popen.send_signal(signum)
        try:
            code = self.popen.wait(EXITS_WITHIN)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"still running {EXITS_WITHIN}s after {signum!r}:\n{self.output}") from None
        self._reader.join(10)
        return code

    def kill(self) -> None:
        """Kill it if it still runs; in any case reap it and close its pipe."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._reader.join(10)
        assert self.popen.stdout is not None
        self.popen.stdout.close()


@pytest.fixture
def shop_env(tmp_path: Path, emulator: RunningEmulator) -> Callable[..., dict[str, str]]:
    """The environment of a shop process with the instance folder ``tmp_path/<host>`` (one folder,
    so one journal, a host); keywords are settings."""

    def make(host: str = "instance", **config: Any) -> dict[str, str]:
        settings = {"instance": str(tmp_path / host), "config": {**emulator.config, **config}}
        return {**os.environ, "PYTHONPATH": str(ROOT), "WORKER_SHOP": json.dumps(settings)}

    return make


@pytest.fixture
def processes() -> Iterator[Callable[[list[str], dict[str, str]], Process]]:
    """Start shop processes; whatever is still running at the end of the test is killed."""
    started: list[Process] = []

    def start(arguments: list[str], env: dict[str, str]) -> Process:
        process = Process(arguments, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def start_worker(processes: Callable[[list[str], dict[str, str]], Process], env: dict[str, str]) -> Process:
    worker = processes([FLASK, "--app", SHOP, "datacue", "worker"], env)
    worker.wait_for_line("datacue worker: delivering")
    return worker


def queue(env: dict[str, str], events: int, changes: int = 0) -> str:
    """Queue from a process of its own (the shop's ``queue`` command); returns what it printed."""
    result = subprocess.run(
        [FLASK, "--app", SHOP, "queue", "--events", str(events), "--changes", str(changes)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def outbox_of(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "instance" / "datacue-outbox.sqlite3")


def event_markers(emulator: RunningEmulator) -> Counter[str]:
    """The events DataCue accepted, by marker (``ev-<n>``)."""
    accepted = [item for item in emulator.events() if item["status"] in (200, 204)]
    return Counter(item["body"]["event"]["banner_id"] for item in accepted)


def change_markers(emulator: RunningEmulator) -> Counter[str]:
    accepted = [item for item in emulator.requests(type="categories.create") if item["status"] in (200, 201)]
    return Counter(item["body"]["category_id"] for item in accepted)


def test_a_worker_delivers_what_web_processes_without_a_thread_queue(
    tmp_path: Path,
    emulator: RunningEmulator,
    shop_env: Callable[..., dict[str, str]],
    processes: Callable[[list[str], dict[str, str]], Process],
) -> None:
    worker = start_worker(processes, shop_env(DATACUE_DELIVERY_THREAD=False))
    start_line = worker.wait_for_line("datacue worker: delivering")
    assert "datacue-outbox.sqlite3" in start_line and "64 requests in flight" in start_line

    printed = queue(shop_env(DATACUE_DELIVERY_THREAD=False), events=20, changes=5)

    assert "queued 20 events, 5 changes" in printed
    assert DELIVERY_THREAD not in printed  # the web process never started a delivery thread
    # Its events sit in its journal, in the instance folder the worker shares: the worker takes them.
    wait_for(lambda: len(event_markers(emulator)) == 20 and len(change_markers(emulator)) == 5)
    assert worker.stop() == 0
    assert event_markers(emulator) == Counter(f"ev-{n}" for n in range(20))  # each once
    assert change_markers(emulator) == Counter(f"ch-{n}" for n in range(5))
    assert "datacue worker: stopped; 0 row(s) wait" in worker.output
    assert TEST_API_SECRET not in worker.output
    stats = outbox_of(tmp_path).stats()
    assert (stats.pending, stats.in_flight, stats.delivered) == (0, 0, 25)


def test_sigterm_mid_flow_finishes_what_is_in_flight_and_hands_back_the_rest(
    tmp_path: Path,
    emulator: RunningEmulator,
    shop_env: Callable[..., dict[str, str]],
    processes: Callable[[list[str], dict[str, str]], Process],
) -> None:
    queue(shop_env(DATACUE_DELIVERY_THREAD=False), events=40)
    emulator.set_faults(events={"latency": 1.0})  # each request stays in flight a second
    env = shop_env(DATACUE_DELIVERY_IN_FLIGHT=4, DATACUE_SHUTDOWN_GRACE=10)
    worker = start_worker(processes, env)
    wait_for(lambda: len(event_markers(emulator)) >= 4)  # the first four answered, the next in flight

    assert worker.stop(signal.SIGTERM) == 0

    # The answers awaited were recorded; the rest was handed back, not left under a lease.
    outbox = outbox_of(tmp_path)
    stats = outbox.stats()
    delivered = event_markers(emulator)
    assert stats.delivered == sum(delivered.values()) >= 4
    assert stats.in_flight == 0 and stats.pending == 40 - stats.delivered > 0
    assert "SIGTERM: stopping" in worker.output
    # The next worker takes the rest at once (no lease to run out first), and sends nothing twice.
    emulator.set_faults()
    second = start_worker(processes, env)
    wait_for(lambda: len(event_markers(emulator)) == 40)
    assert second.stop(signal.SIGINT) == 0  # Ctrl-C, as in a terminal
    assert event_markers(emulator) == Counter(f"ev-{n}" for n in range(40))
    assert outbox.unfinished() == 0


def test_a_web_process_stopped_with_sigterm_delivers_within_the_grace(
    tmp_path: Path,
    emulator: RunningEmulator,
    shop_env: Callable[..., dict[str, str]],
    processes: Callable[[list[str], dict[str, str]], Process],
) -> None:
    # A server with no SIGTERM handling of its own (flask run, waitress): before, SIGTERM killed it
    # with its rows in flight and in its journal. Now the flush at exit runs, for up to the grace,
    # which is longer than the 2 seconds it used to have: 8 requests answered after a second each.
    emulator.set_faults(events={"latency": 1.0})
    web = processes(
        [sys.executable, "-m", SHOP], shop_env(DATACUE_DELIVERY_IN_FLIGHT=1, DATACUE_SHUTDOWN_GRACE=30)
    )
    url = web.wait_for_line("serving ").split()[-1]
    for n in range(8):
        answer = requests.post(f"{url}/track/{n}", headers={"X-Visitor": f"visitor-{n}"}, timeout=10)
        assert answer.text == "queued"

    assert web.stop(signal.SIGTERM) == 128 + signal.SIGTERM  # an exit on SIGTERM, after the flush

    assert event_markers(emulator) == Counter(f"ev-{n}" for n in range(8))
    assert outbox_of(tmp_path).unfinished() == 0


def test_without_a_delivery_thread_nothing_is_sent_until_a_worker_delivers(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    app = make_app(DATACUE_DELIVERY="outbox", DATACUE_DELIVERY_THREAD=False, **emulator.config)
    state = app.extensions["datacue"]
    threads_before = set(threading.enumerate())
    with app.test_request_context("/"):
        assert track({"type": "click", "subtype": "banner", "banner_id": "ev-0"})
        state.queued.categories.create({"category_id": "ch-0", "name": "Sofas"})

    started = {thread.name for thread in set(threading.enumerate()) - threads_before}
    assert DELIVERY_THREAD not in started and not state.delivery.running
    assert emulator.events() == [] and state.outbox.unfinished() == 2
    # `flask datacue outbox flush` delivers in its own thread: it starts none either.
    result = app.test_cli_runner().invoke(args=["datacue", "outbox", "flush", "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert event_markers(emulator) == Counter(["ev-0"]) and change_markers(emulator) == Counter(["ch-0"])
    assert not state.delivery.running


def test_the_worker_refuses_when_nothing_is_queued(make_app: Callable[..., Flask]) -> None:
    app = make_app(DATACUE_DELIVERY="sync")
    result = app.test_cli_runner().invoke(args=["datacue", "worker"])
    assert result.exit_code == 1
    assert "DATACUE_DELIVERY is 'sync'" in result.output and 'DATACUE_DELIVERY = "outbox"' in result.output


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("DATACUE_DELIVERY_THREAD", "False", "DATACUE_DELIVERY_THREAD must be True or False, got 'False'"),
        ("DATACUE_SHUTDOWN_GRACE", -1, "DATACUE_SHUTDOWN_GRACE must be a number of seconds"),
        ("DATACUE_SHUTDOWN_GRACE", "10", "DATACUE_SHUTDOWN_GRACE must be a number of seconds"),
    ],
)
def test_the_new_settings_are_checked_at_init(
    make_app: Callable[..., Flask], setting: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_app(**{setting: value})


def test_the_start_line_never_shows_a_password_in_a_url() -> None:
    from cue_front.cli import _outbox_location

    location = _outbox_location({"DATACUE_OUTBOX_URL": "redis://default:hunter2@cache.internal:6379/0"})
    assert location == "redis://default:***@cache.internal:6379/0"
    assert _outbox_location({"DATACUE_OUTBOX_PATH": "/srv/shop/instance/datacue-outbox.sqlite3"}).endswith(
        "datacue-outbox.sqlite3"
    )


def host_env(shop_env: Callable[..., dict[str, str]], host: str, redis_url: str) -> dict[str, str]:
    """A process of one host (its own instance folder, so its own journal) of a shop on Redis,
    whose web processes start no delivery thread."""
    return shop_env(host=host, DATACUE_OUTBOX_URL=redis_url, DATACUE_DELIVERY_THREAD=False)


def test_on_redis_each_hosts_web_processes_forward_their_journal_to_another_hosts_worker(
    shop_env: Callable[..., dict[str, str]],
    emulator: RunningEmulator,
    redis_url: str,
    processes: Callable[[list[str], dict[str, str]], Process],
) -> None:
    # A web process that queues and exits: its journal is forwarded to Redis, on its forwarder
    # thread and at exit; no host but its own could read it.
    printed = queue(host_env(shop_env, "host-a", redis_url), events=10, changes=3)
    assert "cue-front-forwarder" in printed and DELIVERY_THREAD not in printed
    worker = start_worker(processes, host_env(shop_env, "host-w", redis_url))
    wait_for(lambda: len(event_markers(emulator)) == 10 and len(change_markers(emulator)) == 3)

    # A web process that keeps serving: what it takes reaches the worker while it runs.
    web = processes([sys.executable, "-m", SHOP], host_env(shop_env, "host-b", redis_url))
    url = web.wait_for_line("serving ").split()[-1]
    for n in range(10, 30):
        assert requests.post(f"{url}/track/{n}", headers={"X-Visitor": f"visitor-{n}"}, timeout=10).ok
    wait_for(lambda: len(event_markers(emulator)) == 30)
    assert web.stop(signal.SIGTERM) == 128 + signal.SIGTERM  # stopped cleanly, its journal handed over

    assert worker.stop() == 0
    assert event_markers(emulator) == Counter(f"ev-{n}" for n in range(30))  # each once
    assert change_markers(emulator) == Counter(f"ch-{n}" for n in range(3))


def test_a_worker_started_while_redis_is_down_waits_for_it_and_then_delivers(
    shop_env: Callable[..., dict[str, str]],
    emulator: RunningEmulator,
    redis_url: str,
    redis_server: Any,
    processes: Callable[[list[str], dict[str, str]], Process],
) -> None:
    redis_server.stop()  # a deploy where the workers come up before Redis does
    worker = processes(
        [FLASK, "--app", SHOP, "datacue", "worker"], host_env(shop_env, "host-w", redis_url)
    )
    worker.wait_for_line("the outbox does not answer now")
    worker.wait_for_line("datacue worker: delivering")
    redis_server.start()
    queue(host_env(shop_env, "host-a", redis_url), events=5)
    wait_for(lambda: len(event_markers(emulator)) == 5)
    assert worker.popen.poll() is None  # it never gave up
    assert worker.stop() == 0
    assert event_markers(emulator) == Counter(f"ev-{n}" for n in range(5))
