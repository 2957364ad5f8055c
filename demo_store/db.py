"""The demo shop's database: SQLite through Flask-SQLAlchemy, and its write transactions.

``db`` is the Flask-SQLAlchemy extension (its session is the request's); the
tables are :mod:`demo_store.models`. Every connection enforces foreign keys and
waits up to ten seconds for a lock. Writes go through :func:`write_transaction`,
which takes SQLite's write lock up front (``BEGIN IMMEDIATE``) so that a stock
check and the decrement that follows it cannot interleave with another order,
and commits at the end: that commit is what the declared DataCue sync
(:mod:`demo_store.integration`) follows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session

__all__ = ["Base", "db", "engine_for", "init_app", "sqlite_url", "write_transaction"]


class Base(DeclarativeBase):
    """The models' base: Flask-SQLAlchemy's ``db.Model`` shares its metadata and registry."""


db = SQLAlchemy(model_class=Base)

#: The execution option that makes a connection's next transaction ``BEGIN IMMEDIATE``.
IMMEDIATE = "demo_store_begin_immediate"
#: Seconds a connection waits for another one's lock before giving up.
LOCK_TIMEOUT = 10


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{path}"


def _on_connect(connection: sqlite3.Connection, record: Any) -> None:
    # pysqlite's own transaction handling is off: transactions begin in _on_begin, as SQLAlchemy's
    # documentation advises for SQLite, so that a write transaction can take its lock up front.
    connection.isolation_level = None
    connection.execute("PRAGMA foreign_keys = ON")


def _on_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get(IMMEDIATE)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def prepare(engine: Engine) -> Engine:
    """Give an engine the demo's connection settings (foreign keys, explicit transactions)."""
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def engine_for(path: str | Path) -> Engine:
    """An engine on the database file at ``path``, outside any app (seeding, scripts, tests)."""
    return prepare(create_engine(sqlite_url(path), connect_args={"timeout": LOCK_TIMEOUT}))


def init_app(app: Flask) -> None:
    """Flask-SQLAlchemy on ``app``'s ``SQLALCHEMY_DATABASE_URI``, with the demo's connection settings."""
    options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    options.setdefault("connect_args", {"timeout": LOCK_TIMEOUT})
    db.init_app(app)
    with app.app_context():
        prepare(db.engine)


@contextmanager
def write_transaction() -> Iterator[Session]:
    """The request's session in a transaction that holds SQLite's write lock from its first statement.

    Commits when the block ends (the declared sync then queues what changed for DataCue), or
    rolls back if it raises. A read transaction the request had open is ended first: it
    wrote nothing.
    """
    session = db.session()
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={IMMEDIATE: True})
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    session.commit()
