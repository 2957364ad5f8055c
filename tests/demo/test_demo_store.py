"""The demo store itself: its generated shop, instance folder, history import, `python -m demo_store`."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import pytest
import requests
from flask import Flask
from werkzeug.security import check_password_hash

from cue_front.emulator import RunningEmulator
from demo_store import create_app, db, integration, seed
from demo_store.db import Base
from demo_store.models import ADDED_COLUMNS
from demo_store.testing import rows
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def seeded_database(path: Path) -> sqlite3.Connection:
    """A database seeded through the demo's models, opened with plain sqlite3 to read."""
    engine = db.engine_for(path)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        seed.seed(connection, now=NOW, password_hasher=lambda password: f"hash:{password}")
    engine.dispose()
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    return connection


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = seeded_database(tmp_path / "shop.sqlite3")
    yield connection
    connection.close()


def count(connection: sqlite3.Connection, query: str) -> int:
    return int(connection.execute(query).fetchone()[0])


def test_the_generated_shop_has_what_the_demo_needs(seeded: sqlite3.Connection) -> None:
    assert count(seeded, "SELECT count(*) FROM categories") >= 5
    assert count(seeded, "SELECT count(*) FROM products") >= 40
    with_variants = count(
        seeded,
        "SELECT count(*) FROM products WHERE product_id IN"
        " (SELECT product_id FROM variants WHERE size IS NOT NULL)",
    )
    assert with_variants * 2 >= count(seeded, "SELECT count(*) FROM products")
    assert count(seeded, "SELECT count(*) FROM variants WHERE stock = 0") > 0
    assert count(seeded, "SELECT count(*) FROM variants WHERE stock > 0") > 0
    assert count(seeded, "SELECT count(*) FROM products WHERE price_cents < full_price_cents") >= 10
    assert count(seeded, "SELECT count(*) FROM products WHERE rating IS NULL OR description = ''") == 0
    # Two products are sold out in every size.
    assert (
        count(
            seeded,
            "SELECT count(*) FROM (SELECT product_id FROM variants GROUP BY product_id"
            " HAVING max(stock) = 0)",
        )
        >= 2
    )
    # A history: orders over the past months, by customers and guests, a few cancelled.
    assert count(seeded, "SELECT count(*) FROM orders") >= 200
    assert count(seeded, "SELECT count(*) FROM orders WHERE user_id IS NULL") > 0
    assert count(seeded, "SELECT count(*) FROM orders WHERE status = 'cancelled'") > 0
    assert count(seeded, "SELECT count(*) FROM orders WHERE created_at >= '2026-06-01 12:00:00Z'") == 0
    accounts = seeded.execute(
        "SELECT email, password_hash FROM users WHERE password_hash IS NOT NULL"
    ).fetchall()
    assert [row["email"] for row in accounts] == [account.email for account in seed.DEMO_ACCOUNTS]
    assert {row["password_hash"] for row in accounts} == {f"hash:{seed.DEMO_PASSWORD}"}
    for account_number in range(1001, 1004):
        orders = count(seeded, f"SELECT count(*) FROM orders WHERE user_id = 'u{account_number}'")
        assert 2 <= orders <= 15  # enough to know their taste, not so much they bought everything


def test_the_same_seed_gives_the_same_shop(seeded: sqlite3.Connection, tmp_path: Path) -> None:
    again = seeded_database(tmp_path / "again.sqlite3")
    for table in ("products", "variants", "users", "guests", "orders", "order_lines", "wishlist"):
        query = f"SELECT * FROM {table} ORDER BY 1, 2"
        assert [tuple(r) for r in seeded.execute(query)] == [tuple(r) for r in again.execute(query)]
    again.close()


def test_the_database_and_the_secret_live_in_the_instance_folder(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    instance = tmp_path / "instance"
    app = create_app(emulator.config, instance_path=str(instance))
    assert Path(app.config["DEMO_DATABASE"]) == instance / "demo-store.sqlite3"
    assert app.extensions["demo_store.seeded"].products == 48  # seeded on first start
    assert app.config["DATACUE_OUTBOX_PATH"] == f"{instance}/datacue-outbox.sqlite3"
    assert app.config["DATACUE_DELIVERY"] == "outbox" and app.config["DATACUE_SSR"] is True
    secret = instance / "secret-key"
    assert secret.stat().st_mode & 0o777 == 0o600
    again = create_app(emulator.config, instance_path=str(instance))
    assert again.extensions["demo_store.seeded"] is None  # not seeded twice
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"] == secret.read_text()
    ((hashed,),) = rows(app, "SELECT password_hash FROM users WHERE user_id = 'u1001'")
    assert check_password_hash(hashed, seed.DEMO_PASSWORD)


def test_the_history_import_gives_datacue_the_whole_shop(emulator: RunningEmulator, shop: Flask) -> None:
    assert emulator.overview() == {
        "products": 48,
        "variants": 223,
        "categories": 6,
        "users": 39,
        "orders": 252,
    }
    # Through the batch endpoints, as the guide's step 1 says: 500 items at most per request.
    assert len(emulator.requests(type="orders.batch_create")) == 1
    assert not integration.needs_import(shop)
    emulator.reset()  # DataCue lost it (a new account, a wiped emulator): import again
    assert integration.needs_import(shop)


def test_flask_datacue_import_reads_the_shop_through_its_declared_models(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    app = create_app({**emulator.config, "DATACUE_DELIVERY": "sync"}, instance_path=str(tmp_path))
    result = app.test_cli_runner().invoke(args=["datacue", "import", "categories"])
    assert result.exit_code == 0, result.output
    assert "categories: 6 sent, 0 rejected, 0 failed" in result.output
    assert emulator.overview()["categories"] == 6


def read_until(stream: IO[str], marker: str, seen: list[str]) -> None:
    for text in stream:
        seen.append(text)
        if marker in text:
            return
    raise AssertionError(f"the demo ended before printing {marker!r}:\n{''.join(seen)}")


def demo_process(instance: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATACUE_")}
    environment.update(env or {}, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "demo_store", "--port", "0", "--instance", str(instance), *extra],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str], seen: list[str]) -> str:
    process.send_signal(signal.SIGINT)  # Ctrl-C
    process.send_signal(signal.SIGINT)  # and again, impatiently: the shutdown still completes
    rest, _ = process.communicate(timeout=30)
    return "".join(seen) + rest


def add_to_cart_at(shop: str, host: str) -> None:
    """A browser adds a product to its cart with the product page's form, saying the shop's address
    is ``host`` (its ``Host`` header)."""
    browser = requests.Session()
    browser.headers["Host"] = host
    page = browser.get(f"{shop}/p/p144", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    form = {"csrf_token": token.group(1), "product_id": "p144", "variant_id": "no-variants"}
    assert browser.post(f"{shop}/cart/add", data=form, allow_redirects=False, timeout=10).status_code == 302


def test_python_m_demo_store_serves_the_shop_and_the_emulator_until_ctrl_c(tmp_path: Path) -> None:
    process = demo_process(tmp_path / "instance")
    seen: list[str] = []
    try:
        read_until(process.stdout, "Press Ctrl-C", seen)  # type: ignore[arg-type]
        output = "".join(seen)
        shop = re.search(r"Shop: +(http://\S+)", output)
        debugger = re.search(r"Events debugger: +(http://\S+)", output)
        assert shop and debugger, output
        assert "seeded" in output and "48 products (223 variants) in 6 categories" in output
        assert "orders: 252 sent, 0 rejected, 0 failed" in output
        assert "registered 12 banners with the emulator" in output
        home = requests.get(shop.group(1), timeout=10)
        assert home.status_code == 200 and "Fernhill Supply" in home.text and "data-dc-banner-id" in home.text
        page = requests.get(debugger.group(1), timeout=10)
        assert page.status_code == 200 and "pageview" in page.text
        # The cart's link leads to the address it serves on, whatever Host a request names.
        add_to_cart_at(shop.group(1), host="evil.example")
        carts = f"{debugger.group(1)}/_emulator/events?type=cart"
        wait_for(lambda: bool(requests.get(carts, timeout=10).json()))
        (cart,) = requests.get(carts, timeout=10).json()
        assert cart["body"]["event"]["cart_link"] == f"{shop.group(1)}/cart"
        # cue-front ignores a browser's word for who it is, and says so in the demo's console.
        claim = {"user": {"user_id": "u1001"}, "event": {"type": "pageview", "subtype": "home"}}
        same_site = {"Origin": shop.group(1)}
        assert requests.post(f"{shop.group(1)}/datacue/events", json=claim, headers=same_site, timeout=10).ok
    finally:
        output = stop(process, seen)
    assert process.returncode == 0, output
    assert output.rstrip().endswith("Stopped.")
    assert "WARNING cue_front.proxy: datacue: a browser claimed user_id 'u1001'" in output
    assert "logs nowhere" not in output  # cue-front's warning at init_app when its log goes nowhere
    for url in (shop.group(1), debugger.group(1)):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
    assert sorted(path.name for path in (tmp_path / "instance").glob("*.sqlite3")) == [
        "datacue-emulator.sqlite3",
        "datacue-outbox.sqlite3",
        "demo-store.sqlite3",
    ]


def test_with_datacue_keys_it_starts_no_emulator(emulator: RunningEmulator, tmp_path: Path) -> None:
    process = demo_process(tmp_path / "instance", env=dict(emulator.config))
    seen: list[str] = []
    try:
        read_until(process.stdout, "Press Ctrl-C", seen)  # type: ignore[arg-type]
        output = "".join(seen)
        assert f"DataCue: {emulator.api_url} (DATACUE_API_KEY is set: no emulator)" in output
        assert "Events debugger" not in output and "banners" not in output
        shop = re.search(r"Shop: +(http://\S+)", output)
        assert shop is not None
        assert requests.get(f"{shop.group(1)}/p/p101", timeout=10).status_code == 200
    finally:
        output = stop(process, seen)
    assert process.returncode == 0, output
    # The history and the product pageview went to the DataCue it was given.
    assert emulator.overview()["products"] == 48
    assert [item["body"]["event"] for item in emulator.events(type="pageview")] == [
        {"type": "pageview", "subtype": "product", "product_id": "p101"}
    ]


def test_a_database_of_an_earlier_demo_gets_the_columns_and_tables_added_since(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite3"
    earlier = seeded_database(path)  # then made as an earlier demo made it: without those
    guest_orders = earlier.execute(
        "SELECT email, name FROM orders WHERE user_id IS NULL ORDER BY email"
    ).fetchall()
    earlier.execute("DROP TABLE guests")
    for table, column in ADDED_COLUMNS:
        earlier.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    earlier.commit()
    earlier.close()
    assert seed.ensure_database(path) is None  # seeded already: only brought up to date
    with sqlite3.connect(path) as connection:
        for table, column in ADDED_COLUMNS:
            assert column in {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        kinds = dict(connection.execute("SELECT name, kind FROM products"))
        guests = connection.execute(
            "SELECT user_id, email, first_name FROM guests ORDER BY user_id"
        ).fetchall()
    assert kinds == seed.KINDS
    # The guest checkouts of its history became guests, known by their email.
    assert guests == [(email, email, name.split()[0]) for email, name in guest_orders]
