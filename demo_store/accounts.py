"""Customers: log in and out (Flask-Login), register, the wishlist and the account page with past orders.

cue-front follows Flask-Login by itself: a login sends DataCue's login event,
which carries both the new ``user_id`` and the browser's anonymous id, so DataCue
joins what the visitor did before logging in to their account; a logout starts
a new visitor in this browser, so the next person at it sees nothing of the last
one. Registering creates the user in DataCue with the anonymous id too. The
login and registration pages, where passwords are typed, carry no DataCue script.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from cue_front.errors import APIError, NetworkError
from cue_front.identity import current_anonymous_id

from . import catalog, db, integration
from .customers import Customer, load_customer, logged_in
from .integration import datacue
from .seed import DEMO_ACCOUNTS, DEMO_PASSWORD, timestamp

__all__ = ["blueprint", "login_manager", "safe_next"]

blueprint = Blueprint("accounts", __name__)

#: Flask-Login: ``create_app`` initialises it on each app.
login_manager = LoginManager()

#: What survives a login: the cart and the orders placed as a guest in this browser. Nothing
#: survives a logout: the next person at this browser starts afresh.
_KEPT_ON_LOGIN = ("cart", "placed_orders")


def _load_user(user_id: str) -> Customer | None:
    """Flask-Login's user loader: the customer whose id the session keeps."""
    return load_customer(db.get_db(), user_id)


login_manager.user_loader(_load_user)


def safe_next(default: str) -> str:
    """The ``next`` parameter if it is a path on this site, else ``default`` (no open redirect)."""
    target = request.values.get("next", "")
    # Browsers drop tabs and newlines from URLs and read a backslash as a slash: "/\t/x" is "//x".
    suspicious = "\\" in target or any(c.isspace() or not c.isprintable() for c in target)
    if target.startswith("/") and not target.startswith("//") and not suspicious:
        return target
    return default


def _log_in(customer: Customer) -> None:
    kept = {key: session[key] for key in _KEPT_ON_LOGIN if key in session}
    session.clear()  # a new session (and CSRF token) for the customer
    session.update(kept)
    # Flask-Login's user_logged_in: cue-front sends DataCue's login event with both ids.
    login_user(customer)


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "POST":
        email = request.form.get("email", "").strip()
        row = db.get_db().execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone()
        password = request.form.get("password", "")
        if (
            row is None
            or row["password_hash"] is None
            or not check_password_hash(row["password_hash"], password)
        ):
            flash("That email and password do not match an account.", "error")
            page = render_template(
                "login.html", email=email, demo_accounts=DEMO_ACCOUNTS, demo_password=DEMO_PASSWORD
            )
            return page, 401
        _log_in(Customer.from_row(row))
        flash(f"Welcome back, {row['first_name']}.", "success")
        return redirect(safe_next(url_for("shop.home")))
    return render_template("login.html", email="", demo_accounts=DEMO_ACCOUNTS, demo_password=DEMO_PASSWORD)


@blueprint.post("/logout")
def logout() -> Response:
    # Flask-Login's user_logged_out: cue-front gives this browser a new anonymous id.
    logout_user()
    session.clear()
    flash("You are logged out.", "success")
    return redirect(url_for("shop.home"))


def _registration_problems(connection: sqlite3.Connection, form: dict[str, str]) -> list[str]:
    problems = []
    if "@" not in form["email"] or len(form["email"]) > 200:
        problems.append("Please give a valid email address.")
    elif connection.execute("SELECT 1 FROM users WHERE email = ?", (form["email"],)).fetchone():
        problems.append("There is already an account with that email: log in instead.")
    if not form["first_name"]:
        problems.append("Please tell us your first name.")
    if len(form["password"]) < 8:
        problems.append("Please choose a password of at least 8 characters.")
    return problems


@blueprint.route("/register", methods=["GET", "POST"])
def register() -> Response | str:
    form = {
        name: request.form.get(name, "").strip() for name in ("email", "first_name", "last_name", "location")
    }
    form["password"] = request.form.get("password", "")
    if request.method == "GET":
        return render_template("register.html", form=form)
    connection = db.get_db()
    problems = _registration_problems(connection, form)
    if problems:
        for problem in problems:
            flash(problem, "error")
        return render_template("register.html", form=form)
    created_at = timestamp(datetime.now(timezone.utc))
    with db.transaction(connection):
        number = connection.execute(
            "SELECT coalesce(max(CAST(substr(user_id, 2) AS INTEGER)), 1000) + 1 FROM users"
        ).fetchone()[0]
        customer = Customer(
            user_id=f"u{number}",
            email=form["email"],
            first_name=form["first_name"],
            last_name=form["last_name"],
            sex=None,
            location=form["location"] or None,
            segment="member",
        )
        connection.execute(
            "INSERT INTO users (user_id, email, first_name, last_name, password_hash, location, segment,"
            " created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                customer.user_id,
                customer.email,
                customer.first_name,
                customer.last_name,
                generate_password_hash(form["password"]),
                customer.location,
                customer.segment,
                created_at,
            ),
        )
    user: dict[str, Any] = {
        "user_id": customer.user_id,
        "anonymous_id": current_anonymous_id(),
        "email": customer.email,
        "first_name": customer.first_name,
        "profile": customer.profile,
        "guest_account": False,
        "timestamp": created_at,
    }
    if customer.last_name:
        user["last_name"] = customer.last_name
    try:
        datacue.queued.users.create(user)
    except (APIError, NetworkError) as error:  # only with DATACUE_DELIVERY = "sync"
        integration.logger.warning("DataCue did not take user %s: %s", customer.user_id, error)
    _log_in(customer)
    flash(f"Welcome, {form['first_name']}: your account is ready.", "success")
    return redirect(safe_next(url_for("shop.home")))


def _login_first(next_path: str) -> Response:
    flash("Please log in first.", "error")
    return redirect(url_for("accounts.login", next=next_path))


@blueprint.get("/wishlist")
def wishlist() -> Response | str:
    customer = logged_in()
    if customer is None:
        return _login_first(url_for("accounts.wishlist"))
    connection = db.get_db()
    rows = connection.execute(
        "SELECT product_id, variant_id FROM wishlist WHERE user_id = ? ORDER BY added_at DESC",
        (customer.user_id,),
    ).fetchall()
    products = catalog.load_products(connection, product_ids=[row["product_id"] for row in rows])
    return render_template("wishlist.html", products=products)


def _wishlist_change(subtype: str) -> Response:
    connection = db.get_db()
    product = catalog.load_product(connection, request.form.get("product_id", ""))
    if product is None:
        abort(404)
    back = safe_next(product.path)
    customer = logged_in()
    if customer is None:
        return _login_first(back)
    user_id = customer.user_id
    variant = product.variant(request.form.get("variant_id"))
    event: dict[str, Any] = {"type": "wishlist", "subtype": subtype, "product_id": product.product_id}
    if variant is not None and product.has_variants:
        event["variant_id"] = variant.variant_id
    with db.transaction(connection):
        if subtype == "add":
            changed = connection.execute(
                "INSERT OR IGNORE INTO wishlist (user_id, product_id, variant_id, added_at)"
                " VALUES (?, ?, ?, ?)",
                (user_id, product.product_id, event.get("variant_id"), timestamp(datetime.now(timezone.utc))),
            ).rowcount
        else:
            changed = connection.execute(
                "DELETE FROM wishlist WHERE user_id = ? AND product_id = ?", (user_id, product.product_id)
            ).rowcount
    if changed:
        integration.send(event)
        verb = "added to" if subtype == "add" else "removed from"
        flash(f"{product.name} {verb} your wishlist.", "success")
    return redirect(back)


@blueprint.post("/wishlist/add")
def add_to_wishlist() -> Response:
    return _wishlist_change("add")


@blueprint.post("/wishlist/remove")
def remove_from_wishlist() -> Response:
    return _wishlist_change("remove")


@blueprint.get("/account")
def account() -> Response | str:
    customer = logged_in()
    if customer is None:
        return _login_first(url_for("accounts.account"))
    orders = (
        db.get_db()
        .execute(
            "SELECT o.order_id, o.status, o.created_at, sum(l.quantity) AS items,"
            " sum(l.quantity * l.unit_price_cents) AS total_cents"
            " FROM orders o JOIN order_lines l USING (order_id) WHERE o.user_id = ?"
            " GROUP BY o.order_id ORDER BY o.number DESC",
            (customer.user_id,),
        )
        .fetchall()
    )
    return render_template("account.html", user=customer, orders=orders)
