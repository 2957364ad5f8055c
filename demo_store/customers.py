"""Who is shopping: the customers with an account, as Flask-Login keeps them.

:class:`~demo_store.models.Customer` is the demo's user class (``current_user``
while someone is logged in); :func:`logged_in` is the one way the views ask who
that is.
"""

from __future__ import annotations

from flask_login import current_user
from sqlalchemy import select

from .db import db
from .models import PROFILE_FIELDS, Customer

__all__ = ["PROFILE_FIELDS", "Customer", "customer_by_email", "load_customer", "logged_in"]


def load_customer(user_id: str) -> Customer | None:
    """The customer with this ``user_id``, or ``None`` (an unknown id, or an account deleted since)."""
    return db.session.get(Customer, user_id)


def customer_by_email(email: str) -> Customer | None:
    """The customer with this email, whatever its case."""
    return db.session.scalar(select(Customer).where(Customer.email == email))


def logged_in() -> Customer | None:
    """The logged-in customer, or ``None`` for a visitor who has not logged in."""
    if not current_user.is_authenticated:
        return None
    customer: Customer = current_user._get_current_object()
    return customer
