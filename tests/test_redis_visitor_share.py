"""A visitor's share of the Redis outbox (``DATACUE_OUTBOX_VISITOR_MAX``) is the SQLite outbox's: the
same check and default, and a WARNING when a visitor's share drops events. Real redis-server."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cue_front.outbox import Outbox
from cue_front.outbox.contract import Droppable
from cue_front.outbox.redis import RedisOutbox
from cue_front.redis_store import connect


@pytest.mark.parametrize("visitor_max", [0, -1])
def test_redis_refuses_a_visitor_max_below_one_like_sqlite(
    redis_url: str, tmp_path: Path, visitor_max: int
) -> None:
    with pytest.raises(ValueError, match="visitor_max must be at least 1"):
        Outbox(tmp_path / "outbox.sqlite3", visitor_max=visitor_max)
    with pytest.raises(ValueError, match="visitor_max must be at least 1"):
        RedisOutbox(connect(redis_url), visitor_max=visitor_max)


def test_redis_derives_the_share_as_sqlite_does(redis_url: str) -> None:
    for max_rows, share in [(100, 20), (100_000, 1000)]:
        outbox = RedisOutbox(connect(redis_url), max_rows=max_rows)
        try:
            assert outbox.visitor_max == share  # 1% of the cap, at least 20 (docs/delivery.md)
        finally:
            outbox.close()


@pytest.mark.parametrize("path", ["forward", "put"])
def test_a_visitors_share_dropping_events_is_logged_on_redis(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    journal = tmp_path / "intake" if path == "forward" else None
    outbox = RedisOutbox(connect(redis_url, timeout=5.0), journal=journal, visitor_max=20)
    try:
        with caplog.at_level(logging.WARNING, logger="cue_front"):
            for seq in range(25):
                body = b'{"seq":%d}' % seq
                if path == "forward":
                    outbox.put_event(body, "visitor:v1", droppable=Droppable.YES)
                else:
                    outbox.put("event", "POST", "", body, "visitor:v1", droppable=Droppable.YES)
            outbox.ingest()
            assert outbox.stats().dropped == 5
        (warning,) = [r for r in caplog.records if "dropped since the last report" in r.getMessage()]
        assert warning.levelno == logging.WARNING
        assert "held more than 20 unsent events (DATACUE_OUTBOX_VISITOR_MAX)" in warning.getMessage()
        if path == "forward":  # one forward: all five in the one warning
            assert warning.getMessage().startswith("datacue: 5 event(s) dropped")
    finally:
        outbox.close()
