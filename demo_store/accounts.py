"""Customers: log in and out (Flask-Login), register, the wishlist and the account page with past orders.

cue-front follows Flask-Login by itself: a login sends DataCue's login event,
which carries both the new ``user_id`` and the browser's anonymous id, so DataCue
joins what the visitor did before logging in to their account; a logout starts
a new visitor in this browser, so the next person at it sees nothing of the last
one. Registering writes the customer's row: the declared sync creates the user
in DataCue, with the browser's anonymous id; a wishlist change is a storefront
event (sent here) and a change to the customer's DataCue user (sent by the sync).
The login and registration pages, where passwords are typed, carry no DataCue script.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, login_user, logout_user
from sqlalchemy import Integer, cast, func, select
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from cue_front.identity import current_anonymous_id

from . import catalog, integration
from .customers import Customer, customer_by_email, load_customer, logged_in
from .db import db, write_transaction
from .models import Order, WishlistItem
from .seed import DEMO_ACCOUNTS, DEMO_PASSWORD, timestamp

__all__ = ["blueprint", "login_manager", "safe_next"]

blueprint = Blueprint("accounts", __name__)

#: Flask-Login: ``create_app`` initialises it on each app.
login_manager = LoginManager()

#: What survives a login: the cart, the orders placed as a guest in this browser and the variants
#: viewed (DataCue's "Recently viewed" survives it too). Nothing survives a logout: the next
#: person at this browser starts afresh.
_KEPT_ON_LOGIN = ("cart", "placed_orders", "viewed")


def _load_user(user_id: str) -> Customer | None:
    """Flask-Login's user loader: the customer whose id the session keeps."""
    return load_customer(user_id)


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
        customer = customer_by_email(email)
        password = request.form.get("password", "")
        if (
            customer is None
            or customer.password_hash is None
            or not check_password_hash(customer.password_hash, password)
        ):
            flash("That email and password do not match an account.", "error")
            page = render_template(
                "login.html", email=email, demo_accounts=DEMO_ACCOUNTS, demo_password=DEMO_PASSWORD
            )
            return page, 401
        _log_in(customer)
        flash(f"Welcome back, {customer.first_name}.", "success")
        return redirect(safe_next(url_for("shop.home")))
    return render_template("login.html", email="", demo_accounts=DEMO_ACCOUNTS, demo_password=DEMO_PASSWORD)


@blueprint.post("/logout")
def logout() -> Response:
    # Flask-Login's user_logged_out: cue-front gives this browser a new anonymous id.
    logout_user()
    session.clear()
    flash("You are logged out.", "success")
    return redirect(url_for("shop.home"))


def _registration_problems(form: dict[str, str]) -> list[str]:
    problems = []
    if "@" not in form["email"] or len(form["email"]) > 200:
        problems.append("Please give a valid email address.")
    elif customer_by_email(form["email"]) is not None:
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
    problems = _registration_problems(form)
    if problems:
        for problem in problems:
            flash(problem, "error")
        return render_template("register.html", form=form)
    with write_transaction() as db_session:
        number = db_session.scalar(
            select(func.coalesce(func.max(cast(func.substr(Customer.user_id, 2), Integer)), 1000) + 1)
        )
        customer = Customer(
            user_id=f"u{number}",
            email=form["email"],
            first_name=form["first_name"],
            last_name=form["last_name"],
            password_hash=generate_password_hash(form["password"]),
            location=form["location"] or None,
            segment="member",
            created_at=timestamp(datetime.now(timezone.utc)),
        )
        # This browser's history becomes the new user's (sent with the user's creation only).
        customer.anonymous_id = current_anonymous_id()
        db_session.add(customer)
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
    newest_first = sorted(customer.wishlist, key=lambda item: item.added_at, reverse=True)
    products = catalog.load_products(product_ids=[item.product_id for item in newest_first])
    return render_template("wishlist.html", products=products)


def _wishlist_change(subtype: str) -> Response:
    product = catalog.load_product(request.form.get("product_id", ""))
    if product is None:
        abort(404)
    back = safe_next(product.path)
    customer = logged_in()
    if customer is None:
        return _login_first(back)
    variant = product.variant(request.form.get("variant_id"))
    event: dict[str, Any] = {"type": "wishlist", "subtype": subtype, "product_id": product.product_id}
    if variant is not None and product.has_variants:
        event["variant_id"] = variant.variant_id
    with write_transaction():
        # Through the customer's collection; the declared sync sends their DataCue user again
        # (depends_on follows wishlist rows added, changed or deleted).
        items = customer.wishlist
        listed = next((item for item in items if item.product_id == product.product_id), None)
        changed = (listed is None) if subtype == "add" else (listed is not None)
        if subtype == "add" and listed is None:
            added_at = timestamp(datetime.now(timezone.utc))
            variant_id = event.get("variant_id")
            items.append(
                WishlistItem(product_id=product.product_id, variant_id=variant_id, added_at=added_at)
            )
        elif subtype == "remove" and listed is not None:
            items.remove(listed)
    if changed:
        integration.send(event)
        verb = "added to" if subtype == "add" else "removed from"
        flash(f"{product.name} {verb} your wishlist.", "success")
    elif subtype == "add":
        flash(f"{product.name} is already on your wishlist.", "notice")
    else:
        flash(f"{product.name} was not on your wishlist.", "notice")
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
    orders = db.session.scalars(
        select(Order).where(Order.user_id == customer.user_id).order_by(Order.number.desc())
    ).all()
    return render_template("account.html", user=customer, orders=orders)
