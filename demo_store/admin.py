"""The shop's back office on the command line: ``flask --app demo_store shop restock|price``.

Each command changes the database only, as an admin screen would. The declared
sync (:mod:`demo_store.integration`) sends DataCue the changed variants when the
transaction commits: a restock sends the variant's new stock, a new price sends
every variant of the product (the price is the product's). The command then
delivers what it queued, so the change shows in the emulator's debugger at once;
beside a running ``make demo`` it finds the emulator through the instance folder.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import click
from flask import current_app
from flask.cli import AppGroup

from .db import write_transaction
from .models import Product, Variant

__all__ = ["shop_cli"]

shop_cli = AppGroup("shop", help="Change the shop's catalog as its back office would (DataCue follows).")

#: How long a command waits for DataCue to take what it queued.
DELIVERY_SECONDS = 10.0


def _cents(text: str) -> int:
    try:
        amount = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise click.BadParameter(f"{text!r} is not a price") from None
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise click.BadParameter(f"{text!r} is not a price in dollars and cents")
    return int(amount * 100)


def _deliver() -> None:
    """Send what the commit queued for DataCue now, and say whether it arrived."""
    state = current_app.extensions.get("datacue")
    if state is None:  # no DataCue settings: create_app said so already
        return
    if state.delivery_mode != "outbox":
        click.echo("DataCue was sent the change.")
    elif state.delivery.flush(DELIVERY_SECONDS):
        click.echo("DataCue was sent the change (see the emulator's debugger).")
    else:
        click.echo(
            "DataCue did not take the change yet: it waits in the outbox"
            " (flask --app demo_store datacue status).",
            err=True,
        )


@shop_cli.command("restock")
@click.argument("product_id", metavar="PRODUCT")
@click.argument("variant_id", metavar="VARIANT")
@click.argument("quantity", type=click.IntRange(min=1))
def restock_command(product_id: str, variant_id: str, quantity: int) -> None:
    """Add QUANTITY to the stock of PRODUCT's VARIANT (``no-variants`` for a single item):
    ``flask --app demo_store shop restock p101 navy-m 5``."""
    with write_transaction() as session:
        variant = session.get(Variant, (product_id, variant_id))
        if variant is None:
            raise click.BadParameter(f"no variant {variant_id!r} of product {product_id!r}")
        before = variant.stock
        variant.stock += quantity
        after = variant.stock
    click.echo(f"{product_id}/{variant_id}: stock {before} -> {after}")
    _deliver()


@shop_cli.command("price")
@click.argument("product_id", metavar="PRODUCT")
@click.argument("price", metavar="PRICE")
@click.option("--full-price", help="The price before a discount (default: unchanged, or PRICE if above it).")
def price_command(product_id: str, price: str, full_price: str | None) -> None:
    """Sell PRODUCT at PRICE in every colour and size: ``flask --app demo_store shop price p101 129.50``."""
    price_cents = _cents(price)
    with write_transaction() as session:
        product = session.get(Product, product_id)
        if product is None:
            raise click.BadParameter(f"no product {product_id!r}")
        full_cents = max(product.full_price_cents, price_cents) if full_price is None else _cents(full_price)
        if full_cents < price_cents:
            raise click.BadParameter("the full price is below the price", param_hint="--full-price")
        product.price_cents, product.full_price_cents = price_cents, full_cents
        summary = f"{product_id}: ${price_cents / 100:,.2f} (full price ${full_cents / 100:,.2f})"
        variants = len(product.variants)
    click.echo(f"{summary}, {variants} variant(s)")
    _deliver()
