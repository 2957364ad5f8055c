"""Back-office edits reach DataCue by themselves: ``flask --app demo_store shop restock|price`` change
the database only, and the declared model sync sends the change to the emulator.

The shop delivers through its durable outbox here, as ``python -m demo_store`` does; the
commands deliver what they queued before they return.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from cue_front.emulator import RunningEmulator
from demo_store import catalog, integration
from demo_store.testing import create_test_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shop(emulator: RunningEmulator, tmp_path: Path, demo_template: Path) -> Iterator[Flask]:
    app = create_test_app(emulator, tmp_path / "instance", demo_template, DATACUE_DELIVERY="outbox")
    yield app
    app.extensions["datacue"].delivery.stop()


def since(emulator: RunningEmulator, first_id: int) -> list[dict[str, Any]]:
    """Requests and events the emulator received from ``first_id`` on, oldest first."""
    items = [item for item in emulator.requests() + emulator.events() if item["id"] >= first_id]
    return sorted(items, key=lambda item: item["id"])


def next_id(emulator: RunningEmulator) -> int:
    return max((item["id"] for item in emulator.requests() + emulator.events()), default=0) + 1


def shop_command(shop: Flask, *arguments: str) -> Result:
    result = shop.test_cli_runner().invoke(args=["shop", *arguments])
    assert result.exit_code == 0, result.output
    return result


def stored_variants(emulator: RunningEmulator, product_id: str) -> dict[str, dict[str, Any]]:
    return {v["variant_id"]: v for v in emulator.state.store.variants() if v["product_id"] == product_id}


def test_a_restock_reaches_datacue_by_itself(shop: Flask, emulator: RunningEmulator) -> None:
    with shop.app_context():
        variant = next(v for v in catalog.load_product("p101").variants if v.stock < 20)  # type: ignore[union-attr]
        variant_id, before = variant.variant_id, variant.stock
    first = next_id(emulator)
    result = shop_command(shop, "restock", "p101", variant_id, "5")
    assert f"p101/{variant_id}: stock {before} -> {before + 5}" in result.output
    assert "DataCue was sent the change" in result.output
    (request,) = since(emulator, first)  # nothing else: no hand-written call, no event
    assert (request["method"], request["path"]) == ("PUT", f"/v1/products/p101/{variant_id}")
    assert request["body"]["stock"] == before + 5 and request["body"]["available"] is True
    assert stored_variants(emulator, "p101")[variant_id]["stock"] == before + 5
    with shop.app_context():
        assert catalog.load_product("p101").variant(variant_id).stock == before + 5  # type: ignore[union-attr]


def test_a_new_price_reaches_every_variant_of_the_product(shop: Flask, emulator: RunningEmulator) -> None:
    with shop.app_context():
        variants = [v.variant_id for v in catalog.load_product("p117").variants]  # type: ignore[union-attr]
    first = next_id(emulator)
    result = shop_command(shop, "price", "p117", "99.50")
    assert "p117: $99.50 (full price $154.00)" in result.output
    sent = since(emulator, first)
    assert sorted((r["method"], r["path"]) for r in sent) == sorted(
        ("PUT", f"/v1/products/p117/{variant_id}") for variant_id in variants
    )
    assert {r["body"]["price"] for r in sent} == {99.5}
    assert {r["body"]["extra"]["discount"] for r in sent} == {"35%"}  # the card's badge follows
    assert {v["price"] for v in stored_variants(emulator, "p117").values()} == {99.5}


def test_a_price_that_changes_nothing_sends_nothing(shop: Flask, emulator: RunningEmulator) -> None:
    shop_command(shop, "price", "p117", "99.50")
    first = next_id(emulator)
    shop_command(shop, "price", "p117", "99.50")
    assert since(emulator, first) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["restock", "p101", "purple-xxl", "5"], "no variant 'purple-xxl' of product 'p101'"),
        (["restock", "p101", "navy-m", "0"], "0 is not in the range x>=1"),
        (["price", "p999", "10"], "no product 'p999'"),
        (["price", "p101", "ten"], "'ten' is not a price"),
        (["price", "p101", "10", "--full-price", "5"], "the full price is below the price"),
    ],
)
def test_a_mistaken_command_changes_nothing(
    shop: Flask, emulator: RunningEmulator, arguments: list[str], message: str
) -> None:
    first = next_id(emulator)
    result = shop.test_cli_runner().invoke(args=["shop", *arguments])
    assert result.exit_code == 2 and message in result.output
    assert since(emulator, first) == []


def test_the_views_make_no_store_call_of_their_own() -> None:
    """The views change rows; DataCue's store data is the declared sync's (integration.py) alone."""
    for name in ("basket.py", "accounts.py", "shop.py", "admin.py"):
        tree = ast.parse((ROOT / "demo_store" / name).read_text(encoding="utf-8"))
        called = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert not called & {"queued", "client", "resync"}, name
    assert integration.datacue.sources == {}  # the import reads the declared models too
    declared = {(d.model.__name__, d.resource.name) for d in integration.datacue.model_sync.declarations}
    assert declared == {
        ("Category", "categories"),
        ("Variant", "products"),
        ("Customer", "users"),
        ("Guest", "users"),
        ("Order", "orders"),
    }

