"""The historical import through a real loopback server: formats, rejects, skip-existing, resume, CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from benchmarks.sink import API_KEY, API_SECRET, Answer, Sink
from cue_front import importer as importer_module
from cue_front.client import Client
from cue_front.importer import (
    Checkpoint,
    FileSource,
    Importer,
    ImportSummary,
    IterableSource,
    SourceError,
    read_json_array,
)
from tests.support.waiting import wait_for

BATCH_PATH = "/v1/batch/products"


def product(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "product_id": f"p{number}",
        "variant_id": "v1",
        "categories": ["jeans"],
        "name": f"Jeans {number}",
        "price": 99.5,
        "full_price": 120,
        "stock": 3,
        "photo_url": f"/img/{number}.jpg",
        "link": f"/p/{number}",
        **changes,
    }


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def datacue(sink: Sink) -> Iterator[Client]:
    with Client(API_KEY, API_SECRET, sink.url, retries=0, backoff_factor=0) as client:
        yield client


def run_import(client: Client, source: Any, resource: str = "products", **options: Any) -> ImportSummary:
    return Importer(client, resource, **options).run(source)


def received_ids(sink: Sink, path: str = BATCH_PATH) -> list[str]:
    return [item["product_id"] for item in sink.batch_items(path)]


def read_rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- formats -------------------------------------------------------------------------------------


def test_jsonl_import_with_rejects(tmp_path: Path, sink: Sink, datacue: Client) -> None:
    lines = [json.dumps(product(n)) for n in range(1203)]
    lines.insert(10, json.dumps(product(9999, price="99,50")))
    lines.insert(20, "{not json")
    lines.insert(30, "")
    source_path = tmp_path / "products.jsonl"
    source_path.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    progress: list[Any] = []

    summary = run_import(
        datacue, FileSource(source_path, "products"), rejects=rejects, on_progress=progress.append
    )

    assert (summary.sent, summary.rejected, summary.failed, summary.stopped) == (1203, 2, 0, None)
    assert not summary.ok
    assert sorted(received_ids(sink)) == sorted(f"p{n}" for n in range(1203))
    assert all(len(r.json()["batch"]) <= 500 for r in sink.received())
    invalid, unreadable = read_rejects(rejects)
    assert invalid["index"] == 10
    assert invalid["key"] == "p9999/v1"
    assert invalid["error"] == "price: expected a number, got '99,50'"
    assert invalid["errors"] == [{"path": "price", "message": "expected a number, got '99,50'"}]
    assert invalid["record"]["price"] == "99,50"
    assert unreadable["line"] == 21
    assert unreadable["record"] == "{not json"
    assert "not JSON" in unreadable["error"]
    assert progress[-1].items_done == 1205
    assert progress[-1].bytes_read == source_path.stat().st_size
    assert summary.line().startswith("products: 1203 sent, 2 rejected, 0 failed in ")


CSV_TEXT = """\
product_id,variant_id,categories,name,price,full_price,available,stock,rating,extra,photo_url,link
p1,v1,men|summer|jeans,"Cool jeans, blue",99.50,120,true,15,90,"{""badge"":""new""}",/i/1.jpg,/p/1
p2,no-variants,"[""shirts""]",Shirt,30,30,FALSE,0,,,/i/2.jpg,/p/2
p3,v1,jeans,Bad price,"99,50",120,true,1,,,/i/3.jpg,/p/3
"""


def test_csv_import_decodes_documented_columns(tmp_path: Path, sink: Sink, datacue: Client) -> None:
    source_path = tmp_path / "products.csv"
    source_path.write_text(CSV_TEXT)
    rejects = tmp_path / "rejects.jsonl"

    summary = run_import(datacue, FileSource(source_path, "products"), rejects=rejects)

    assert (summary.sent, summary.rejected) == (2, 1)
    first, second = sink.batch_items(BATCH_PATH)
    assert first == {
        "product_id": "p1",
        "variant_id": "v1",
        "categories": ["men", "summer", "jeans"],
        "name": "Cool jeans, blue",
        "price": 99.5,
        "full_price": 120,
        "available": True,
        "stock": 15,
        "rating": 90,
        "extra": {"badge": "new"},
        "photo_url": "/i/1.jpg",
        "link": "/p/1",
    }
    assert second["categories"] == ["shirts"]
    assert second["available"] is False
    assert "rating" not in second
    (rejected,) = read_rejects(rejects)
    assert rejected["error"] == "price: expected a number, got '99,50'"


def test_csv_users_and_orders(tmp_path: Path, sink: Sink, datacue: Client) -> None:
    users = tmp_path / "users.csv"
    users.write_text(
        "user_id,first_name,email_subscriber,wishlist,profile,timestamp\n"
        'u1,Ana,yes,P1|P3,"{""segment"":""gold""}",2018-04-04 23:29:04-03:00\n'
    )
    orders = tmp_path / "orders.csv"
    cart = json.dumps([{"product_id": "p1", "variant_id": "v1", "quantity": 2, "unit_price": 24}])
    with orders.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["order_id", "user_id", "cart", "timestamp"])
        writer.writerow(["o1", "u1", cart, "2018-04-04 23:29:04Z"])

    assert run_import(datacue, FileSource(users, "users"), "users").ok
    assert run_import(datacue, FileSource(orders, "orders"), "orders").ok

    assert sink.batch_items("/v1/batch/users") == [
        {
            "user_id": "u1",
            "first_name": "Ana",
            "email_subscriber": True,
            "wishlist": ["P1", "P3"],
            "profile": {"segment": "gold"},
            "timestamp": "2018-04-05 02:29:04Z",
        }
    ]
    (order,) = sink.batch_items("/v1/batch/orders")
    assert order["cart"][0]["quantity"] == 2
    assert order["order_status"] == "completed"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("product_id,variant_id,colour", "'colour' are not documented fields"),
        ("product_id,name", "lacks required column(s): variant_id"),
    ],
)
def test_a_bad_csv_header_stops_before_sending(
    tmp_path: Path, sink: Sink, datacue: Client, header: str, message: str
) -> None:
    source_path = tmp_path / "products.csv"
    source_path.write_text(header + "\np1,v1,blue\n")
    summary = run_import(datacue, FileSource(source_path, "products"))
    assert summary.stopped is not None and message in summary.stopped
    assert sink.received() == []


def test_json_array_import(tmp_path: Path, sink: Sink, datacue: Client) -> None:
    records = [product(n) for n in range(700)]  # ~130 kB: several read chunks
    source_path = tmp_path / "products.json"
    source_path.write_text(json.dumps(records, indent=2))
    summary = run_import(datacue, FileSource(source_path, "products"))
    assert (summary.sent, summary.ok) == (700, True)
    assert sorted(received_ids(sink)) == sorted(f"p{n}" for n in range(700))  # batches race


def test_json_array_reader_across_tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer_module.readers, "READ_SIZE", 3)
    text = ' [ {"a": 1, "b": [1, 2]} , 12345 ,\n{"c": "x\\u00e9"},{}] '
    records = list(read_json_array(io.BytesIO(text.encode())))
    assert [r.record for r in records] == [{"a": 1, "b": [1, 2]}, 12345, {"c": "xé"}, {}]
    assert [r.problem for r in records] == [None, "item 1: expected a JSON object", None, None]
    assert [r.record for r in read_json_array(io.BytesIO(text.encode()), skip=2)] == [{"c": "xé"}, {}]
    assert list(read_json_array(io.BytesIO(b"[]"))) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1}', "does not start with '['"),
        ('[{"a": 1} {"b": 2}]', "expected ',' or ']'"),
        ('[{"a": 1}, {"b": ', "invalid JSON in item 1"),
        ('[{"a": 1},', "ends early"),
    ],
)
def test_a_broken_json_array_is_a_source_error(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=re.escape(message)):
        list(read_json_array(io.BytesIO(text.encode())))


def test_a_broken_json_array_stops_the_import_after_what_was_read(
    tmp_path: Path, sink: Sink, datacue: Client
) -> None:
    source_path = tmp_path / "products.json"
    source_path.write_text(json.dumps([product(n) for n in range(3)])[:-1] + ", oops]")
    summary = run_import(datacue, FileSource(source_path, "products"))
    assert summary.stopped is not None and "invalid JSON in item 3" in summary.stopped
    assert received_ids(sink) == ["p0", "p1", "p2"]


# -- behaviour -----------------------------------------------------------------------------------


def test_iterable_source_and_server_refusals(tmp_path: Path, sink: Sink, datacue: Client) -> None:
    sink.script("POST", BATCH_PATH, Answer(201), Answer(400, {"error": "category 'jeans' unknown"}))
    rejects = tmp_path / "rejects.jsonl"
    summary = run_import(
        datacue,
        IterableSource(product(n) for n in range(30)),
        batch_size=10,
        concurrency=1,
        rejects=rejects,
    )
    assert (summary.sent, summary.failed, summary.rejected) == (20, 10, 0)
    entries = read_rejects(rejects)
    assert [e["index"] for e in entries] == list(range(10, 20))
    assert entries[0]["status"] == 400
    assert "category 'jeans' unknown" in entries[0]["error"]
    assert entries[0]["record"]["product_id"] == "p10"


def test_skip_existing_uses_the_overview(sink: Sink, datacue: Client) -> None:
    sink.overview_ids["products"] = ["p1", "p3"]
    records = [product(0), product(1), product(1, variant_id="v2"), product(2), product(3)]
    summary = run_import(datacue, IterableSource(records), skip_existing=True)
    assert (summary.sent, summary.skipped) == (2, 3)
    assert received_ids(sink) == ["p0", "p2"]
    assert sink.received("GET", "/v1/overview/products")


def test_a_service_failure_stops_and_resume_finishes(tmp_path: Path, sink: Sink, datacue: Client) -> None:
    source_path = write_jsonl(tmp_path / "products.jsonl", [product(n) for n in range(100)])
    checkpoint = Checkpoint(tmp_path / "products.checkpoint")
    sink.script("POST", BATCH_PATH, Answer(201), Answer(201), Answer(201))
    sink.fallback("POST", BATCH_PATH, Answer(503))

    stopped = run_import(
        datacue, FileSource(source_path, "products"), batch_size=10, concurrency=1, checkpoint=checkpoint
    )
    assert stopped.sent == 30
    assert stopped.stopped is not None and "503" in stopped.stopped
    assert "run again with --resume" in stopped.line()
    assert checkpoint.load()["records_done"] == 30  # type: ignore[index]

    sink.fallback("POST", BATCH_PATH, None)
    resumed = run_import(
        datacue,
        FileSource(source_path, "products"),
        batch_size=10,
        checkpoint=checkpoint,
        resume=True,
    )
    assert (resumed.resumed_after, resumed.sent, resumed.ok) == (30, 70, True)
    accepted = [r for r in sink.received("POST", BATCH_PATH) if r.signature_ok]
    ids = [i["product_id"] for r in accepted for i in r.json()["batch"]]
    assert sorted(set(ids)) == sorted(f"p{n}" for n in range(100))
    assert not checkpoint.path.exists()


def test_resume_refuses_another_files_checkpoint(tmp_path: Path, datacue: Client) -> None:
    checkpoint = Checkpoint(tmp_path / "c.checkpoint")
    checkpoint.save({"resource": "products", "source": {"path": "/elsewhere.jsonl"}, "records_done": 5})
    source_path = write_jsonl(tmp_path / "products.jsonl", [product(0)])
    summary = run_import(datacue, FileSource(source_path, "products"), checkpoint=checkpoint, resume=True)
    assert summary.stopped is not None and "belongs to another import" in summary.stopped


KILLABLE_IMPORT = """
import sys
from cue_front.client import Client
from cue_front.importer import Checkpoint, FileSource, Importer
url, key, secret, source, checkpoint = sys.argv[1:]
client = Client(key, secret, url, retries=0)
Importer(client, "products", concurrency=2, checkpoint=Checkpoint(checkpoint)).run(
    FileSource(source, "products")
)
"""


def test_resume_after_a_killed_run(tmp_path: Path, sink: Sink, datacue: Client) -> None:
    total = 5000  # ten batches of 500
    source_path = write_jsonl(tmp_path / "products.jsonl", [product(n) for n in range(total)])
    checkpoint = Checkpoint(tmp_path / "products.checkpoint")
    # The first four batches are acknowledged, then DataCue stops answering and the import is
    # killed. Chosen by content: two batches are in flight at once and may arrive in either order.
    acknowledged = {f"p{n}" for n in range(2000)}
    sink.choose(
        "POST",
        BATCH_PATH,
        lambda body: (
            Answer(201)
            if json.loads(body)["batch"][0]["product_id"] in acknowledged
            else Answer(201, delay=60)
        ),
    )
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLABLE_IMPORT,
            sink.url,
            API_KEY,
            API_SECRET,
            str(source_path),
            str(checkpoint.path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: len(sink.received()) >= 6 or child.poll() is not None)
        wait_for(lambda: (checkpoint.load() or {}).get("records_done") == 2000)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        _, errors = child.communicate()
    assert child.returncode == -signal.SIGKILL, errors.decode()

    sink.choose("POST", BATCH_PATH, None)
    before = len(sink.received())
    summary = run_import(datacue, FileSource(source_path, "products"), checkpoint=checkpoint, resume=True)

    assert summary.ok and summary.resumed_after == 2000
    everything = received_ids(sink)
    assert set(everything) == {f"p{n}" for n in range(total)}
    resent = len(everything) - total
    in_flight = 2 * 2 * 500  # 2 * concurrency batches of 500
    assert 0 <= resent <= in_flight
    assert len(sink.received()) - before == 6  # the resumed run sent only the last 3000 records
    assert not checkpoint.path.exists()


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def shop(make_app: Callable[..., Flask], sink: Sink) -> Flask:
    return make_app(
        DATACUE_API_KEY=API_KEY, DATACUE_API_SECRET=API_SECRET, DATACUE_API_URL=sink.url, DATACUE_RETRIES=0
    )


def test_cli_imports_a_file(tmp_path: Path, shop: Flask, sink: Sink) -> None:
    source_path = write_jsonl(tmp_path / "products.jsonl", [product(n) for n in range(1200)])
    result = shop.test_cli_runner().invoke(args=["datacue", "import", "products", str(source_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("products: 1200 sent, 0 rejected, 0 failed in ")
    assert len(received_ids(sink)) == 1200
    assert not (tmp_path / "products.jsonl.checkpoint").exists()
    assert not (tmp_path / "products.jsonl.rejects.jsonl").exists()


def test_cli_exit_status_is_1_when_items_are_rejected(tmp_path: Path, shop: Flask, sink: Sink) -> None:
    source_path = write_jsonl(tmp_path / "products.data", [product(0), product(1, stock="many")])
    rejects = tmp_path / "bad.jsonl"
    result = shop.test_cli_runner().invoke(
        args=[
            "datacue",
            "import",
            "products",
            str(source_path),
            "--format",
            "jsonl",
            "--rejects",
            str(rejects),
        ]
    )
    assert result.exit_code == 1
    assert "1 sent, 1 rejected" in result.stdout
    assert read_rejects(rejects)[0]["error"] == "stock: expected an integer, got 'many'"


def test_cli_reads_the_registered_source(shop: Flask, sink: Sink) -> None:
    datacue = shop.extensions["datacue"].extension

    @datacue.source("categories")
    def all_categories() -> Iterator[dict[str, Any]]:
        for number in range(3):
            yield {"category_id": f"c{number}", "name": f"Category {number}"}

    result = shop.test_cli_runner().invoke(args=["datacue", "import", "categories", "--concurrency", "1"])
    assert result.exit_code == 0, result.output
    assert [c["category_id"] for c in sink.batch_items("/v1/batch/categories")] == ["c0", "c1", "c2"]


def test_cli_needs_a_file_or_a_source(shop: Flask) -> None:
    result = shop.test_cli_runner().invoke(args=["datacue", "import", "users"])
    assert result.exit_code == 2
    assert '@datacue.source("users")' in result.output


def test_cli_unknown_extension_needs_format(tmp_path: Path, shop: Flask) -> None:
    source_path = write_jsonl(tmp_path / "products.txt", [product(0)])
    result = shop.test_cli_runner().invoke(args=["datacue", "import", "products", str(source_path)])
    assert result.exit_code == 2
    assert "--format" in result.output


def test_cli_resume(tmp_path: Path, shop: Flask, sink: Sink) -> None:
    source_path = write_jsonl(tmp_path / "products.jsonl", [product(n) for n in range(30)])
    sink.script("POST", BATCH_PATH, Answer(201))
    sink.fallback("POST", BATCH_PATH, Answer(500))
    runner = shop.test_cli_runner()
    args = ["datacue", "import", "products", str(source_path), "--batch-size", "10", "--concurrency", "1"]
    first = runner.invoke(args=args)
    assert first.exit_code == 1
    assert "stopped:" in first.stdout
    sink.fallback("POST", BATCH_PATH, None)
    second = runner.invoke(args=[*args, "--resume"])
    assert second.exit_code == 0, second.output
    assert "20 sent" in second.stdout and "resumed after 10 records" in second.stdout


def test_cli_overview(shop: Flask, sink: Sink) -> None:
    sink.overview_summary = {"products": {"products": 500, "variants": 2500}, "orders": 5000, "users": 4900}
    sink.overview_ids["categories"] = ["c1", "c2"]
    result = shop.test_cli_runner().invoke(args=["datacue", "overview"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split() for line in result.stdout.splitlines())
    assert lines == {
        "products": "500",
        "variants": "2,500",
        "categories": "2",
        "users": "4,900",
        "orders": "5,000",
    }


# -- end to end, against the emulator --------------------------------------------------------------


def test_cli_import_then_overview_against_the_emulator(
    tmp_path: Path, make_app: Callable[..., Flask], emulator: Any
) -> None:
    shop = make_app(**emulator.config)
    source_path = write_jsonl(
        tmp_path / "products.jsonl",
        [product(n, variant_id=f"v{n % 2}") for n in range(1500)] + [product(1500, price=-1)],
    )
    runner = shop.test_cli_runner()

    imported = runner.invoke(args=["datacue", "import", "products", str(source_path)])
    assert imported.exit_code == 1  # one item rejected
    assert imported.stdout.startswith("products: 1500 sent, 1 rejected, 0 failed in ")
    assert emulator.overview()["products"] == 1500

    again = runner.invoke(args=["datacue", "import", "products", str(source_path), "--skip-existing"])
    assert "0 sent, 1 rejected" in again.stdout and "1500 skipped" in again.stdout

    overview = runner.invoke(args=["datacue", "overview"])
    assert overview.exit_code == 0, overview.output
    counts = dict(line.split() for line in overview.stdout.splitlines())
    assert counts["products"] == "1,500"
    assert counts["variants"] == "1,500"
