"""The multi-host soak, short form: two shops (hosts) on one Redis, two worker processes, faults everywhere.

Two gunicorn shops with instance (journal) folders of their own stand for two hosts;
both keep their outbox in one Redis (append-only file, ``appendfsync always``), and
two delivery worker processes drain it into the faulty emulator of the soak (30%
5xx, 5% answers past the read timeout, 5% dropped connections). Each visitor's
requests alternate between the shops, cookies and login included (no sticky
sessions). Mid-run one whole shop is killed with SIGKILL and started again on its
own folder, one worker likewise, and Redis is killed and started again from its
append-only file. Then every accepted event and store change must reach DataCue,
each visitor's events in the order they were made (where docs/redis.md promises
it: see ``MultiHostPlan.pace``), every duplicate explained and no dead letter. The
long form is ``make soak`` (``tests/soak/test_soak.py``), which also holds duplicates within 1%.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak.checks import check_multihost
from tests.soak.scenarios import MultiHostPlan, multihost

PLAN = MultiHostPlan(
    events=600, changes=120, visitors=80, timeout=(0.5, 0.25), latency=0.6, drain_seconds=300
)


@pytest.mark.usefixtures("redis_installed")
def test_two_hosts_on_one_redis_lose_nothing_and_keep_each_visitors_order(tmp_path: Path) -> None:
    check_multihost(multihost(tmp_path, PLAN), PLAN)
