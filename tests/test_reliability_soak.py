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

from pathlib import Path

from tests.soak.checks import check_soak
from tests.soak.scenarios import SoakPlan, soak

PLAN = SoakPlan(events=1000, changes=200, timeout=(0.5, 0.25), latency=0.6)


def test_nothing_is_lost_through_faults_and_a_killed_worker(tmp_path: Path) -> None:
    check_soak(soak(tmp_path, PLAN), PLAN)
