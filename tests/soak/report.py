"""Counting a soak: what the shop accepted against what DataCue received, and why any copy is extra.

``sent`` is every marker the shop accepted (the page or change answered, and the
outbox took it). ``received`` counts the emulator's 2xx answers carrying a marker
(the ledger). Then:

* ``lost``: sent markers DataCue never accepted that are not visible dead letters;
* ``duplicates``: 2xx receipts beyond the first of each marker, each explained by
  what the shop saw (``failures``, recorded by the shop's ``FailureRecorder``):

  - ``unseen``: the shop's send of that row failed with a read timeout or a lost
    connection while DataCue had processed it (its answer came too late, or never
    arrived), so the shop sent it again. Any at-least-once sender does this when
    the API has no idempotency key; it cannot know the first copy arrived.
  - ``killed``: the row's first copy was accepted before the SIGKILL and the next
    one after it: the killed worker had sent it but not yet acknowledged it in the
    outbox (the worker acknowledges a batch at a time), so its lease ran out and
    another worker sent it again.
  - ``re-requested``: the page itself was requested again because the kill broke
    the connection to the shop, after the first request had queued its event.
  - ``Redis restart``: the row's first copy was accepted around a restart of the
    outbox's Redis and the next one after it: its acknowledgement failed while Redis
    was down (cue-front logs it and lets the lease run out), so it was sent again.
  - ``unexplained``: anything else (a row claimed twice, a lost acknowledgement).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from cue_front.outbox import DeadLetter, Outbox, OutboxBackend, OutboxStats
from tests.soak.harness import Outcome, Visit
from tests.soak.ledger import MARKER, Receipt, read_ledger

#: Failures after which DataCue may have processed the request all the same.
UNSEEN_ANSWER = ("did not answer in time", "could not be reached", "cut off")


@dataclass
class SoakReport:
    events_sent: int
    changes_sent: int
    refused: int
    attempts: int
    statuses: dict[str, int]
    received: int
    unique: int
    lost: list[str]
    dead_letters: list[DeadLetter]
    outbox: OutboxStats
    causes: dict[str, int] = field(default_factory=dict)
    shop_failures: dict[str, int] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)
    driver_resent: int = 0
    unconfirmed_delivered: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.events_sent + self.changes_sent

    @property
    def duplicates(self) -> int:
        return self.received - self.unique

    def share(self, count: int) -> str:
        return f"{count} ({100 * count / max(1, self.sent):.2f}% of sent)"

    def lines(self) -> list[str]:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        failures = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.shop_failures.items()))
        lines = [
            f"sent:         {self.sent} ({self.events_sent} events, {self.changes_sent} store changes)",
            f"delivered:    {self.unique} unique",
            f"duplicates:   {self.share(self.duplicates)}",
            *(f"  {cause}: {self.share(number)}" for cause, number in self.causes.items()),
            f"lost:         {len(self.lost)}",
            f"dead letters: {len(self.dead_letters)}",
            *(f"  {line}" for line in dead_letter_reasons(self.dead_letters)),
            f"refused by a full outbox: {self.refused}",
            f"requests DataCue saw: {self.attempts} ({statuses})",
            f"failed or slow sends the shop saw: {failures or 'none'}",
            f"pages requested again after a broken connection: {self.driver_resent}",
            f"outbox at the end: pending {self.outbox.pending}, in flight {self.outbox.in_flight},"
            f" delivered {self.outbox.delivered}, dead {self.outbox.dead}, refused {self.outbox.refused},"
            f" dropped {self.outbox.dropped}",
        ]
        if self.unconfirmed_delivered:
            lines.append(
                "delivered though the shop's answer to the page was lost (kill mid-request):"
                f" {len(self.unconfirmed_delivered)}"
            )
        if self.lost:
            lines.append(f"lost markers: {', '.join(self.lost[:50])}")
        if self.unexplained:
            lines.append(f"unexplained duplicates: {', '.join(self.unexplained[:50])}")
        return lines

    def text(self) -> str:
        return "\n".join(self.lines())


def markers_of(body: bytes) -> set[str]:
    return {found.decode() for found in MARKER.findall(body)}


def read_failures(path: Path) -> list[tuple[str, str]]:
    """``(marker, error)`` of every failed send the shop logged."""
    if not path.exists():
        return []
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT marker, error FROM failures ORDER BY at").fetchall()
    except sqlite3.OperationalError:  # no failure was ever logged: no table
        return []
    finally:
        connection.close()


#: A request a worker wrote just before it was killed reaches DataCue's handler within this long.
IN_FLIGHT_SECONDS = 5.0


@dataclass(frozen=True)
class Kill:
    """The SIGKILL of a shop worker: when, and the local ports of its connections then."""

    at: float
    ports: frozenset[int]

    def may_have_sent(self, receipt: Receipt) -> bool:
        """Whether ``receipt``'s request may be the killed worker's: it reached DataCue before
        the kill, or just after it over one of the worker's connections (written before it died)."""
        if receipt.started < self.at:
            return True
        return receipt.client_port in self.ports and receipt.started < self.at + IN_FLIGHT_SECONDS


@dataclass(frozen=True)
class RedisRestart:
    """The outbox's Redis down (killed) at ``down`` and answering again at ``up``."""

    down: float
    up: float

    #: An acknowledgement is written this long after DataCue's answer at the most (a batch of them).
    ACK_SECONDS = 2.0

    def may_have_lost_ack(self, receipt: Receipt) -> bool:
        """Whether the acknowledgement of ``receipt``'s row may have been tried while Redis was down."""
        answered = receipt.started + receipt.seconds
        return answered + self.ACK_SECONDS >= self.down and receipt.started < self.up


def count(
    outcome: Outcome,
    directory: Path,
    outbox: Path | OutboxBackend,
    *,
    kill: Kill | None = None,
    kills: Sequence[Kill] = (),
    restarts: Sequence[RedisRestart] = (),
) -> SoakReport:
    """The report of a run whose driver saw ``outcome``; the ledger and failures are in ``directory``,
    the outbox is a SQLite file or an open backend (the Redis outbox)."""
    receipts = read_ledger(directory / "ledger.sqlite3")
    with Outbox(outbox) if isinstance(outbox, Path) else nullcontext(outbox) as backend:
        dead_letters = backend.dead_letters(limit=1_000_000)
        stats = backend.stats()
    failures = read_failures(directory / "failures.sqlite3")
    every_kill = [*([kill] if kill else []), *kills]
    return tally(outcome, receipts, failures, dead_letters, stats, every_kill, restarts)


def _failure_kind(error: str) -> str:
    if "listening for its answer" in error:
        return "slow answer"  # past the read timeout, still listened for (not itself a failure)
    if "did not answer in time" in error:
        return "read timeout"
    if "could not be reached" in error or "cut off" in error:
        return "connection lost"
    for status in ("500", "503", "429"):
        if f"with {status}" in error or f"({status})" in error:
            return status
    return "other"


def tally(
    outcome: Outcome,
    receipts: list[Receipt],
    failures: list[tuple[str, str]],
    dead_letters: list[DeadLetter],
    stats: OutboxStats,
    kills: Sequence[Kill],
    restarts: Sequence[RedisRestart] = (),
) -> SoakReport:
    accepted: dict[str, list[Receipt]] = {}
    statuses: Counter[str] = Counter()
    for receipt in receipts:
        statuses[str(receipt.status) if receipt.status is not None else "dropped"] += 1
        if receipt.accepted:
            for marker in receipt.markers:
                accepted.setdefault(marker, []).append(receipt)
    unseen: Counter[str] = Counter()
    shop_failures: Counter[str] = Counter()
    for marker, error in failures:
        shop_failures[_failure_kind(error)] += 1
        if any(reason in error for reason in UNSEEN_ANSWER):
            unseen[marker] += 1
    causes = Counter(
        {
            "unseen answers (read timeout or lost connection)": 0,
            "killed worker's unacknowledged batch": 0,
            "page re-requested after the kill": 0,
            **({"acknowledgement lost in a Redis restart": 0} if restarts else {}),
            "unexplained": 0,
        }
    )
    unexplained = []
    resent_pages = set(outcome.resent)
    for marker, copies in accepted.items():
        extra = len(copies) - 1
        if extra <= 0:
            continue
        explained = min(extra, unseen[marker])
        causes["unseen answers (read timeout or lost connection)"] += explained
        extra -= explained
        # The first copy before the kill (or written by the killed worker, reaching DataCue just
        # after it), the last after it: sent by the killed worker, not acknowledged, sent again.
        for kill in kills:
            if extra and kill.may_have_sent(copies[0]) and kill.at < copies[-1].started:
                causes["killed worker's unacknowledged batch"] += 1
                extra -= 1
        if extra and marker in resent_pages:
            causes["page re-requested after the kill"] += 1
            extra -= 1
        for restart in restarts:
            if extra and restart.may_have_lost_ack(copies[0]) and restart.down < copies[-1].started:
                causes["acknowledgement lost in a Redis restart"] += 1
                extra -= 1
        if extra:
            causes["unexplained"] += extra
            unexplained.append(marker)
    dead_markers = set().union(*(markers_of(letter.body) for letter in dead_letters))
    lost = sorted(set(outcome.sent) - set(accepted) - dead_markers)
    return SoakReport(
        events_sent=sum(1 for kind in outcome.sent.values() if kind == "event"),
        changes_sent=sum(1 for kind in outcome.sent.values() if kind == "change"),
        refused=len(outcome.refused),
        attempts=len(receipts),
        statuses=dict(statuses),
        received=sum(len(copies) for copies in accepted.values()),
        unique=len(accepted),
        lost=lost,
        dead_letters=dead_letters,
        outbox=stats,
        causes=dict(causes),
        shop_failures=dict(shop_failures),
        unexplained=sorted(unexplained),
        driver_resent=len(resent_pages),
        unconfirmed_delivered=sorted(set(accepted) - set(outcome.sent) - set(outcome.refused)),
    )


def dead_letter_reasons(letters: list[DeadLetter]) -> list[str]:
    """One line per dead letter: what it was, the status and the error DataCue gave."""
    return [
        f"#{letter.id} {letter.kind} {letter.method} {letter.path or 'events'}"
        f" {sorted(markers_of(letter.body))}"
        f" -> {letter.status}: {letter.error} {json.dumps(letter.response_body)[:200]}"
        for letter in letters
    ]


# -- order ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardingGap:
    """A while during which events a shop journaled may wait to be forwarded into Redis, so that a
    visitor's later events (on another shop) may be forwarded, and sent, first: docs/redis.md promises
    order across hosts only to events forwarded in the order they happened. A killed shop
    (``shop``) forwards its journal's tail when it is back; while Redis is down (``shop`` None)
    no shop forwards."""

    start: float
    end: float
    shop: int | None = None

    def holds(self, visit: Visit) -> bool:
        return (self.shop is None or visit.shop == self.shop) and self.start <= visit.answered <= self.end


@dataclass
class OrderReport:
    """Each visitor's events as DataCue first accepted them, against the order the visitor made them."""

    #: Pairs (earlier, later) of one visitor's events compared, and how many of them were served
    #: by different shops.
    pairs: int = 0
    across_shops: int = 0
    #: Pairs left out: the earlier event was journaled in a forwarding gap (no order promised).
    exempt: int = 0
    violations: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [
            f"per-visitor order: {self.pairs} pairs of one visitor's events compared ({self.across_shops}"
            f" served by the two shops), {len(self.violations)} out of order; {self.exempt} pairs left out"
            " (the earlier event journaled while its shop or Redis could not forward it)"
        ]
        lines += [f"  out of order: {violation}" for violation in self.violations[:20]]
        return "\n".join(lines)


def visitor_order(
    visits: Sequence[Visit], receipts: Sequence[Receipt], gaps: Sequence[ForwardingGap]
) -> OrderReport:
    """Compare, for each visitor, every pair of their events (one made before the other: a visitor
    makes one request at a time) with the order in which DataCue first accepted them. Events never
    accepted are counted as lost elsewhere, not here."""
    first: dict[str, int] = {}
    for position, receipt in enumerate(receipts):
        if receipt.accepted:
            for marker in receipt.markers:
                first.setdefault(marker, position)
    by_visitor: dict[int, list[Visit]] = {}
    for visit in visits:
        if visit.kind == "event" and visit.marker in first:
            by_visitor.setdefault(visit.visitor, []).append(visit)
    report = OrderReport()
    for visitor, events in sorted(by_visitor.items()):
        events.sort(key=lambda visit: visit.step)
        for number, earlier in enumerate(events):
            later_ones = events[number + 1 :]
            if any(gap.holds(earlier) for gap in gaps):
                report.exempt += len(later_ones)
                continue
            for later in later_ones:
                report.pairs += 1
                report.across_shops += earlier.shop != later.shop
                if first[later.marker] < first[earlier.marker]:
                    report.violations.append(
                        f"visitor {visitor}: {later.marker} (shop {later.shop}) reached DataCue before"
                        f" {earlier.marker} (shop {earlier.shop}), made before it"
                    )
    return report
