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

from tests.soak.checks import check_outage
from tests.soak.scenarios import OutagePlan, outage

PLAN = OutagePlan(pages=1200, rounds=3, max_rows=300, changes=20)


def test_pages_do_not_wait_on_a_black_holed_datacue_and_nothing_accepted_is_lost(tmp_path: Path) -> None:
    check_outage(outage(tmp_path, PLAN), PLAN)
