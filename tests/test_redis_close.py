"""Closing a Redis outbox (``state.close()`` at shutdown, tests) closes its client's connections too."""

from __future__ import annotations

from cue_front.outbox.redis import RedisOutbox
from cue_front.redis_store import connect


def test_close_closes_the_outbox_clients_connections(redis_url: str) -> None:
    observer = connect(redis_url, timeout=5.0)
    observer.ping()
    alone = len(observer.client_list())
    outbox = RedisOutbox(connect(redis_url, timeout=5.0))
    outbox.stats()
    assert len(observer.client_list()) > alone
    outbox.close()
    assert len(observer.client_list()) == alone
