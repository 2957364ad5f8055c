"""The cart, the checkout and orders: what a customer buys, and the storefront events around it.

Plain HTML forms throughout, so all of it works with JavaScript disabled; every
cart change sends DataCue's cart update from the server. The checkout page is
the payment page: it carries no DataCue (or any other) script, as the guide
advises. Placing or cancelling an order only writes the database: the declared
sync (:mod:`demo_store.integration`) sends DataCue the order, its status and
each variant's new stock when the transaction commits. A guest is known to
DataCue by their email, unless that email names a shopper already: then by a
fresh guest id (see :func:`_place_order`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from cue_front.identity import current_anonymous_id

from . import catalog, integration
from .customers import Customer, logged_in
from .db import db, write_transaction
from .models import Guest, Order, OrderLine, Variant
from .seed import timestamp

__all__ = ["CartLine", "blueprint", "load_cart", "session_cart"]

blueprint = Blueprint("basket", __name__)

#: The most of one variant a cart may hold.
MAX_QUANTITY = 10


@dataclass(frozen=True)
class CartLine:
    product: catalog.Product
    variant: catalog.Variant
    quantity: int

    @property
    def unit_price_cents(self) -> int:
        return self.product.price_cents

    @property
    def total_cents(self) -> int:
        return self.unit_price_cents * self.quantity


def session_cart() -> list[tuple[str, str, int]]:
    """The cart kept in the session: ``(product_id, variant_id, quantity)``."""
    return [(str(p), str(v), int(q)) for p, v, q in session.get("cart", [])]


def _save_cart(lines: Iterable[tuple[str, str, int]]) -> None:
    session["cart"] = [[p, v, q] for p, v, q in lines if q > 0]


def load_cart() -> list[CartLine]:
    """The session's cart with today's products and prices; vanished products are dropped."""
    stored = session_cart()
    products = {p.product_id: p for p in catalog.load_products(product_ids=[p for p, _, _ in stored])}
    lines = []
    for product_id, variant_id, quantity in stored:
        product = products.get(product_id)
        variant = product.variant(variant_id) if product else None
        if product is not None and variant is not None:
            lines.append(CartLine(product, variant, quantity))
    return lines


def _datacue_cart(lines: Iterable[CartLine]) -> list[dict[str, Any]]:
    return integration.cart_lines(
        (line.product.product_id, line.variant.variant_id, line.quantity, line.unit_price_cents)
        for line in lines
    )


def _send_cart(type_: str, subtype: str, lines: Iterable[CartLine]) -> None:
    """A cart event (``cart / update``, ``checkout / started``) with the whole cart and its link."""
    integration.send(
        {
            "type": type_,
            "subtype": subtype,
            "cart": _datacue_cart(lines),
            # Relative: cue-front makes it absolute on DATACUE_SHOP_URL, never on the request's Host.
            "cart_link": url_for("basket.cart"),
        }
    )


def _cart_changed() -> None:
    """DataCue's cart update, with the whole cart as it is now."""
    _send_cart("cart", "update", load_cart())


def _quantity(text: str | None) -> int:
    try:
        return max(0, min(MAX_QUANTITY, int(text or "1")))
    except ValueError:
        return 1


def _asked(text: str | None) -> int:
    """How many a customer asked for (at least one), before any limit."""
    try:
        return max(1, int(text or "1"))
    except ValueError:
        return 1


@blueprint.get("/cart")
def cart() -> str:
    lines = load_cart()
    return render_template("cart.html", lines=lines, total_cents=sum(line.total_cents for line in lines))


@blueprint.post("/cart/add")
def add_to_cart() -> Response:
    product = catalog.load_product(request.form.get("product_id", ""))
    if product is None:
        abort(404)
    variant = product.variant(request.form.get("variant_id"))
    if variant is None:
        flash("Please choose a colour and size.", "error")
        return redirect(product.path)
    stored = session_cart()
    in_cart = next((q for p, v, q in stored if (p, v) == (product.product_id, variant.variant_id)), 0)
    asked = _asked(request.form.get("quantity"))
    wanted = min(in_cart + asked, variant.stock, MAX_QUANTITY)
    if wanted <= in_cart:
        flash(f"Sorry, no more {product.name} ({variant.label}) in stock.", "error")
        return redirect(url_for("shop.product", product_id=product.product_id, variant=variant.variant_id))
    key = (product.product_id, variant.variant_id)
    if in_cart:
        stored = [(p, v, wanted if (p, v) == key else q) for p, v, q in stored]
    else:
        stored.append((*key, wanted))
    _save_cart(stored)
    _cart_changed()
    added = "" if wanted - in_cart == 1 else f"{wanted - in_cart} of "
    flash(f"Added {added}{product.name} ({variant.label}) to your cart.", "success")
    if wanted < in_cart + asked:  # never silently fewer than asked for
        flash(_fewer_than_asked(product, variant, asked, wanted), "notice")
    return redirect(url_for("basket.cart"))


def _fewer_than_asked(product: catalog.Product, variant: catalog.Variant, asked: int, wanted: int) -> str:
    if wanted == variant.stock:
        return (
            f"You asked for {asked}, but only {variant.stock} of {product.name} ({variant.label})"
            f" {'is' if variant.stock == 1 else 'are'} left: your cart has {wanted}."
        )
    return f"You asked for {asked}: an order takes {MAX_QUANTITY} of an item at most, your cart has {wanted}."


@blueprint.post("/cart/update")
def update_cart() -> Response:
    """Set a line's quantity (0 removes it)."""
    key = (request.form.get("product_id", ""), request.form.get("variant_id", ""))
    stored = session_cart()
    if key not in {(p, v) for p, v, _ in stored}:
        return redirect(url_for("basket.cart"))
    quantity = 0 if "remove" in request.form else _quantity(request.form.get("quantity"))
    product = catalog.load_product(key[0])
    variant = product.variant(key[1]) if product else None
    if variant is not None and quantity > variant.stock:
        quantity = variant.stock
        flash(f"Only {variant.stock} left of {product.name if product else ''} ({variant.label}).", "error")
    _save_cart((p, v, quantity if (p, v) == key else q) for p, v, q in stored)
    _cart_changed()
    return redirect(url_for("basket.cart"))


@blueprint.post("/checkout/start")
def start_checkout() -> Response:
    """The cart's checkout button: DataCue's checkout started, then the payment page."""
    lines = load_cart()
    if not lines:
        return redirect(url_for("basket.cart"))
    _send_cart("checkout", "started", lines)
    return redirect(url_for("basket.checkout"))


class OutOfStock(Exception):
    def __init__(self, line: CartLine) -> None:
        super().__init__(f"{line.product.name} ({line.variant.label})")
        self.line = line


def _email_names_someone(db_session: Session, email: str) -> bool:
    """Whether a shopper goes by this email already: an account's, or an earlier guest's (any case)."""
    taken = or_(
        exists().where(Customer.email == email),
        exists().where(Guest.email == email),
    )
    return bool(db_session.scalar(select(taken)))


def _guest(db_session: Session, order_id: str, form: dict[str, str], created_at: str) -> Guest:
    """The DataCue user of a guest checkout (a row: the declared sync creates it at DataCue).

    DataCue's guide makes a guest's email their user_id. An email that already names a shopper
    (an account's, or an earlier guest's) is anyone's to type into this form: sending it again
    would overwrite that shopper's profile at DataCue and join this browser's history to theirs.
    Such a guest is known by a fresh id instead, ``guest-<order_id>``, and DataCue is not told
    the email.
    """
    email = form["email"]
    known = _email_names_someone(db_session, email)
    guest = Guest(
        user_id=f"guest-{order_id}" if known else email,
        email=None if known else email,
        first_name=form["name"].split()[0],
        created_at=created_at,
    )
    # This browser's anonymous history becomes the guest's (sent with the user's creation only).
    guest.anonymous_id = current_anonymous_id()
    return guest


def _place_order(lines: list[CartLine], customer: Customer | None, form: dict[str, str]) -> Order:
    """Take the stock and write the order (and a guest's user), all or nothing."""
    created_at = timestamp(datetime.now(timezone.utc))
    with write_transaction() as db_session:
        for line in lines:
            variant = db_session.get(Variant, (line.product.product_id, line.variant.variant_id))
            if variant is None or variant.stock < line.quantity:
                raise OutOfStock(line)
            variant.stock -= line.quantity
        number = db_session.scalar(select(func.coalesce(func.max(Order.number), 10000) + 1))
        order_id = f"o{number}"
        guest = None
        if customer is None:
            guest = _guest(db_session, order_id, form, created_at)
            db_session.add(guest)
        order = Order(
            number=number,
            order_id=order_id,
            user_id=customer.user_id if customer else None,
            guest_id=guest.user_id if guest is not None and guest.email is None else None,
            email=form["email"],
            name=form["name"],
            address=form["address"],
            status="completed",
            created_at=created_at,
            lines=[
                OrderLine(
                    product_id=line.product.product_id,
                    variant_id=line.variant.variant_id,
                    quantity=line.quantity,
                    unit_price_cents=line.unit_price_cents,
                )
                for line in lines
            ],
        )
        db_session.add(order)
    return order


def _checkout_form(customer: Customer | None) -> tuple[dict[str, str], list[str]]:
    form = {name: request.form.get(name, "").strip() for name in ("email", "name", "address", "card")}
    if customer is not None:
        form["email"] = customer.email
    problems = []
    if "@" not in form["email"] or len(form["email"]) > 200:
        problems.append("Please give an email address for the receipt.")
    if not form["name"] or not form["address"]:
        problems.append("Please give a name and a delivery address.")
    if len("".join(form["card"].split())) < 12:
        problems.append("Please give a card number (this is a demo: any 12 digits will do).")
    return form, problems


@blueprint.route("/checkout", methods=["GET", "POST"])
def checkout() -> Response | str:
    """The payment page: no DataCue script here (see templates/checkout.html)."""
    lines = load_cart()
    if not lines:
        return redirect(url_for("basket.cart"))
    customer = logged_in()
    total_cents = sum(line.total_cents for line in lines)
    if request.method == "GET":
        return render_template(
            "checkout.html", lines=lines, total_cents=total_cents, customer=customer, form={}
        )
    form, problems = _checkout_form(customer)
    if problems:
        for problem in problems:
            flash(problem, "error")
        return render_template(
            "checkout.html", lines=lines, total_cents=total_cents, customer=customer, form=form
        )
    try:
        order = _place_order(lines, customer, form)
    except OutOfStock as problem:
        flash(f"Sorry, {problem} sold out while you were shopping: please check your cart.", "error")
        return redirect(url_for("basket.cart"))
    _save_cart([])
    session.setdefault("placed_orders", []).append(order.order_id)
    session.modified = True
    _cart_changed()  # the cart is empty now
    return redirect(url_for("basket.confirmation", order_id=order.order_id))


def _order(order_id: str) -> Order:
    """The order, if this visitor may see it: they placed it in this session, or it is theirs."""
    order = db.session.scalar(select(Order).where(Order.order_id == order_id))
    if order is None:
        abort(404)
    customer = logged_in()
    mine = order_id in session.get("placed_orders", []) or (
        customer is not None and order.user_id == customer.user_id
    )
    if not mine:
        abort(404)
    return order


@blueprint.get("/orders/<order_id>")
def confirmation(order_id: str) -> str:
    order = _order(order_id)
    lines = sorted(order.lines, key=lambda line: line.variant.product.name)
    order_details = {
        "order_status": order.status,
        "cart": integration.cart_lines(
            (line.product_id, line.variant_id, line.quantity, line.unit_price_cents) for line in lines
        ),
        "timestamp": order.created_at,
    }
    return render_template(
        "confirmation.html",
        order=order,
        lines=lines,
        total_cents=order.total_cents,
        order_details=order_details,
        datacue_user_id=order.datacue_user_id,
    )


@blueprint.post("/orders/<order_id>/cancel")
def cancel_order(order_id: str) -> Response:
    """Cancel one of the logged-in customer's orders, and put its stock back."""
    customer = logged_in()
    if customer is None:
        return redirect(url_for("accounts.login", next=url_for("accounts.account")))
    user_id = customer.user_id
    with write_transaction() as db_session:
        order = db_session.scalar(
            select(Order).where(
                Order.order_id == order_id, Order.user_id == user_id, Order.status == "completed"
            )
        )
        if order is not None:
            order.status = "cancelled"
            for line in order.lines:
                line.variant.stock += line.quantity
    if order is None:
        abort(404)
    flash(f"Order {order_id} is cancelled; its items are back in stock.", "success")
    return redirect(url_for("accounts.account"))
