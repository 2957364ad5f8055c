"""Who is shopping: the customers with an account, as Flask-Login keeps them, and their DataCue profile.

:class:`Customer` is the demo's user class (``current_user`` while someone is
logged in); :func:`logged_in` is the one way the views ask who that is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_login import UserMixin, current_user

__all__ = ["PROFILE_FIELDS", "Customer", "load_customer", "logged_in", "profile"]

#: The users table's columns that DataCue's ``profile`` object carries.
PROFILE_FIELDS = ("sex", "location", "segment")


def profile(row: Mapping[str, Any] | sqlite3.Row) -> dict[str, str]:
    """DataCue's ``profile`` of a customer: their sex, location and segment, those they have."""
    return {key: row[key] for key in PROFILE_FIELDS if row[key]}


@dataclass(frozen=True)
class Customer(UserMixin):  # type: ignore[misc]  # Flask-Login ships no types
    """A customer with an account. Flask-Login keeps their ``user_id`` in the session; it is
    their DataCue ``user_id`` too (cue-front reads ``current_user.get_id()``)."""

    user_id: str
    email: str
    first_name: str
    last_name: str
    sex: str | None
    location: str | None
    segment: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Customer:
        """The customer in a row of the users table (``SELECT *``)."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def get_id(self) -> str:
        return self.user_id

    @property
    def profile(self) -> dict[str, str]:
        return profile(vars(self))


def load_customer(connection: sqlite3.Connection, user_id: str) -> Customer | None:
    """The customer with this ``user_id``, or ``None`` (an unknown id, or an account deleted since)."""
    row = connection.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
    return None if row is None else Customer.from_row(row)


def logged_in() -> Customer | None:
    """The logged-in customer, or ``None`` for a visitor who has not logged in."""
    if not current_user.is_authenticated:
        return None
    customer: Customer = current_user._get_current_object()
    return customer
