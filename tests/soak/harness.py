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
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import requests

from tests.soak.emulator_process import API_KEY, API_SECRET
from tests.soak.shop import FailureRecorder

if TYPE_CHECKING:
    from cue_front.outbox import OutboxBackend

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
    #: Starts gunicorn again on the same port and instance folder (after :meth:`kill`).
    launch: Callable[[], subprocess.Popen[bytes]] | None = None
    workers: int = 2

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
        return kill_process(pid)

    def kill(self) -> set[int]:
        """SIGKILL the whole shop, master and workers (a host lost: ``kill -9`` of the pod); the
        local ports of the workers' TCP connections then. Its instance folder stays, as a disk
        that outlives the process does; :meth:`restart` starts the shop again on it."""
        os.kill(self.process.pid, signal.SIGSTOP)  # no replacement worker meanwhile
        ports: set[int] = set()
        for pid in self.worker_pids():
            ports |= kill_process(pid)
        self.process.kill()
        self.process.wait(10)
        return ports

    def restart(self) -> None:
        """Start gunicorn again, on the same port and instance folder (its journal included)."""
        assert self.launch is not None and self.process.poll() is not None
        self.process = self.launch()
        _wait_until_serving(self, self.workers)


def kill_process(pid: int) -> set[int]:
    """SIGSTOP, then SIGKILL process ``pid``; the local ports of its TCP connections when it died."""
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
    failures: Path | None = None,
) -> Iterator[Shop]:
    """``tests/soak/shop.py`` under gunicorn with ``workers`` sync workers on a loopback port.

    ``datacue`` is where DataCue is (an emulator's or a switch's config); ``config``
    overrides other ``DATACUE_*`` settings. ``preload`` loads the app in gunicorn's master
    before forking the workers (cue-front's outbox and delivery thread must survive the
    fork). Failed sends are recorded in ``failures`` (default ``directory/failures.sqlite3``;
    see ``shop.FailureRecorder``). The listening socket is made here and handed to
    gunicorn, so its port is known before gunicorn starts (and kept by ``Shop.restart``).
    """
    outbox = directory / "outbox.sqlite3"
    log = directory / "gunicorn.log"
    settings = shop_settings(directory, datacue, config, failures)
    port = [0]

    def launch() -> subprocess.Popen[bytes]:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart takes the port again
        listener.bind(("127.0.0.1", port[0]))
        listener.listen(256)
        listener.set_inheritable(True)
        port[0] = listener.getsockname()[1]
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
            with open(log, "a") as errors:
                return subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env={**os.environ, "SOAK_SHOP": json.dumps(settings)},
                    pass_fds=[listener.fileno()],
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                )
        finally:
            listener.close()

    shop = Shop("", outbox, log, launch(), launch, workers)
    shop.url = f"http://127.0.0.1:{port[0]}"
    try:
        _wait_until_serving(shop, workers)
        yield shop
    finally:
        _stop(shop.process, grace=20)


def shop_settings(
    directory: Path, datacue: dict[str, Any], config: dict[str, Any] | None, failures: Path | None
) -> dict[str, Any]:
    """The shop's ``SOAK_SHOP`` settings (see ``shop.create_app``), its failures file made."""
    failures_file = str(failures or directory / "failures.sqlite3")
    FailureRecorder.create(failures_file)
    return {
        "outbox": str(directory / "outbox.sqlite3"),
        "datacue": datacue,
        "config": config or {},
        "failures": failures_file,
    }


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


# -- delivery workers ---------------------------------------------------------------------------

#: ``flask`` on the soak shop's app (its settings in ``SOAK_SHOP``).
FLASK: list[str] = [sys.executable, "-m", "flask", "--app", "tests.soak.shop:create_app()"]
#: How a delivery worker process runs.
WORKER_COMMAND: list[str] = [*FLASK, "datacue", "worker"]


@dataclass
class WorkerProcess:
    """A delivery worker in a process of its own (``WORKER_COMMAND``), on the soak shop's settings;
    stopped with SIGTERM (the worker's clean shutdown)."""

    log: Path
    process: subprocess.Popen[bytes]
    launch: Callable[[], subprocess.Popen[bytes]]

    def kill(self) -> set[int]:
        """SIGKILL it; the local ports of its TCP connections then (see ``Shop.kill_worker``)."""
        ports = kill_process(self.process.pid)
        self.process.wait(10)
        return ports

    def restart(self) -> None:
        assert self.process.poll() is not None
        self.process = self.launch()


@contextmanager
def delivery_worker(
    directory: Path,
    datacue: dict[str, Any],
    *,
    config: dict[str, Any] | None = None,
    failures: Path | None = None,
) -> Iterator[WorkerProcess]:
    """A delivery worker process with an instance folder of its own (``directory``), delivering the
    outbox that ``config`` names (``DATACUE_OUTBOX_URL``); stopped with SIGTERM at the end."""
    settings = shop_settings(directory, datacue, config, failures)
    log = directory / "worker.log"

    def launch() -> subprocess.Popen[bytes]:
        with open(log, "a") as errors:
            return subprocess.Popen(
                WORKER_COMMAND,
                cwd=ROOT,
                env={**os.environ, "SOAK_SHOP": json.dumps(settings)},
                stdin=subprocess.DEVNULL,
                stdout=errors,
                stderr=subprocess.STDOUT,
            )

    worker = WorkerProcess(log, launch(), launch)
    try:
        yield worker
    finally:
        _stop(worker.process, grace=20)


# -- the driver ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One request of a visitor: ``kind`` is "event", "change" or "login"."""

    method: str
    path: str
    kind: str
    marker: str | None = None


@dataclass(frozen=True)
class Visit:
    """A marked step the shop accepted: whose, which of their steps, which shop answered, and when
    (``time.time()``: the request's start and its answer)."""

    visitor: int
    step: int
    marker: str
    kind: str
    shop: int
    started: float
    answered: float


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
    visits: list[Visit] = field(default_factory=list)  # every accepted marked step
    #: Store changes answered 503 (the outbox's Redis was down: nothing queued) and sent again.
    unavailable: int = 0


def drive(
    base_url: str | Sequence[str],
    visitors: Sequence[Sequence[Step]],
    *,
    threads: int,
    rate: float | None = None,
    pace: float = 0.0,
    on_progress: Callable[[int], None] | None = None,
    attempts: int = 5,
) -> Outcome:
    """Run every visitor's steps in order (one ``requests.Session`` each: their own cookies),
    ``threads`` visitors at a time, as fast as the shop answers or, with ``rate``, starting
    ``rate`` steps a second (the same load whatever the shop does meanwhile); with ``pace``, each
    visitor waits that many seconds (up to 40% more, at random) after each answer before its next
    step (reading the page), and the first ``threads`` visitors arrive within ``pace`` seconds.

    With several ``base_url``\\s (shops behind a load balancer without sticky sessions), a visitor's
    steps alternate between them, cookies and all. A step whose connection broke (a worker or a
    whole shop killed under it) is sent again with the same marker, to the next shop, up to
    ``attempts`` times; so is a store change answered 503 without being queued (the outbox's
    Redis was down), after a second. ``on_progress(steps_done)`` is called after every step."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
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

    pending: queue.SimpleQueue[tuple[int, Sequence[Step]]] = queue.SimpleQueue()
    for number, visitor in enumerate(visitors):
        pending.put((number, visitor))

    def run_visitor(visitor: int, steps: Sequence[Step], session: requests.Session) -> None:
        dice = random.Random(visitor)
        if pace and visitor < threads:
            time.sleep(dice.uniform(0, pace))  # the first visitors arrive over a while, not at once
        for index, step in enumerate(steps):
            if pace and index:
                time.sleep(pace * dice.uniform(1.0, 1.4))
            wait_for_slot()
            for attempt in range(attempts):
                shop = (visitor + index + attempt) % len(urls)
                started, began = time.time(), time.perf_counter()
                try:
                    response = session.request(step.method, urls[shop] + step.path, timeout=30)
                except requests.ConnectionError:
                    with lock:
                        if step.marker:
                            outcome.resent.append(step.marker)
                    time.sleep(0.05 * (attempt + 1))
                    continue
                elapsed = time.perf_counter() - began
                if response.status_code == 503 and response.headers.get("X-Soak-Queued") == "0":
                    with lock:
                        outcome.unavailable += 1
                    time.sleep(1.0)
                    continue
                with lock:
                    outcome.statuses[response.status_code] = outcome.statuses.get(response.status_code, 0) + 1
                    outcome.workers.add(response.headers.get("X-Soak-Worker", "?"))
                    if step.kind == "event":
                        outcome.latencies.append(elapsed)
                        outcome.server_seconds.append(float(response.headers.get("X-Soak-Seconds", "nan")))
                    if step.marker and response.status_code < 300:
                        if response.headers.get("X-Soak-Queued") == "1":
                            outcome.sent[step.marker] = step.kind
                            visit = Visit(visitor, index, step.marker, step.kind, shop, started, time.time())
                            outcome.visits.append(visit)
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
                number, steps = pending.get_nowait()
            except queue.Empty:
                return
            with requests.Session() as session:
                run_visitor(number, steps, session)

    pool = [threading.Thread(target=worker, name=f"soak-driver-{n}") for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return outcome


def shop_visitors(
    events: int, changes: int, visitors: int, *, first_event: int = 0, login_midway: bool = False
) -> list[list[Step]]:
    """``events`` page views (each tracking one marked event) and ``changes`` store changes, spread
    over ``visitors`` visitors; every other visitor logs in first (with ``login_midway``, halfway
    through their steps). A product's changes stay with one visitor, in order (create before
    update), as a shop's own save hooks would send them."""
    from tests.soak.ledger import change_marker, event_marker
    from tests.soak.shop import PAGE_KINDS

    plans: list[list[Step]] = [[] for _ in range(visitors)]
    for n in range(visitors):
        if n % 2 and not login_midway:
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
    if login_midway:
        for n in range(1, visitors, 2):
            plans[n].insert(len(plans[n]) // 2, Step("POST", f"/login/shopper-{n}", "login"))
    return plans


# -- waiting for the outbox ---------------------------------------------------------------------


def wait_for_drain(
    outbox: Path | OutboxBackend,
    seconds: float,
    *,
    log: IO[str] | None = None,
    missing: Callable[[], int] | None = None,
    quiet: float = 15.0,
) -> bool:
    """Wait until the shared outbox (a SQLite file, or an open backend) has nothing pending or in
    flight; False after ``seconds``.

    With ``missing`` (how many accepted markers DataCue has not yet), also until it is 0: an outbox
    in Redis can be empty while hosts' journals still hold events. Then an outbox that stays empty
    for ``quiet`` seconds while markers are still missing counts as drained: they are not coming.
    """
    from cue_front.outbox import Outbox

    deadline = time.monotonic() + seconds
    last_report = 0.0
    empty_since: float | None = None
    with Outbox(outbox) if isinstance(outbox, Path) else nullcontext(outbox) as backend:
        while True:
            stats = backend.stats()
            now = time.monotonic()
            left = missing() if missing is not None else 0
            if stats.pending + stats.in_flight == 0:
                empty_since = empty_since if empty_since is not None else now
                if left == 0 or now - empty_since >= quiet:
                    return True
            else:
                empty_since = None
            if now > deadline:
                return False
            if log is not None and now - last_report > 10:
                last_report = now
                log.write(
                    f"  draining: {stats.pending} pending, {stats.in_flight} in flight"
                    + (f", {left} accepted not yet at DataCue" if missing is not None else "")
                    + "\n"
                )
                log.flush()
            time.sleep(0.1 if missing is None else 0.5)
