"""The reliability scenarios, at any size: the short forms in ``make test`` and the long ones in ``make soak``
run these same functions with different counts.
"""

from __future__ import annotations

import math
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.soak.harness import (
    Outcome,
    Step,
    blackhole_switch,
    delivery_worker,
    drive,
    emulator_process,
    gunicorn_shop,
    shop_visitors,
    wait_for_drain,
)
from tests.soak.ledger import change_marker, read_ledger
from tests.soak.report import ForwardingGap, Kill, OrderReport, RedisRestart, SoakReport, count, visitor_order


def say(text: str) -> None:
    """Progress for whoever watches a long run (pytest -s); captured and quiet otherwise."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# -- the soak -----------------------------------------------------------------------------------


REFUSAL_LINE = re.compile(r"outbox full, (\d+) event\(s\) refused")


@dataclass(frozen=True)
class SoakPlan:
    events: int
    changes: int
    visitors: int = 200
    threads: int = 4
    #: The shop's (connect, read) timeout to DataCue; an injected latency past it is a "timeout".
    timeout: tuple[float, float] = (0.5, 0.5)
    #: Seconds an injected timeout holds the answer back (well past the read timeout).
    latency: float = 1.0
    #: Kill one gunicorn worker with SIGKILL once this share of the steps is done.
    kill_at: float = 0.4
    seed: int = 7
    drain_seconds: float = 300.0
    #: gunicorn --preload: the app is built in the master and forked into the workers.
    preload: bool = False

    def faults(self) -> dict[str, Any]:
        """30% 5xx, 10% timeouts and dropped connections (5% each), on both APIs."""
        return {
            "seed": self.seed,
            "error_500": 0.15,
            "error_503": 0.15,
            "drop": 0.05,
            "latency": self.latency,
            "latency_probability": 0.05,
        }

    def shop_config(self) -> dict[str, Any]:
        connect, read = self.timeout
        return {
            "DATACUE_TIMEOUT": [connect, read],
            # Short, so a killed worker's claimed rows go to the other worker within the run.
            "DATACUE_OUTBOX_LEASE_SECONDS": max(3.0, 2 * (connect + read) + 1.5),
            "DATACUE_DELIVERY_BACKOFF": [0.05, 1.0],
        }


@dataclass
class SoakRun:
    report: SoakReport
    #: The worker killed with SIGKILL, and the workers alive at the end (gunicorn replaced it).
    killed: int | None
    workers_at_the_end: list[int]
    #: Distinct workers that answered the driver: the two first ones and the replacement.
    workers_seen: int
    driver_failures: list[str]
    drained: bool
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def duplicates_by_design(self) -> int:
        """The duplicates cue-front's own mechanics decide (not answers DataCue gave too late)."""
        causes = self.report.causes
        return causes["killed worker's unacknowledged batch"] + causes["page re-requested after the kill"]


def soak(directory: Path, plan: SoakPlan) -> SoakRun:
    """Events and store changes through a two-worker gunicorn shop into a faulty DataCue; one worker
    SIGKILLed mid-run; then wait for the outbox to drain and count."""
    visitors = shop_visitors(plan.events, plan.changes, plan.visitors)
    total_steps = sum(len(steps) for steps in visitors)
    killed: list[int] = []
    kills: list[Kill] = []
    started = time.monotonic()
    seconds: dict[str, float] = {}
    with emulator_process(directory, plan.faults()) as emulator:
        with gunicorn_shop(
            directory, emulator.config, config=plan.shop_config(), preload=plan.preload
        ) as shop:
            kill_lock = threading.Lock()

            def maybe_kill(done: int) -> None:
                if killed or done < plan.kill_at * total_steps:
                    return
                with kill_lock:
                    if killed:
                        return
                    pids = shop.worker_pids()
                    at = time.time()
                    kills.append(Kill(at, frozenset(shop.kill_worker(pids[0]))))
                    killed.append(pids[0])
                    say(
                        f"  SIGKILL worker {pids[0]} ({len(kills[0].ports)} TCP connections open)"
                        f" after {done} of {total_steps} steps"
                    )

            say(
                f"soak: {plan.events} events, {plan.changes} store changes, {plan.visitors} visitors,"
                f" gunicorn with 2 workers{' (--preload)' if plan.preload else ''}"
            )
            outcome = drive(shop.url, visitors, threads=plan.threads, on_progress=maybe_kill)
            seconds["load"] = time.monotonic() - started
            say(f"  load done in {seconds['load']:.0f}s; draining the outbox")
            drained = wait_for_drain(shop.outbox, plan.drain_seconds, log=sys.stdout)
            seconds["drain"] = time.monotonic() - started - seconds["load"]
            workers_seen = len(outcome.workers)
            workers_at_the_end = shop.worker_pids()
        # Answers held back by an injected latency are still being written: let them land.
        time.sleep(plan.latency + 0.5)
    report = count(outcome, directory, shop.outbox, kill=kills[0] if kills else None)
    seconds["total"] = time.monotonic() - started
    say(report.text())
    say(f"  time: load {seconds['load']:.0f}s, drain {seconds['drain']:.0f}s, total {seconds['total']:.0f}s")
    return SoakRun(
        report,
        killed[0] if killed else None,
        workers_at_the_end,
        workers_seen,
        outcome.failures,
        drained,
        seconds,
    )


# -- the outage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutagePlan:
    #: Page views in each phase, healthy and black-holed: the same load both times.
    pages: int
    #: The phases alternate (healthy, outage, healthy, outage...) so that whatever else the
    #: machine does weighs on both alike; each outage ends with DataCue restored and the
    #: backlog delivered before the next healthy round starts.
    rounds: int = 3
    warmup: int = 300
    threads: int = 2
    #: Page views started per second, in every phase: a busy shop, well within what the
    #: emulator (one Python process) takes in, so that the healthy rounds are healthy.
    rate: float = 150.0
    visitors: int = 40
    #: Rows the outbox may hold for events (DATACUE_OUTBOX_MAX_ROWS); every outage reaches it.
    max_rows: int = 300
    #: Store changes queued during each outage (accepted even past the cap).
    changes: int = 20
    timeout: tuple[float, float] = (0.5, 0.5)
    drain_seconds: float = 120.0


@dataclass
class OutageRun:
    #: Page latencies as the visitors saw them, in seconds, per round.
    healthy: list[list[float]]
    outage: list[list[float]]
    #: The same pages as the shop's worker timed them (its own time on the request).
    healthy_in_worker: list[float]
    outage_in_worker: list[float]
    #: Rows in the outbox file, sampled every 0.2 s during the outages, and during the healthy rounds.
    rows: list[int]
    rows_healthy: list[int]
    max_rows: int
    changes_per_outage: int
    #: Pages whose event the full outbox refused (the page itself was served), during the outages
    #: and during the rest of the run (warm-up, healthy rounds).
    refused: list[str]
    refused_otherwise: list[str]
    changes_queued: int
    report: SoakReport
    drained: bool
    refusals_logged: int  # ERROR lines reporting refusals (rate-limited: one a minute per process)
    seconds: dict[str, float]

    @property
    def all_healthy(self) -> list[float]:
        return [latency for block in self.healthy for latency in block]

    @property
    def all_outage(self) -> list[float]:
        return [latency for block in self.outage for latency in block]

    @property
    def ratio(self) -> float:
        """p99 of page latency during the outages over p99 when healthy."""
        return percentile(self.all_outage, 0.99) / percentile(self.all_healthy, 0.99)

    @property
    def round_ratios(self) -> list[float]:
        """The same ratio for each outage round against the healthy round before it."""
        return [
            percentile(outage, 0.99) / percentile(healthy, 0.99)
            for healthy, outage in zip(self.healthy, self.outage, strict=True)
        ]


def outbox_rows(path: Path) -> int:
    """Rows in the outbox file now: pending, in flight, dead and delivered-but-not-yet-pruned."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        connection.close()


def percentile(samples: list[float], share: float) -> float:
    """The ``share`` quantile (0.99: p99) by the nearest-rank method."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def outage(directory: Path, plan: OutagePlan) -> OutageRun:
    """Healthy rounds and black-holed rounds under the same load, DataCue restored after each outage.

    Measures each page view's latency as the visitor sees it (``render_datacue`` and
    ``track()`` in the view) and as the worker timed it, samples the outbox's size
    (in both phases: the same work), and after the last recovery counts what
    reached DataCue.
    """
    connect, read = plan.timeout
    config = {
        "DATACUE_TIMEOUT": [connect, read],
        "DATACUE_OUTBOX_LEASE_SECONDS": 5.0,
        "DATACUE_DELIVERY_BACKOFF": [0.1, 1.0],
        "DATACUE_OUTBOX_MAX_ROWS": plan.max_rows,
        # This run is about the cap: no visitor's share (1% of the cap, at least 20) may bind
        # first, or 40 visitors would shed their page views before the outbox ever filled (the
        # share has its own tests, in tests/test_visitor_limits.py).
        "DATACUE_OUTBOX_VISITOR_MAX": plan.max_rows,
    }
    per_round = plan.pages // plan.rounds
    seconds = {"healthy": 0.0, "outage": 0.0, "recovery": 0.0}
    started = time.monotonic()
    outcomes: list[Outcome] = []
    healthy: list[Outcome] = []
    outages: list[Outcome] = []
    rows: list[int] = []
    rows_healthy: list[int] = []
    drained = True
    with emulator_process(directory) as emulator, blackhole_switch(emulator) as switch:
        with gunicorn_shop(directory, switch.config(emulator), config=config) as shop:

            def phase(name: str, visitors: list[list[Step]], samples: list[int]) -> Outcome:
                """Drive the visitors while sampling the outbox's size."""
                done = threading.Event()

                def sample() -> None:
                    while not done.wait(0.2):
                        samples.append(outbox_rows(shop.outbox))

                sampler = threading.Thread(target=sample, name=f"outbox-sampler-{name}")
                sampler.start()
                began = time.monotonic()
                try:
                    outcome = drive(shop.url, visitors, threads=plan.threads, rate=plan.rate)
                finally:
                    seconds[name] += time.monotonic() - began
                    done.set()
                    sampler.join()
                samples.append(outbox_rows(shop.outbox))
                outcomes.append(outcome)
                return outcome

            warmup = shop_visitors(plan.warmup, 0, plan.visitors, first_event=900_000)
            outcomes.append(drive(shop.url, warmup, threads=plan.threads, rate=plan.rate))
            drained &= wait_for_drain(shop.outbox, plan.drain_seconds)
            for round_ in range(plan.rounds):
                first = round_ * per_round
                visitors = shop_visitors(per_round, 0, plan.visitors, first_event=first)
                healthy.append(phase("healthy", visitors, rows_healthy))
                drained &= wait_for_drain(shop.outbox, plan.drain_seconds)

                switch.blackhole()
                visitors = shop_visitors(per_round, 0, plan.visitors, first_event=100_000 + first)
                # Store changes keep coming while DataCue is away (someone editing the catalog).
                changes = range(round_ * plan.changes, (round_ + 1) * plan.changes)
                visitors.append(
                    [
                        Step("POST", f"/change/category/{change_marker(n)}", "change", change_marker(n))
                        for n in changes
                    ]
                )
                outages.append(phase("outage", visitors, rows))
                switch.forward()
                began = time.monotonic()
                drained &= wait_for_drain(shop.outbox, plan.drain_seconds)
                seconds["recovery"] += time.monotonic() - began
            # One ERROR line a minute per process, each with the count since its last report.
            refusals_logged = len(REFUSAL_LINE.findall(shop.log.read_text(errors="replace")))
        time.sleep(0.5)
    everything = Outcome()
    for outcome in outcomes:
        everything.sent.update(outcome.sent)
        everything.refused.extend(outcome.refused)
        everything.resent.extend(outcome.resent)
    report = count(everything, directory, shop.outbox)
    seconds["total"] = time.monotonic() - started
    run = OutageRun(
        healthy=[outcome.latencies for outcome in healthy],
        outage=[outcome.latencies for outcome in outages],
        healthy_in_worker=[latency for outcome in healthy for latency in outcome.server_seconds],
        outage_in_worker=[latency for outcome in outages for latency in outcome.server_seconds],
        rows=rows,
        rows_healthy=rows_healthy,
        max_rows=plan.max_rows,
        changes_per_outage=plan.changes,
        refused=[marker for outcome in outages for marker in outcome.refused],
        refused_otherwise=[
            marker for outcome in outcomes if outcome not in outages for marker in outcome.refused
        ],
        changes_queued=sum(1 for outcome in outages for kind in outcome.sent.values() if kind == "change"),
        report=report,
        drained=drained,
        refusals_logged=refusals_logged,
        seconds=seconds,
    )
    say(outage_text(run))
    return run


def outage_text(run: OutageRun) -> str:
    def distribution(samples: list[float]) -> str:
        marks = ", ".join(
            f"p{int(share * 100)} {1000 * percentile(samples, share):.1f}ms" for share in (0.5, 0.9, 0.99)
        )
        return f"{len(samples)} pages: {marks}, max {1000 * max(samples):.1f}ms"

    rounds = ", ".join(f"{ratio:.2f}" for ratio in run.round_ratios)
    return "\n".join(
        [
            f"healthy:  {distribution(run.all_healthy)}",
            f"outage:   {distribution(run.all_outage)}",
            f"p99 outage / p99 healthy: {run.ratio:.2f} (round by round: {rounds})",
            f"in the worker, healthy: {distribution(run.healthy_in_worker)}",
            f"in the worker, outage:  {distribution(run.outage_in_worker)}",
            f"outbox rows while healthy: up to {max(run.rows_healthy)};"
            f" events refused while healthy: {len(run.refused_otherwise)}",
            f"outbox rows during the outages: up to {max(run.rows)} (events capped at {run.max_rows},"
            f" plus {run.changes_per_outage} store changes per outage); events refused at the cap:"
            f" {len(run.refused)} (logged: {run.refusals_logged});"
            f" store changes queued: {run.changes_queued}",
            f"after recovery: {run.report.unique} of {run.report.sent} accepted delivered,"
            f" {len(run.report.lost)} lost, {run.report.duplicates} duplicates, drained: {run.drained}",
            "time: " + ", ".join(f"{name} {value:.0f}s" for name, value in run.seconds.items()),
        ]
    )


# -- many hosts on one Redis --------------------------------------------------------------------


@dataclass(frozen=True)
class MultiHostPlan(SoakPlan):
    """The soak's faulty DataCue and timings, on two shops (hosts) sharing one Redis outbox.

    ``visitors`` is also how many are on the site at once (one driver thread each): each spends
    ``pace`` seconds on a page before the next, so the load is about ``visitors / pace`` requests a
    second whatever the machine's speed, and a run lasts about ``steps / that``.
    """

    visitors: int = 100
    #: Seconds each visitor waits after an answer before their next request. docs/redis.md, "Order
    #: across hosts": an event is ordered after another of its visitor when it is forwarded after it,
    #: and each host forwards soon after each track() and at least every second ("The forwarder":
    #: at every claim of a delivery thread, every 10 ms busy and at most every second idle; in web
    #: processes without one, a forwarder thread woken by track()). A visitor who waits longer than
    #: a second between two requests is ordered whichever shop serves them; 2.5 s leaves room for a
    #: loaded machine. (Faster visitors on two hosts are not promised order, and are not checked.)
    pace: float = 2.5
    #: When (share of the steps done) to SIGKILL one worker process, and how long it stays down.
    kill_worker_at: float = 0.3
    worker_down: float = 1.0
    #: When to SIGKILL Redis, and how long it stays down before it starts again from its
    #: append-only file. One whole shop is killed ``kill_shop_after`` seconds into that outage and
    #: started again on its own instance folder ``shop_down`` seconds after Redis is back. Its
    #: forwarder moves events into Redis within milliseconds while Redis answers, so a shop killed
    #: then leaves nothing behind; killed during the outage, its journal holds every event it took
    #: since Redis went down, which only the restart on its own folder delivers (a pod whose disk
    #: outlives it), and those events are checked.
    restart_redis_at: float = 0.6
    redis_down: float = 2.5
    kill_shop_after: float = 1.0
    shop_down: float = 1.5
    #: The shops' DATACUE_DELIVERY_THREAD: off, so only the two worker processes deliver (the web
    #: processes forward their journal into Redis on a thread that only forwards).
    shop_delivery_thread: bool = False
    #: Which of the faults to inject (a test of the test turns one off).
    faults_on: tuple[str, ...] = ("shop", "worker", "redis")

    def host_config(self, redis_url: str) -> dict[str, Any]:
        return {
            **self.shop_config(),
            "DATACUE_OUTBOX_URL": redis_url,
            "DATACUE_DELIVERY_THREAD": self.shop_delivery_thread,
        }


@dataclass
class Disruption:
    what: str
    at: float  # time.time() of the kill
    step: int  # steps done by then
    restarting: float = 0.0  # time.time() when it was started again
    back: float = 0.0  # time.time() once it serves again


@dataclass
class MultiHostRun:
    report: SoakReport
    order: OrderReport
    disruptions: list[Disruption]
    driver_failures: list[str]
    drained: bool
    #: Shops that answered each visitor, per visitor: the driver alternated (no sticky sessions).
    shops_per_visitor: dict[int, set[int]]
    changes_retried: int  # store changes answered 503 while Redis was down, and sent again
    redis_unfinished: int  # rows Redis still held (pending, in flight) at the end
    #: Events the killed shop accepted before its death that reached DataCue only after its
    #: restart: its journal's tail, which the restart on its own folder delivered.
    waited_for_restart: int
    #: Whether each shop and each worker process was running at the end: shop A, shop B, worker 1, 2.
    alive: list[bool]
    seconds: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        faults = ", ".join(
            f"{d.what} down {d.back - d.at:.1f}s after {d.step} steps" for d in self.disruptions
        )
        times = ", ".join(f"{name} {value:.0f}s" for name, value in self.seconds.items())
        return "\n".join(
            [
                self.report.text(),
                self.order.text(),
                f"faults: {faults or 'none'}",
                f"running at the end (shop A, shop B, worker 1, worker 2): {self.alive}",
                f"store changes sent again after a 503 (Redis down): {self.changes_retried}",
                f"events only the killed shop's restart delivered: {self.waited_for_restart}",
                f"time: {times}",
            ]
        )


def multihost(directory: Path, plan: MultiHostPlan) -> MultiHostRun:
    """Two gunicorn shops (hosts: instance folders of their own) and two delivery worker processes
    on one Redis (append-only, ``appendfsync always``), delivering into the faulty emulator; each
    visitor's requests alternate between the shops. Mid-run one shop, one worker and Redis are
    killed with SIGKILL and started again; then wait until everything accepted reached DataCue."""
    from benchmarks.redis_server import RedisServer
    from cue_front.outbox.redis import RedisOutbox
    from cue_front.redis_store import connect, namespace
    from tests.soak.emulator_process import API_KEY

    visitors = shop_visitors(plan.events, plan.changes, plan.visitors, login_midway=True)
    total_steps = sum(len(steps) for steps in visitors)
    failures = directory / "failures.sqlite3"
    hosts = [directory / name for name in ("shop-a", "shop-b", "worker-1", "worker-2")]
    for host in hosts:
        host.mkdir()
    started = time.monotonic()
    seconds: dict[str, float] = {}
    progress = [0]
    disruptions: list[Disruption] = []
    kills: list[Kill] = []
    restarts: list[RedisRestart] = []
    gaps: list[ForwardingGap] = []
    with (
        RedisServer(append_only=True) as redis,
        emulator_process(directory, plan.faults()) as emulator,
        ExitStack() as stack,
    ):
        config = plan.host_config(redis.url)
        shops = [
            stack.enter_context(gunicorn_shop(host, emulator.config, config=config, failures=failures))
            for host in hosts[:2]
        ]
        workers = [
            stack.enter_context(delivery_worker(host, emulator.config, config=config, failures=failures))
            for host in hosts[2:]
        ]
        outbox = stack.enter_context(RedisOutbox(connect(redis.url, timeout=10.0), prefix=namespace(API_KEY)))
        say(
            f"multi-host soak: {plan.events} events, {plan.changes} store changes, {plan.visitors} visitors"
            f" ({plan.pace}s between requests) over 2 gunicorn shops, 2 worker processes, one Redis (AOF)"
        )

        def wait_for_worker(known: set[bytes], seconds: float = 90.0) -> set[bytes]:
            """Wait until a worker process not in ``known`` takes part (its heartbeat in Redis)."""
            deadline = time.monotonic() + seconds
            while True:
                found: Any = outbox.client.zrange(outbox.keys + "workers", 0, -1)
                members = {bytes(member) for member in found}
                if members - known:
                    return members
                if time.monotonic() > deadline:
                    logs = "\n".join(w.log.read_text(errors="replace")[-2000:] for w in workers)
                    raise RuntimeError(f"no new delivery worker took part within {seconds}s: {logs}")
                time.sleep(0.1)

        def wait_for_step(share: float) -> int:
            while progress[0] < share * total_steps and driver.is_alive():
                time.sleep(0.05)
            return progress[0]

        def kill(what: str, action: Callable[[], set[int] | None]) -> Disruption:
            disruption = Disruption(what, time.time(), progress[0])
            ports = action()
            if ports is not None:
                kills.append(Kill(disruption.at, frozenset(ports)))
            say(f"  SIGKILL {what} after {disruption.step} of {total_steps} steps")
            disruptions.append(disruption)
            return disruption

        def start(disruption: Disruption, action: Callable[[], object]) -> None:
            disruption.restarting = time.time()
            action()
            disruption.back = time.time()

        def on_progress(done: int) -> None:
            progress[0] = max(progress[0], done)

        outcomes: list[Outcome] = []
        driver = threading.Thread(
            target=lambda: outcomes.append(
                drive(
                    [shop.url for shop in shops],
                    visitors,
                    threads=plan.visitors,
                    pace=plan.pace,
                    on_progress=on_progress,
                    attempts=30,
                )
            ),
            name="soak-driver",
        )
        known = wait_for_worker(set())
        while len(known) < len(workers):
            known = wait_for_worker(known)
        driver.start()
        try:
            if "worker" in plan.faults_on:
                wait_for_step(plan.kill_worker_at)
                worker = kill("worker 1", workers[0].kill)
                time.sleep(plan.worker_down)
                # Started again, it claims again (its heartbeat in Redis) before anything else dies.
                start(worker, workers[0].restart)
                wait_for_worker(known)
            wait_for_step(plan.restart_redis_at)
            if "redis" in plan.faults_on:
                redis_down = kill("Redis", lambda: redis.stop(kill=True))
                time.sleep(plan.kill_shop_after)
            if "shop" in plan.faults_on:
                shop_down = kill("shop A (master and workers)", shops[0].kill)
            if "redis" in plan.faults_on:
                time.sleep(max(0.0, plan.redis_down - plan.kill_shop_after))
                start(redis_down, redis.start)
                restarts.append(RedisRestart(redis_down.at, redis_down.back))
                # No shop forwards while Redis is down, nor for a second or two after it is back
                # (RETRY_AFTER_FAILURE, then the next wake): the visitors' order is not promised then.
                gaps.append(ForwardingGap(redis_down.at - plan.pace, redis_down.back + plan.pace))
            if "shop" in plan.faults_on:
                time.sleep(plan.shop_down)
                start(shop_down, shops[0].restart)
                # Events shop A journaled shortly before its death wait in its journal for the restart.
                gaps.append(ForwardingGap(shop_down.at - plan.pace, shop_down.back, shop=0))
        finally:
            driver.join()
        outcome = outcomes[0]
        seconds["load"] = time.monotonic() - started
        say(f"  load done in {seconds['load']:.0f}s; draining")

        def missing() -> int:
            delivered = {
                marker
                for receipt in read_ledger(emulator.ledger)
                if receipt.accepted
                for marker in receipt.markers
            }
            return len(set(outcome.sent) - delivered)

        drained = wait_for_drain(outbox, plan.drain_seconds, log=sys.stdout, missing=missing)
        seconds["drain"] = time.monotonic() - started - seconds["load"]
        # Answers held back by an injected latency are still being written: let them land.
        time.sleep(plan.latency + 0.5)
        report = count(outcome, directory, outbox, kills=kills, restarts=restarts)
        # What died and was started again still runs (a worker that exits is a silent stall).
        alive = [shop.process.poll() is None for shop in shops] + [w.process.poll() is None for w in workers]
        stats = outbox.stats()
    receipts = read_ledger(directory / "ledger.sqlite3")
    order = visitor_order(outcome.visits, receipts, gaps)
    # Events shop A took while Redis was down (a moment after its kill, so none had been
    # forwarded) and before its own death: only the restart on its folder could forward them.
    waited = 0
    down = {d.what.split()[0]: d for d in disruptions}
    if "shop" in down and "Redis" in down:
        reached: dict[str, float] = {}
        for receipt in receipts:
            if receipt.accepted:
                for marker in receipt.markers:
                    reached.setdefault(marker, receipt.started)
        shop, outage = down["shop"], down["Redis"]
        waited = sum(
            1
            for visit in outcome.visits
            if visit.shop == 0
            and outage.at + 0.25 < visit.answered < shop.at
            and reached.get(visit.marker, 0) > shop.restarting
        )
    shops_per_visitor: dict[int, set[int]] = {}
    for visit in outcome.visits:
        shops_per_visitor.setdefault(visit.visitor, set()).add(visit.shop)
    seconds["total"] = time.monotonic() - started
    run = MultiHostRun(
        report,
        order,
        disruptions,
        outcome.failures,
        drained,
        shops_per_visitor,
        outcome.unavailable,
        stats.pending + stats.in_flight,
        waited,
        alive,
        seconds,
    )
    say(run.text())
    return run
