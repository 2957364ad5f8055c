"""The outage, short form: DataCue black-holed, then restored, under the load of a gunicorn shop.

DataCue accepts connections and never answers (a hung load balancer) for a
while, then comes back. Pages (``render_datacue`` and ``track()`` in the view)
must not slow down: their p99 latency during the outage stays within 1.2x of
the healthy rounds, measured under the same load in the same run, healthy and
black-holed rounds alternating. The outbox grows only to its configured cap
(``DATACUE_OUTBOX_MAX_ROWS``; store changes are still taken past it, events are
refused and each refusal logged), and once DataCue is back everything the shop
accepted is delivered. The long form is ``make soak``.
"""

from __future__ import annotations

from pathlib import Path

from tests.soak.scenarios import OutagePlan, OutageRun, outage, percentile

PLAN = OutagePlan(pages=1200, rounds=3, max_rows=300, changes=20)


def check(run: OutageRun, plan: OutagePlan) -> None:
    report = run.report
    # Pages never waited on DataCue: p99 during the outages within 1.2x of the healthy rounds.
    assert len(run.all_healthy) == len(run.all_outage) == plan.pages
    healthy, black_holed = percentile(run.all_healthy, 0.99), percentile(run.all_outage, 0.99)
    assert black_holed <= 1.2 * healthy, f"p99 {1000 * black_holed:.1f}ms vs {1000 * healthy:.1f}ms healthy"
    # The outbox grew only to its cap for events, plus the store changes accepted past it.
    assert max(run.rows) <= plan.max_rows + plan.changes
    assert max(run.rows) >= plan.max_rows  # the outages did reach the cap...
    # ...so events were refused there, each one counted and logged, never silently.
    assert len(run.refused) > 0
    assert report.outbox.refused == len(run.refused) + len(run.refused_otherwise)
    assert run.refusals_logged >= 1  # loudly, though not one line per refused event
    # While DataCue was up it kept up (the premise of the healthy rounds): nothing refused then.
    assert run.refused_otherwise == [], f"{len(run.refused_otherwise)} events refused while DataCue was up"
    assert run.changes_queued == plan.rounds * plan.changes  # store changes were all accepted
    # Back up, DataCue got everything the shop accepted, exactly once (it never answered late).
    assert run.drained
    assert report.lost == [] and report.dead_letters == []
    assert report.unique == report.sent
    assert report.outbox.pending + report.outbox.in_flight == 0


def test_pages_do_not_wait_on_a_black_holed_datacue_and_nothing_accepted_is_lost(tmp_path: Path) -> None:
    check(outage(tmp_path, PLAN), PLAN)
