"""The recommendation cache uses the shared Redis only with ``DATACUE_SSR``: a shop without it sends
no Redis call when a visitor's event, logout or erasure forgets their (never kept) recommendations.
Counted by the real redis-server's own command statistics."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from cue_front import track
from cue_front.redis_store import connect


def deletes(redis_url: str) -> int:
    stats = connect(redis_url, timeout=5.0).info("commandstats")
    return int(stats.get("cmdstat_del", {}).get("calls", 0))


@pytest.mark.parametrize("ssr", [False, True])
def test_forgetting_costs_a_redis_call_only_with_ssr(
    make_app: Callable[..., Flask], redis_url: str, ssr: bool
) -> None:
    app = make_app(DATACUE_OUTBOX_URL=redis_url, DATACUE_SSR=ssr)
    datacue = app.extensions["datacue"].extension
    connect(redis_url, timeout=5.0).config_resetstat()
    with app.test_request_context("/"):
        assert track({"type": "click", "subtype": "banner", "banner_id": "b1"})
        datacue.forget("u1")
        datacue.end_visitor()
    assert (deletes(redis_url) > 0) is ssr
