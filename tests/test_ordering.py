"""Order across keys: a batch and the changes to the entities of its collection, a visitor before
and after their login. The outbox's claims (what may be sent now), the keys the queued client and
``track()`` give their rows, and older outbox files brought up to date."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from benchmarks.sink import Sink
from cue_front.events import deliver
from cue_front.outbox import Outbox, OutboxBackend, OutboxRow
from cue_front.queued import ordering_key, ordering_keys


@pytest.fixture
def outbox(any_outbox: OutboxBackend) -> Queue:
    """The claim tests are the contract: each runs on SQLite and on Redis."""
    return Queue(any_outbox)


class Queue:
    """An outbox seen by its rows' paths: what a claim hands out, acknowledged by path."""

    def __init__(self, outbox: OutboxBackend) -> None:
        self.outbox = outbox
        self.ids: dict[str, int] = {}
        self.held: list[int] = []

    def put(self, *args: Any, **options: Any) -> None:
        self.outbox.put(*args, **options)

    def put_event(self, *args: Any, **options: Any) -> None:
        self.outbox.put_event(*args, **options)

    def claim(self) -> list[OutboxRow]:
        rows = self.outbox.claim("w", limit=50)
        self.ids.update((row.path, row.id) for row in rows)
        self.held = [row.id for row in rows]
        return rows


def claimed_paths(outbox: Queue) -> list[str]:
    """What one claim hands out (every row it may, by their paths); the rows stay claimed."""
    return [row.path for row in outbox.claim()]


def ack_path(outbox: Queue, path: str) -> None:
    """Acknowledge the claimed row at ``path``."""
    outbox.outbox.ack([outbox.ids[path]])


def put_change(outbox: Queue, method: str, path: str) -> None:
    key, shared = ordering_keys(method, path, b"")
    outbox.put("rest", method, path, b"", key, shared_key=shared)


def release_all(outbox: Queue) -> None:
    outbox.outbox.release(outbox.held)


def test_a_batch_waits_for_earlier_changes_to_its_entities_and_holds_back_later_ones(outbox: Queue) -> None:
    put_change(outbox, "PUT", "/products/p1/v1")
    put_change(outbox, "POST", "/batch/products")  # p1 among its items
    put_change(outbox, "PUT", "/products/p2/v1")
    put_change(outbox, "DELETE", "/products/p1/v1")
    put_change(outbox, "PUT", "/categories/c1")

    # The batch waits for the change to p1 before it; p2's change waits for the batch.
    assert claimed_paths(outbox) == ["/products/p1/v1", "/categories/c1"]
    release_all(outbox)
    ack_path(outbox, "/products/p1/v1")
    assert claimed_paths(outbox) == ["/batch/products", "/categories/c1"]
    release_all(outbox)
    ack_path(outbox, "/batch/products")
    # Changes to two entities of one collection do not wait for each other.
    assert claimed_paths(outbox) == ["/products/p2/v1", "/products/p1/v1", "/categories/c1"]


def test_a_delete_of_a_whole_collection_is_ordered_like_a_batch(outbox: Queue) -> None:
    put_change(outbox, "POST", "/orders")  # no id in the path: the collection's key
    put_change(outbox, "DELETE", "/batch/orders/all")
    put_change(outbox, "PUT", "/orders/o1")

    assert claimed_paths(outbox) == ["/orders"]


def test_a_visitors_events_stay_in_order_across_their_login(outbox: Queue) -> None:
    outbox.put("event", "POST", "/a-1", b"{}", "visitor:a1")
    outbox.put("event", "POST", "/a-2", b"{}", "visitor:a1")
    # The login: the user id is known from now on; the anonymous id came along.
    outbox.put("event", "POST", "/login", b"{}", "visitor:u1", shared_key="visitor:a1")
    outbox.put("event", "POST", "/u-1", b"{}", "visitor:u1", shared_key="visitor:a1")
    outbox.put("event", "POST", "/b-1", b"{}", "visitor:b1")

    assert claimed_paths(outbox) == ["/a-1", "/b-1"]
    release_all(outbox)
    ack_path(outbox, "/a-1")
    assert claimed_paths(outbox) == ["/a-2", "/b-1"]
    release_all(outbox)
    ack_path(outbox, "/a-2")
    assert claimed_paths(outbox) == ["/login", "/b-1"]
    release_all(outbox)
    ack_path(outbox, "/login")
    assert claimed_paths(outbox) == ["/u-1", "/b-1"]


def test_an_anonymous_event_after_a_logged_in_one_of_that_browser_waits_for_it(outbox: Queue) -> None:
    outbox.put("event", "POST", "/u-1", b"{}", "visitor:u1", shared_key="visitor:a1")
    outbox.put("event", "POST", "/a-1", b"{}", "visitor:a1")  # a job passed the anonymous id alone

    assert claimed_paths(outbox) == ["/u-1"]


def test_a_dead_letter_holds_no_key_back_shared_or_not(outbox: Queue) -> None:
    put_change(outbox, "POST", "/batch/products")
    put_change(outbox, "PUT", "/products/p1/v1")
    (batch,) = outbox.claim()
    outbox.outbox.dead_letter(batch.id, status=400, error="refused", response_body=None)

    assert claimed_paths(outbox) == ["/products/p1/v1"]


def test_journaled_events_keep_their_shared_key(outbox: Queue) -> None:
    outbox.put_event(b'{"n":1}', "visitor:a1")
    outbox.put_event(b'{"n":2}', "visitor:u1", shared_key="visitor:a1")
    outbox.put_event(b'{"n":3}', "visitor:b1", shared_key="visitor:b2")

    assert [row.body for row in outbox.claim()] == [b'{"n":1}', b'{"n":3}']


def test_the_queued_client_keys_entities_by_collection_and_batches_by_theirs() -> None:
    assert ordering_keys("PUT", "/products/p1/v1", b"") == ("products/p1", "products")
    assert ordering_keys("POST", "/products", b'{"product_id":"p1"}') == ("products/p1", "products")
    assert ordering_keys("POST", "/orders/o1/cancel", b"") == ("orders/o1", "orders")
    assert ordering_keys("POST", "/batch/products", b"{}") == ("products", None)
    assert ordering_keys("DELETE", "/batch/users/all", b"") == ("users", None)
    # What forget() drops: the user's own key, unchanged.
    assert ordering_key("DELETE", "/users/u1", b"") == "users/u1"


@pytest.mark.parametrize(
    ("user", "key", "shared"),
    [
        ({"anonymous_id": "a1"}, "visitor:a1", None),
        ({"user_id": "u1", "anonymous_id": "a1"}, "visitor:u1", "visitor:a1"),
        ({"user_id": "u1"}, "visitor:u1", None),
    ],
)
def test_track_keys_an_event_by_its_user_and_shares_its_anonymous_id(
    make_app: Callable[..., Flask], sink: Sink, user: dict[str, str], key: str, shared: str | None
) -> None:
    app = make_app(DATACUE_DELIVERY="outbox", DATACUE_EVENTS_URL=sink.events_url, DATACUE_API_URL=sink.url)
    state = app.extensions["datacue"]
    envelope = {"user": user, "event": {"type": "login"}}
    with app.app_context():
        assert deliver(state, envelope)
    state.delivery.stop()
    state.outbox.ingest()
    with sqlite3.connect(state.outbox.path) as connection:
        keys = connection.execute("SELECT ordering_key, shared_key FROM outbox").fetchall()
    connection.close()
    assert keys == [(key, shared)]


def test_an_older_outbox_file_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path):
        pass
    # The file as schema 4 left it: no shared key, store changes keyed batch/<collection>.
    with sqlite3.connect(path) as connection:
        connection.execute("DROP INDEX outbox_unfinished_by_shared_key")
        connection.execute("ALTER TABLE outbox DROP COLUMN shared_key")
        for path_, key in [
            ("/products/p1/v1", "products/p1"),
            ("/batch/products", "batch/products"),
            ("/products/p2/v1", "products/p2"),
        ]:
            connection.execute(
                "INSERT INTO outbox (kind, method, path, body, ordering_key, created_at, due_at)"
                " VALUES ('rest', 'PUT', ?, x'', ?, 0, 0)",
                (path_, key),
            )
        connection.execute("PRAGMA user_version = 4")
    connection.close()

    with Outbox(path) as outbox:
        assert claimed_paths(Queue(outbox)) == ["/products/p1/v1"]  # the batch waits, and p2 behind it
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 5
    connection.close()
