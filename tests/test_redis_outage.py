"""A Redis outbox whose Redis is down says so as ``OutboxUnavailableError`` (a ``DataCueError``), never
as redis-py's own errors: declared model sync's commit does not raise after the shop's data is
committed, and what it could not queue is sent once Redis is back. Real redis-server, stopped."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from benchmarks.redis_server import RedisServer
from cue_front import DataCue
from cue_front.emulator import RunningEmulator
from cue_front.outbox.contract import OutboxUnavailableError
from cue_front.outbox.redis import RedisOutbox


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Shelf(db.Model):  # type: ignore[name-defined,misc]
    """A category of the shop, synced to DataCue's categories."""

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str]


@pytest.fixture
def shop(
    make_app: Callable[..., Flask], emulator: RunningEmulator, redis_url: str, tmp_path: Any
) -> Iterator[Flask]:
    app = make_app(
        DATACUE_DELIVERY="outbox",
        DATACUE_OUTBOX_URL=redis_url,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        **emulator.config,
    )
    db.init_app(app)
    datacue: DataCue = app.extensions["datacue"].extension
    datacue.syncs(Shelf, "categories")(lambda shelf: {"category_id": shelf.id, "name": shelf.name})
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()


def test_a_commit_while_redis_is_down_does_not_raise_and_resync_sends_it_after(
    shop: Flask, emulator: RunningEmulator, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    state = shop.extensions["datacue"]
    outbox = state.outbox
    assert isinstance(outbox, RedisOutbox)
    redis_server.stop()

    with caplog.at_level(logging.WARNING, logger="cue_front"):
        db.session.add(Shelf(id="mugs", name="Mugs"))
        db.session.commit()  # model sync runs in after_commit: it must not raise into the shop
    assert db.session.get(Shelf, "mugs") is not None  # the shop's own data is committed
    assert "mugs not queued" in caplog.text
    assert "DATACUE_OUTBOX_URL" in caplog.text
    for read in (outbox.stats, outbox.unfinished, outbox.retry_now, outbox.retry_dead, outbox.dead_letters):
        with pytest.raises(OutboxUnavailableError, match="DATACUE_OUTBOX_URL"):
            read()
    assert outbox.sent_digests(["categories/mugs"]) == {}
    outbox.remember_digests({"categories/mugs": "digest"})  # reported, not raised

    redis_server.start()
    state.extension.resync(Shelf)  # what the outage kept from DataCue
    assert state.delivery.flush(10)
    assert [r["body"]["category_id"] for r in emulator.requests(type="categories.create")] == ["mugs"]
    assert outbox.stats().pending == 0


def test_the_worker_start_line_counts_nothing_while_redis_is_down(
    make_app: Callable[..., Flask], emulator: RunningEmulator, redis_server: RedisServer, redis_url: str
) -> None:
    from cue_front.cli import _pending

    app = make_app(DATACUE_DELIVERY="outbox", DATACUE_OUTBOX_URL=redis_url, **emulator.config)
    redis_server.stop()
    with app.app_context():
        assert _pending(app.extensions["datacue"]) is None
    redis_server.start()
    with app.app_context():
        assert _pending(app.extensions["datacue"]) == 0


@pytest.mark.parametrize("command", [["status"], ["outbox", "dead"], ["outbox", "retry-dead"]])
def test_the_outbox_commands_say_redis_is_down_in_one_line(
    make_app: Callable[..., Flask], redis_server: RedisServer, redis_url: str, command: list[str]
) -> None:
    """An operator's command during an outage gets the reason and exit 1, not redis-py's traceback."""
    app = make_app(DATACUE_DELIVERY="outbox", DATACUE_OUTBOX_URL=redis_url)
    redis_server.stop()
    try:
        result = app.test_cli_runner().invoke(args=["datacue", *command])
    finally:
        redis_server.start()
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and "DATACUE_OUTBOX_URL" in result.output, result.output
    assert "Traceback" not in result.output and result.exception is not None
    assert type(result.exception) is SystemExit
