"""Real processes for the reliability suite: the emulator, a gunicorn shop, the black-hole switch, a driver.

Everything runs as it would in production, on loopback: gunicorn with two sync
workers sharing one outbox file, the emulator (with its ledger) in a process of
its own, and the test process only sending requests and counting. Every process
is stopped in a ``finally``, whatever happens to the test.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from tests.soak.emulator_process import API_KEY, API_SECRET
from tests.soak.shop import FailureRecorder

ROOT = Path(__file__).resolve().parents[2]


def _stop(process: subprocess.Popen[Any], *, grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaped, pipes closed."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    finally:
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _read_line(process: subprocess.Popen[str], what: str, log: Path | None = None) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line:
        details = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        raise RuntimeError(f"{what} stopped before it was ready (exit {process.poll()}): {details}")
    return line


# -- the emulator -------------------------------------------------------------------------------


@dataclass
class EmulatorProcess:
    url: str
    ledger: Path
    process: subprocess.Popen[str]

    @property
    def config(self) -> dict[str, str]:
        return {
            "DATACUE_API_KEY": API_KEY,
            "DATACUE_API_SECRET": API_SECRET,
            "DATACUE_API_URL": f"{self.url}/v1",
            "DATACUE_EVENTS_URL": f"{self.url}/",
        }

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextmanager
def emulator_process(directory: Path, faults: dict[str, Any] | None = None) -> Iterator[EmulatorProcess]:
    """The emulator with its ledger in ``directory``, injecting ``faults`` (a fault plan)."""
    ledger = directory / "ledger.sqlite3"
    log = directory / "emulator.log"
    with open(log, "w") as errors:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.soak.emulator_process",
                "--ledger",
                str(ledger),
                "--faults",
                json.dumps(faults or {}),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        line = _read_line(process, "the emulator", log)
        assert line.startswith("ready "), line
        yield EmulatorProcess(line.split()[1], ledger, process)
    finally:
        _stop(process)


# -- the switch in front of DataCue -------------------------------------------------------------


class BlackHoleSwitch:
    """Talks to ``tests/soak/blackhole.py``; ``blackhole()`` and ``forward()`` are in force on return."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def _command(self, mode: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(mode + "\n")
        self.process.stdin.flush()
        answer = _read_line(self.process, "the black-hole switch")
        assert answer.startswith(f"ok {mode}"), answer

    def blackhole(self) -> None:
        self._command("blackhole")

    def forward(self) -> None:
        self._command("forward")

    def config(self, emulator: EmulatorProcess) -> dict[str, str]:
        """The shop's DataCue settings: the emulator's credentials, this switch's address."""
        return {**emulator.config, "DATACUE_API_URL": f"{self.url}/v1", "DATACUE_EVENTS_URL": f"{self.url}/"}


@contextmanager
def blackhole_switch(emulator: EmulatorProcess) -> Iterator[BlackHoleSwitch]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.soak.blackhole", "--target", f"127.0.0.1:{emulator.port}"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(process, "the black-hole switch")
        assert line.startswith("ready "), line
        yield BlackHoleSwitch(process, int(line.split()[1]))
    finally:
        _stop(process)


# -- the shop under gunicorn --------------------------------------------------------------------


@dataclass
class Shop:
    url: str
    outbox: Path
    log: Path
    process: subprocess.Popen[bytes]

    def worker_pids(self) -> list[int]:
        """The gunicorn workers alive now (the master's children)."""
        listing = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return sorted(int(pid) for pid in listing.stdout.split())

    def kill_worker(self, pid: int) -> set[int]:
        """SIGKILL worker ``pid``; the local ports of its TCP connections when it died.

        The worker is stopped (SIGSTOP) first, so that it opens no connection between the
        look at its sockets and its death. A request it wrote before it died can reach
        DataCue's handler after the kill: its port tells whose it was.
        """
        os.kill(pid, signal.SIGSTOP)
        try:
            return tcp_ports(pid)
        finally:
            os.kill(pid, signal.SIGKILL)


def tcp_ports(pid: int) -> set[int]:
    """The local ports of process ``pid``'s TCP sockets (Linux's /proc; elsewhere none)."""
    inodes = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for descriptor in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()  # sl, local address:port (hex), remote, state, ..., inode (the 10th)
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@contextmanager
def gunicorn_shop(
    directory: Path,
    datacue: dict[str, Any],
    *,
    config: dict[str, Any] | None = None,
    workers: int = 2,
    preload: bool = False,
) -> Iterator[Shop]:
    """``tests/soak/shop.py`` under gunicorn with ``workers`` sync workers on a loopback port.

    ``datacue`` is where DataCue is (an emulator's or a switch's config); ``config``
    overrides other ``DATACUE_*`` settings. ``preload`` loads the app in gunicorn's master
    before forking the workers (cue-front's outbox and delivery thread must survive the
    fork). Failed sends are recorded in
    ``directory/failures.sqlite3`` (see ``shop.FailureRecorder``). The listening socket
    is made here and handed to gunicorn, so its port is known before gunicorn starts.
    """
    outbox = directory / "outbox.sqlite3"
    log = directory / "gunicorn.log"
    settings = {
        "outbox": str(outbox),
        "datacue": datacue,
        "config": config or {},
        "failures": str(directory / "failures.sqlite3"),
    }
    FailureRecorder.create(settings["failures"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"fd://{listener.fileno()}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
        "--log-level",
        "warning",
        *(["--preload"] if preload else []),
        "tests.soak.shop:create_app()",
    ]
    try:
        with open(log, "w") as errors:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, "SOAK_SHOP": json.dumps(settings)},
                pass_fds=[listener.fileno()],
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
    finally:
        listener.close()
    shop = Shop(f"http://127.0.0.1:{port}", outbox, log, process)
    try:
        _wait_until_serving(shop, workers)
        yield shop
    finally:
        _stop(process, grace=20)


def _wait_until_serving(shop: Shop, workers: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    seen: set[str] = set()
    with requests.Session() as session:
        while len(seen) < workers:
            if shop.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {shop.log.read_text(errors='replace')[-3000:]}")
            try:
                response = session.get(f"{shop.url}/_soak/health", timeout=5)
                seen.add(response.headers["X-Soak-Worker"])
            except requests.ConnectionError:
                time.sleep(0.05)


# -- the driver ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One request of a visitor: ``kind`` is "event", "change" or "login"."""

    method: str
    path: str
    kind: str
    marker: str | None = None


@dataclass
class Outcome:
    """What the shop answered, as the driver saw it."""

    sent: dict[str, str] = field(default_factory=dict)  # marker -> "event" or "change", accepted
    refused: list[str] = field(default_factory=list)  # accepted by the page, refused by the outbox
    resent: list[str] = field(default_factory=list)  # sent again after the connection broke
    failures: list[str] = field(default_factory=list)  # steps that never got an answer
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, of "event" steps, in order
    server_seconds: list[float] = field(default_factory=list)  # the same, as the worker timed them
    workers: set[str] = field(default_factory=set)


def drive(
    base_url: str,
    visitors: Sequence[Sequence[Step]],
    *,
    threads: int,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    attempts: int = 5,
) -> Outcome:
    """Run every visitor's steps in order (one ``requests.Session`` each: their own cookies),
    ``threads`` visitors at a time, as fast as the shop answers or, with ``rate``, starting
    ``rate`` steps a second (the same load whatever the shop does meanwhile). A step whose
    connection broke (a worker killed under it) is sent again with the same marker, up to
    ``attempts`` times. ``on_progress(steps_done)`` is called after every step."""
    outcome = Outcome()
    lock = threading.Lock()
    done = [0]
    schedule = {"next": time.monotonic()}

    def wait_for_slot() -> None:
        if rate is None:
            return
        with lock:
            slot = schedule["next"]
            schedule["next"] = max(slot, time.monotonic() - 1.0) + 1.0 / rate
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    pending: queue.SimpleQueue[Sequence[Step]] = queue.SimpleQueue()
    for visitor in visitors:
        pending.put(visitor)

    def run_visitor(steps: Sequence[Step], session: requests.Session) -> None:
        for step in steps:
            wait_for_slot()
            for attempt in range(attempts):
                started = time.perf_counter()
                try:
                    response = session.request(step.method, base_url + step.path, timeout=30)
                except requests.ConnectionError:
                    with lock:
                        if step.marker:
                            outcome.resent.append(step.marker)
                    time.sleep(0.05 * (attempt + 1))
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    outcome.statuses[response.status_code] = outcome.statuses.get(response.status_code, 0) + 1
                    outcome.workers.add(response.headers.get("X-Soak-Worker", "?"))
                    if step.kind == "event":
                        outcome.latencies.append(elapsed)
                        outcome.server_seconds.append(float(response.headers.get("X-Soak-Seconds", "nan")))
                    if step.marker and response.status_code < 300:
                        if response.headers.get("X-Soak-Queued") == "1":
                            outcome.sent[step.marker] = step.kind
                        else:
                            outcome.refused.append(step.marker)
                    elif step.marker:
                        outcome.failures.append(f"{step.marker}: {response.status_code}")
                break
            else:
                with lock:
                    outcome.failures.append(f"{step.marker or step.path}: no answer after {attempts} tries")
            with lock:
                done[0] += 1
                count = done[0]
            if on_progress is not None:
                on_progress(count)

    def worker() -> None:
        while True:
            try:
                steps = pending.get_nowait()
            except queue.Empty:
                return
            with requests.Session() as session:
                run_visitor(steps, session)

    pool = [threading.Thread(target=worker, name=f"soak-driver-{n}") for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return outcome


def shop_visitors(events: int, changes: int, visitors: int, *, first_event: int = 0) -> list[list[Step]]:
    """``events`` page views (each tracking one marked event) and ``changes`` store changes, spread
    over ``visitors`` visitors; every other visitor logs in first. A product's changes stay with one
    visitor, in order (create before update), as a shop's own save hooks would send them."""
    from tests.soak.ledger import change_marker, event_marker
    from tests.soak.shop import PAGE_KINDS

    plans: list[list[Step]] = [[] for _ in range(visitors)]
    for n in range(visitors):
        if n % 2:
            plans[n].append(Step("POST", f"/login/shopper-{n}", "login"))
    # Events and changes interleaved evenly over the run, each appended to its visitor's plan.
    timeline: list[tuple[float, int, Step]] = []
    for n in range(events):
        seq = first_event + n
        marker = event_marker(seq)
        step = Step("GET", f"/page/{PAGE_KINDS[seq % len(PAGE_KINDS)]}/{marker}", "event", marker)
        timeline.append((n / events, seq % visitors, step))
    for seq in range(changes):
        kind = ("product", "product-update", "user" if (seq // 4) % 2 else "category", "order")[seq % 4]
        step = Step("POST", f"/change/{kind}/{change_marker(seq)}", "change", change_marker(seq))
        timeline.append((seq / changes, (seq // 4) % visitors, step))
    for _, visitor, step in sorted(timeline, key=lambda item: item[0]):
        plans[visitor].append(step)
    return plans


# -- waiting for the outbox ---------------------------------------------------------------------


def wait_for_drain(outbox_path: Path, seconds: float, *, log: IO[str] | None = None) -> bool:
    """Wait until the shared outbox has nothing pending or in flight; False after ``seconds``."""
    from cue_front.outbox import Outbox

    deadline = time.monotonic() + seconds
    last_report = 0.0
    with Outbox(outbox_path) as outbox:
        while True:
            stats = outbox.stats()
            if stats.pending + stats.in_flight == 0:
                return True
            now = time.monotonic()
            if now > deadline:
                return False
            if log is not None and now - last_report > 10:
                last_report = now
                log.write(f"  draining: {stats.pending} pending, {stats.in_flight} in flight\n")
                log.flush()
            time.sleep(0.1)
