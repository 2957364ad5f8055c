"""The soak, short form: 1,000 events and 200 store changes through gunicorn into a faulty DataCue.

A shop served by gunicorn with two worker processes sharing one outbox; the
emulator, in a process of its own, answers 30% of requests with a 5xx, lets 5%
time out (its answer comes after the shop's read timeout) and drops 5% of
connections without an answer; one worker is killed with SIGKILL mid-run and
gunicorn replaces it. Once the outbox has drained, what DataCue accepted is
compared with what the shop accepted: nothing may be lost, every dead letter
must say why, and every duplicate must be explained. The long form (10,000
events, 2,000 changes) is ``make soak``; see ``tests/soak/``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from cue_front.outbox import DeliveryWorker
from tests.soak.scenarios import SoakPlan, SoakRun, soak

PLAN = SoakPlan(events=1000, changes=200, timeout=(0.5, 0.25), latency=0.6)

#: The rows one delivery worker claims at a time: at most what a killed worker had in hand.
BATCH: int = inspect.signature(DeliveryWorker).parameters["batch_size"].default


def check(run: SoakRun, plan: SoakPlan) -> None:
    """The goals of issue 7, as a user of the shop and of DataCue would check them."""
    report = run.report
    assert run.drained, report.text()
    assert run.driver_failures == []
    # Every page and change was answered and queued (the outbox is far from its cap).
    assert (report.events_sent, report.changes_sent, report.refused) == (plan.events, plan.changes, 0)
    # A worker died mid-run and gunicorn replaced it.
    assert run.killed is not None and run.killed not in run.workers_at_the_end
    assert len(run.workers_at_the_end) == 2 and run.workers_seen >= 3
    # The faults did happen: 5xx, dropped connections and timeouts, seen by the shop.
    assert {"500", "503", "dropped"} <= set(report.statuses), report.statuses
    # (A request past the read timeout is listened for until its lease nearly ends: "slow answer".)
    assert report.shop_failures.get("slow answer", 0) > 0, report.shop_failures
    # Nothing lost: every accepted event and change reached DataCue, and nothing else did.
    assert report.lost == [], report.text()
    assert report.unique == report.sent and report.unconfirmed_delivered == []
    # Every payload is valid and every fault is worth a retry: no dead letter. (Were there
    # any, each would carry DataCue's status and reason: see SoakReport.lines.)
    assert report.dead_letters == [], report.text()
    # Every extra copy is explained. The ones cue-front's own mechanics add come from the
    # killed worker's batch in hand, sent but not yet acknowledged: at most one batch (the
    # long form, 12,000 rows, also holds them to 1% of what was sent). The rest are answers
    # DataCue gave after the shop had given up on them: see tests/soak/report.py.
    assert report.unexplained == [], report.text()
    assert run.duplicates_by_design <= BATCH, report.text()
    assert report.outbox.pending + report.outbox.in_flight + report.outbox.dead == 0


def test_nothing_is_lost_through_faults_and_a_killed_worker(tmp_path: Path) -> None:
    check(soak(tmp_path, PLAN), PLAN)
