"""The long forms of the reliability suite (``make soak``): the issue's full counts.

* Soak: 10,000 events and 2,000 store changes from 1,000 visitors through a
  two-worker gunicorn shop into an emulator answering 30% 5xx, 5% too late (past
  the shop's read timeout) and dropping 5% of connections; one worker SIGKILLed
  mid-run; gunicorn runs with ``--preload`` here (the short form without), so the
  app's outbox and delivery thread are forked into the workers. Same checks as
  the short form (``tests/test_reliability_soak.py``).
* Outage: 6,000 page views while healthy and 6,000 while DataCue is black-holed,
  in three alternating rounds. Same checks as ``tests/test_reliability_outage.py``.

* Multi-host: 10,000 events and 2,000 store changes from 400 visitors over two
  gunicorn shops (hosts) on one Redis with two worker processes; a shop, a worker
  and Redis killed mid-run. Same checks as ``tests/test_reliability_multihost.py``.

Each prints its report (run with ``-s`` to watch it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak.checks import check_multihost, check_outage, check_soak
from tests.soak.scenarios import MultiHostPlan, OutagePlan, SoakPlan, multihost, outage, soak

pytestmark = pytest.mark.soak

SOAK = SoakPlan(
    events=10_000,
    changes=2_000,
    visitors=1000,
    timeout=(0.5, 0.5),
    latency=1.0,
    drain_seconds=1800,
    preload=True,
)
OUTAGE = OutagePlan(pages=6000, rounds=3, max_rows=1000, changes=100, warmup=500)
MULTIHOST = MultiHostPlan(events=10_000, changes=2_000, visitors=400, drain_seconds=900)


def test_soak_10000_events_and_2000_store_changes(tmp_path: Path) -> None:
    run = soak(tmp_path, SOAK)
    check_soak(run, SOAK)
    # The goal: at most 1% duplicates, whatever their cause.
    assert run.report.duplicates <= 0.01 * run.report.sent, run.report.text()


def test_outage_of_a_black_holed_datacue(tmp_path: Path) -> None:
    check_outage(outage(tmp_path, OUTAGE), OUTAGE)


@pytest.mark.usefixtures("redis_installed")
def test_two_hosts_on_one_redis_with_a_shop_a_worker_and_redis_killed(tmp_path: Path) -> None:
    check_multihost(multihost(tmp_path, MULTIHOST), MULTIHOST)
