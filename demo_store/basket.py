"""The cart, the checkout and orders: where the shop tells DataCue what a customer buys.

Plain HTML forms throughout, so all of it works with JavaScript disabled; every
cart change sends DataCue's cart update from the server. The checkout page is
the payment page: it carries no DataCue (or any other) script, as the guide
advises. A placed order goes to DataCue through the durable queue
(``datacue.queued``), followed by each sold variant's new stock; a cancelled
one is marked cancelled the same way, and its stock put back. A guest is known
to DataCue by their email, unless that email names a shopper already: then by a
fresh guest id (see :func:`_place_order`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from cue_front.errors import APIError, NetworkError
from cue_front.identity import current_anonymous_id

from . import catalog, db, integration
from .customers import Customer, logged_in
from .integration import datacue
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


def load_cart(connection: sqlite3.Connection) -> list[CartLine]:
    """The session's cart with today's products and prices; vanished products are dropped."""
    stored = session_cart()
    products = {
        p.product_id: p for p in catalog.load_products(connection, product_ids=[p for p, _, _ in stored])
    }
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


def _cart_changed(connection: sqlite3.Connection) -> None:
    """DataCue's cart update, with the whole cart as it is now."""
    _send_cart("cart", "update", load_cart(connection))


def _quantity(text: str | None) -> int:
    try:
        return max(0, min(MAX_QUANTITY, int(text or "1")))
    except ValueError:
        return 1


@blueprint.get("/cart")
def cart() -> str:
    lines = load_cart(db.get_db())
    return render_template("cart.html", lines=lines, total_cents=sum(line.total_cents for line in lines))


@blueprint.post("/cart/add")
def add_to_cart() -> Response:
    connection = db.get_db()
    product = catalog.load_product(connection, request.form.get("product_id", ""))
    if product is None:
        abort(404)
    variant = product.variant(request.form.get("variant_id"))
    if variant is None:
        flash("Please choose a colour and size.", "error")
        return redirect(product.path)
    stored = session_cart()
    in_cart = next((q for p, v, q in stored if (p, v) == (product.product_id, variant.variant_id)), 0)
    wanted = min(in_cart + max(1, _quantity(request.form.get("quantity"))), variant.stock, MAX_QUANTITY)
    if wanted <= in_cart:
        flash(f"Sorry, no more {product.name} ({variant.label}) in stock.", "error")
        return redirect(url_for("shop.product", product_id=product.product_id, variant=variant.variant_id))
    key = (product.product_id, variant.variant_id)
    if in_cart:
        stored = [(p, v, wanted if (p, v) == key else q) for p, v, q in stored]
    else:
        stored.append((*key, wanted))
    _save_cart(stored)
    _cart_changed(connection)
    flash(f"Added {product.name} ({variant.label}) to your cart.", "success")
    return redirect(url_for("basket.cart"))


@blueprint.post("/cart/update")
def update_cart() -> Response:
    """Set a line's quantity (0 removes it)."""
    connection = db.get_db()
    key = (request.form.get("product_id", ""), request.form.get("variant_id", ""))
    stored = session_cart()
    if key not in {(p, v) for p, v, _ in stored}:
        return redirect(url_for("basket.cart"))
    quantity = 0 if "remove" in request.form else _quantity(request.form.get("quantity"))
    product = catalog.load_product(connection, key[0])
    variant = product.variant(key[1]) if product else None
    if variant is not None and quantity > variant.stock:
        quantity = variant.stock
        flash(f"Only {variant.stock} left of {product.name if product else ''} ({variant.label}).", "error")
    _save_cart((p, v, quantity if (p, v) == key else q) for p, v, q in stored)
    _cart_changed(connection)
    return redirect(url_for("basket.cart"))


@blueprint.post("/checkout/start")
def start_checkout() -> Response:
    """The cart's checkout button: DataCue's checkout started, then the payment page."""
    lines = load_cart(db.get_db())
    if not lines:
        return redirect(url_for("basket.cart"))
    _send_cart("checkout", "started", lines)
    return redirect(url_for("basket.checkout"))


class OutOfStock(Exception):
    def __init__(self, line: CartLine) -> None:
        super().__init__(f"{line.product.name} ({line.variant.label})")
        self.line = line


def _email_names_someone(connection: sqlite3.Connection, email: str) -> bool:
    """Whether a shopper goes by this email already: an account's, or an earlier guest checkout's."""
    known: int = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM users WHERE email = ?1)"
        " OR EXISTS (SELECT 1 FROM orders WHERE user_id IS NULL AND email = ?1 COLLATE NOCASE)",
        (email,),
    ).fetchone()[0]
    return bool(known)


def _place_order(
    connection: sqlite3.Connection, lines: list[CartLine], user_id: str | None, form: dict[str, str]
) -> sqlite3.Row:
    """Take the stock and write the order, all or nothing; returns the order's row."""
    created_at = timestamp(datetime.now(timezone.utc))
    with db.transaction(connection):
        for line in lines:
            taken = connection.execute(
                "UPDATE variants SET stock = stock - ?"
                " WHERE product_id = ? AND variant_id = ? AND stock >= ?",
                (line.quantity, line.product.product_id, line.variant.variant_id, line.quantity),
            )
            if taken.rowcount != 1:
                raise OutOfStock(line)
        number = connection.execute("SELECT coalesce(max(number), 10000) + 1 FROM orders").fetchone()[0]
        order_id = f"o{number}"
        # DataCue's guide makes a guest's email their user_id. An email that already names a
        # shopper (an account's, or an earlier guest's) is anyone's to type into this form:
        # sending it again would overwrite that shopper's profile at DataCue and join this
        # browser's history to theirs. Such an order is recorded under a fresh guest id instead.
        guest_id = None
        if user_id is None and _email_names_someone(connection, form["email"]):
            guest_id = f"guest-{order_id}"
        connection.execute(
            "INSERT INTO orders (number, order_id, user_id, guest_id, email, name, address, status,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'completed', ?)",
            (number, order_id, user_id, guest_id, form["email"], form["name"], form["address"], created_at),
        )
        connection.executemany(
            "INSERT INTO order_lines (order_id, product_id, variant_id, quantity, unit_price_cents)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (
                    order_id,
                    line.product.product_id,
                    line.variant.variant_id,
                    line.quantity,
                    line.unit_price_cents,
                )
                for line in lines
            ],
        )
        order: sqlite3.Row = connection.execute(
            "SELECT * FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
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
    connection = db.get_db()
    lines = load_cart(connection)
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
        order = _place_order(connection, lines, customer.user_id if customer else None, form)
    except OutOfStock as problem:
        flash(f"Sorry, {problem} sold out while you were shopping: please check your cart.", "error")
        return redirect(url_for("basket.cart"))
    _save_cart([])
    session.setdefault("placed_orders", []).append(order["order_id"])
    session.modified = True
    _tell_datacue_about_order(connection, lines, order)
    return redirect(url_for("basket.confirmation", order_id=order["order_id"]))


def _tell_datacue_about_order(
    connection: sqlite3.Connection, lines: list[CartLine], order: sqlite3.Row
) -> None:
    try:
        if order["user_id"] is None:
            # Guest checkout: DataCue knows the guest by their email (or a fresh guest id), and
            # this browser's anonymous history becomes theirs.
            guest = integration.guest_user(order)
            datacue.queued.users.create({**guest, "anonymous_id": current_anonymous_id()})
        datacue.queued.orders.create(
            {
                "order_id": order["order_id"],
                "user_id": integration.order_user_id(order),
                "order_status": "completed",
                "cart": _datacue_cart(lines),
                "timestamp": order["created_at"],
            }
        )
    except (APIError, NetworkError) as error:  # only with DATACUE_DELIVERY = "sync"
        integration.logger.warning("DataCue did not take order %s: %s", order["order_id"], error)
    _stock_moved(connection, [(line.product.product_id, line.variant.variant_id) for line in lines])
    _cart_changed(connection)  # the cart is empty now


def _stock_moved(connection: sqlite3.Connection, keys: list[tuple[str, str]]) -> None:
    products = catalog.load_products(connection, product_ids=[product_id for product_id, _ in keys])
    integration.queue_stock_changes(products, keys)


def _order(connection: sqlite3.Connection, order_id: str) -> tuple[sqlite3.Row, list[sqlite3.Row]]:
    """The order, if this visitor may see it: they placed it in this session, or it is theirs."""
    order = connection.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
    if order is None:
        abort(404)
    customer = logged_in()
    mine = order_id in session.get("placed_orders", []) or (
        customer is not None and order["user_id"] == customer.user_id
    )
    if not mine:
        abort(404)
    lines = connection.execute(
        "SELECT l.*, p.name, v.colour, v.size FROM order_lines l JOIN products p USING (product_id)"
        " JOIN variants v USING (product_id, variant_id) WHERE order_id = ? ORDER BY p.name",
        (order_id,),
    ).fetchall()
    return order, lines


@blueprint.get("/orders/<order_id>")
def confirmation(order_id: str) -> str:
    connection = db.get_db()
    order, lines = _order(connection, order_id)
    order_details = {
        "order_status": order["status"],
        "cart": integration.cart_lines(
            (line["product_id"], line["variant_id"], line["quantity"], line["unit_price_cents"])
            for line in lines
        ),
        "timestamp": order["created_at"],
    }
    return render_template(
        "confirmation.html",
        order=order,
        lines=lines,
        total_cents=sum(line["quantity"] * line["unit_price_cents"] for line in lines),
        order_details=order_details,
        datacue_user_id=integration.order_user_id(order),
    )


@blueprint.post("/orders/<order_id>/cancel")
def cancel_order(order_id: str) -> Response:
    """Cancel one of the logged-in customer's orders: stock back, and DataCue's order status change."""
    connection = db.get_db()
    customer = logged_in()
    if customer is None:
        return redirect(url_for("accounts.login", next=url_for("accounts.account")))
    with db.transaction(connection):
        cancelled = connection.execute(
            "UPDATE orders SET status = 'cancelled'"
            " WHERE order_id = ? AND user_id = ? AND status = 'completed'",
            (order_id, customer.user_id),
        ).rowcount
        lines = connection.execute(
            "SELECT product_id, variant_id, quantity FROM order_lines WHERE order_id = ?", (order_id,)
        ).fetchall()
        if cancelled:
            connection.executemany(
                "UPDATE variants SET stock = stock + ? WHERE product_id = ? AND variant_id = ?",
                [(line["quantity"], line["product_id"], line["variant_id"]) for line in lines],
            )
    if not cancelled:
        abort(404)
    try:
        datacue.queued.orders.cancel(order_id)
    except (APIError, NetworkError) as error:  # only with DATACUE_DELIVERY = "sync"
        integration.logger.warning("DataCue did not take the cancellation of %s: %s", order_id, error)
    _stock_moved(connection, [(line["product_id"], line["variant_id"]) for line in lines])
    flash(f"Order {order_id} is cancelled; its items are back in stock.", "success")
    return redirect(url_for("accounts.account"))
