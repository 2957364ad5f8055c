"""The README's demo section says what the demo does: its numbers, its pageviews, its commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cue_front.emulator import RunningEmulator
from demo_store import create_app, settings
from demo_store.testing import rows
from tests.support.demo_forms import add, checkout

README = Path(__file__).resolve().parents[2] / "README.md"


def demo_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## The demo store") : text.index("## Integration in 20 lines")]


def test_its_numbers_are_the_shop_s_and_say_why_users_outnumber_customers(
    shop: Flask, emulator: RunningEmulator
) -> None:
    section = demo_section()
    customers = rows(shop, "SELECT count(*) FROM users")[0][0]
    guests = rows(shop, "SELECT count(*) FROM guests")[0][0]
    counts = emulator.overview()
    assert counts["users"] == customers + guests
    seeded = re.search(r"seeded instance/demo-store.sqlite3: (.+)\n", section)
    assert seeded is not None
    assert seeded.group(1) == (
        f"{counts['products']} products ({counts['variants']} variants) in {counts['categories']} categories,"
        f" {customers} customers and {guests} guests, {counts['orders']} past orders"
    )
    for resource in ("categories", "products", "users", "orders"):
        sent = counts["variants"] if resource == "products" else counts[resource]
        assert f"    {resource}: {sent} sent, 0 rejected, 0 failed" in section
    why = re.search(
        r"the (\d+) users are the (\d+) customers with an account\s+and the (\d+) guests", section
    )
    assert why is not None and tuple(map(int, why.groups())) == (counts["users"], customers, guests)


#: The pages the README says send an event, and those it says send none.
SENDING = {"home": "/", "category": "/c/kitchen", "product": "/p/p144", "search": "/search?q=mug"}
SILENT = {
    "cart": "/cart",
    "order confirmation": None,  # the order's own page
    "404": "/no/such/page",
    "account": "/account",
    "wishlist": "/wishlist",
    "login": "/login",
    "registration": "/register",
    "checkout": "/checkout",
}


def test_it_names_the_pages_that_send_a_pageview_and_those_that_do_not(
    client: FlaskClient, emulator: RunningEmulator
) -> None:
    section = " ".join(demo_section().split())
    assert "one `pageview` per page" not in section
    assert (
        "a `pageview` for every home, category and product page, and a `search` for every search page"
        in section
    )
    assert "the cart, order confirmation and 404 pages send none" in section
    assert (
        "nor do the account and wishlist pages, or those where a password or a card is typed"
        " (login, registration, checkout)" in section
    )
    for path in SENDING.values():
        before = len(emulator.events())
        assert client.get(path).status_code == 200
        assert len(emulator.events()) == before + 1, path
    add(client, "p144", "no-variants")
    order_path = checkout(client, email="readme@example.org").headers["Location"]
    client.post("/login", data={"email": "ana@example.com", "password": "demo"})
    add(client, "p144", "no-variants")
    for page, path in SILENT.items():
        before = len(emulator.events())
        client.get(path or order_path)
        assert len(emulator.events()) == before, page


def readme_commands() -> list[list[str]]:
    """The ``flask --app demo_store ...`` commands of the README's command-line block."""
    block = re.search(r"```sh\n(\.venv/bin/flask --app demo_store .+?)```", demo_section(), re.DOTALL)
    assert block is not None
    return [shlex.split(line.split("#")[0])[3:] for line in block.group(1).splitlines()]


@pytest.mark.parametrize("arguments", readme_commands(), ids=" ".join)
def test_its_commands_work_beside_a_running_demo(
    emulator: RunningEmulator, shop: Flask, monkeypatch: pytest.MonkeyPatch, arguments: list[str]
) -> None:
    for name in settings.ENVIRONMENT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    instance = Path(shop.instance_path)
    settings.record_emulator(instance, emulator.config)
    beside = create_app(instance_path=str(instance))
    result = beside.test_cli_runner().invoke(args=arguments)
    assert result.exit_code == 0, result.output
    if arguments[:2] == ["datacue", "reconcile"]:
        assert "dry run: nothing was changed" in result.output
    beside.extensions["datacue"].close()
