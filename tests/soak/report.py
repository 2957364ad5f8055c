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
  - ``unexplained``: anything else (a row claimed twice, a lost acknowledgement).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cue_front.outbox import DeadLetter, Outbox, OutboxStats
from tests.soak.harness import Outcome
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
            f" delivered {self.outbox.delivered}, dead {self.outbox.dead}, refused {self.outbox.refused}",
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


def count(outcome: Outcome, directory: Path, outbox_path: Path, *, kill: Kill | None = None) -> SoakReport:
    """The report of a run whose driver saw ``outcome``; the ledger and failures are in ``directory``."""
    receipts = read_ledger(directory / "ledger.sqlite3")
    with Outbox(outbox_path) as outbox:
        dead_letters = outbox.dead_letters(limit=1_000_000)
        stats = outbox.stats()
    failures = read_failures(directory / "failures.sqlite3")
    return tally(outcome, receipts, failures, dead_letters, stats, kill)


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
    kill: Kill | None,
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
        if extra and kill is not None and kill.may_have_sent(copies[0]) and kill.at < copies[-1].started:
            causes["killed worker's unacknowledged batch"] += 1
            extra -= 1
        if extra and marker in resent_pages:
            causes["page re-requested after the kill"] += 1
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
