"""The emulator's REST API: every documented endpoint and status code, signatures, validation."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from cue_front.emulator import RunningEmulator, run_emulator
from cue_front.signing import rest_authorization, sign


def product(product_id: str, variant_id: str = "v1", **changes: Any) -> dict[str, Any]:
    item = {
        "product_id": product_id,
        "variant_id": variant_id,
        "categories": ["jeans"],
        "name": f"Jeans {product_id}",
        "price": 25,
        "full_price": 30,
        "stock": 5,
        "photo_url": f"/img/{product_id}.jpg",
        "link": f"/products/{product_id}",
    }
    item.update(changes)
    return item


def order(order_id: str, user_id: str = "u1", *product_ids: str, **changes: Any) -> dict[str, Any]:
    cart = [
        {"product_id": pid, "variant_id": "v1", "quantity": 1, "unit_price": 25, "currency": "USD"}
        for pid in product_ids or ("p1",)
    ]
    return {"order_id": order_id, "user_id": user_id, "cart": cart, **changes}


def ids(emulator: RunningEmulator, resource: str) -> list[str]:
    response = emulator.rest("GET", f"/overview/{resource}")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(body["ids"])
    result: list[str] = body["ids"]
    return result


# -- products ---------------------------------------------------------------------------------


def test_create_product_answers_201_and_overview_counts_products_and_variants_apart(
    emulator: RunningEmulator,
) -> None:
    for item in (product("p1", "v1"), product("p1", "v2"), product("p2")):
        assert emulator.rest("POST", "/products", item).status_code == 201

    overview = emulator.rest("GET", "/overview")

    assert overview.status_code == 200
    assert overview.json() == {"products": 2, "variants": 3, "orders": 0, "users": 0}
    assert ids(emulator, "products") == ["p1", "p2"]


def test_create_and_update_upsert_the_same_product(emulator: RunningEmulator) -> None:
    assert emulator.rest("POST", "/products", product("p1", name="Old name")).status_code == 201
    assert emulator.rest("POST", "/products", product("p1", name="New name")).status_code == 201
    changes = product("p9", name="Updated")
    del changes["product_id"], changes["variant_id"]

    assert emulator.rest("PUT", "/products/p1/v1", changes).status_code == 204
    assert emulator.rest("PUT", "/products/p7/v3", changes).status_code == 204  # not there yet: created

    assert emulator.overview()["variants"] == 2
    emulator.rest("POST", "/products", product("p2", name="Updated twin"))
    similar = emulator.send_event(
        {"type": "pageview", "subtype": "product", "product_id": "p2"}, anonymous_id="a1"
    ).json()["similar_product_skus"]
    assert {item["product_id"]: item["name"] for item in similar} == {"p1": "Updated", "p7": "Updated"}


def test_update_refuses_ids_in_the_body_naming_the_field(emulator: RunningEmulator) -> None:
    response = emulator.rest("PUT", "/products/p1/v1", product("p1"))

    assert response.status_code == 400
    assert any(error.startswith("product_id: unknown field") for error in response.json()["errors"])
    assert emulator.overview()["products"] == 0


def test_delete_variant_keeps_the_others_and_delete_product_removes_all_variants(
    emulator: RunningEmulator,
) -> None:
    emulator.rest("POST", "/batch/products", {"batch": [product("p1", "v1"), product("p1", "v2"),
                                                        product("p2", "v1")]})

    assert emulator.rest("DELETE", "/products/p1/v1").status_code == 204
    assert emulator.overview()["variants"] == 2
    assert emulator.rest("DELETE", "/products/p1").status_code == 204

    assert ids(emulator, "products") == ["p2"]
    assert emulator.overview()["variants"] == 1
    assert emulator.rest("DELETE", "/products/never-existed").status_code == 204


# -- categories, users, orders ---------------------------------------------------------------


def test_categories_create_update_delete(emulator: RunningEmulator) -> None:
    category = {"category_id": "summer-jeans", "name": "Summer Jeans", "link": "/c/summer-jeans"}

    assert emulator.rest("POST", "/categories", category).status_code == 201
    assert emulator.rest("PUT", "/categories/summer-jeans", {"name": "Summer Special"}).status_code == 204
    assert emulator.rest("PUT", "/categories/winter", {"name": "Winter"}).status_code == 204
    assert ids(emulator, "categories") == ["summer-jeans", "winter"]
    assert emulator.rest("DELETE", "/categories/summer-jeans").status_code == 204

    assert ids(emulator, "categories") == ["winter"]


def test_users_create_update_delete(emulator: RunningEmulator) -> None:
    user = {"user_id": "u1", "first_name": "John", "email": "x@y.z", "timestamp": "2018-04-04 23:29:04-03:00"}

    assert emulator.rest("POST", "/users", user).status_code == 201
    assert emulator.rest("PUT", "/users/u1", {"first_name": "Johnny"}).status_code == 204
    assert emulator.rest("PUT", "/users/u2", {"first_name": "Ann"}).status_code == 204
    assert emulator.rest("GET", "/overview").json()["users"] == 2
    assert emulator.rest("DELETE", "/users/u1").status_code == 204

    assert ids(emulator, "users") == ["u2"]
    assert emulator.requests(user="u1", type="users.create")[0]["body"] == user


def test_orders_create_change_status_delete(emulator: RunningEmulator) -> None:
    assert emulator.rest("POST", "/orders", order("o1")).status_code == 201
    assert emulator.rest("PUT", "/orders/o1", {"order_status": "cancelled"}).status_code == 204
    assert emulator.rest("PUT", "/orders/o1", {"order_status": "completed"}).status_code == 204

    missing = emulator.rest("PUT", "/orders/o404", {"order_status": "cancelled"})
    assert missing.status_code == 404
    assert "o404" in missing.json()["message"]

    assert ids(emulator, "orders") == ["o1"]
    assert emulator.rest("DELETE", "/orders/o1").status_code == 204
    assert ids(emulator, "orders") == []


def test_order_status_change_is_validated(emulator: RunningEmulator) -> None:
    emulator.rest("POST", "/orders", order("o1"))

    response = emulator.rest("PUT", "/orders/o1", {"order_status": "refunded"})

    assert response.status_code == 400
    assert response.json()["errors"] == [
        "order_status: expected one of 'completed', 'cancelled', got 'refunded'"
    ]


# -- batch -----------------------------------------------------------------------------------


BATCHES = {
    "products": [product("p1"), product("p2")],
    "categories": [{"category_id": "c1", "name": "One"}, {"category_id": "c2", "name": "Two"}],
    "users": [{"user_id": "u1", "first_name": "A"}, {"user_id": "u2", "first_name": "B"}],
    "orders": [order("o1"), order("o2")],
}
KEYS = {
    "products": [{"product_id": "p1", "variant_id": "v1"}],
    "categories": [{"category_id": "c1"}],
    "users": [{"user_id": "u1"}],
}


@pytest.mark.parametrize("resource", sorted(BATCHES))
def test_batch_create_answers_201_and_delete_all_empties_the_resource(
    emulator: RunningEmulator, resource: str
) -> None:
    assert emulator.rest("POST", f"/batch/{resource}", {"batch": BATCHES[resource]}).status_code == 201
    assert len(ids(emulator, resource)) == 2

    assert emulator.rest("DELETE", f"/batch/{resource}/all").status_code == 204

    assert ids(emulator, resource) == []


@pytest.mark.parametrize("resource", sorted(KEYS))
def test_batch_delete_answers_204(emulator: RunningEmulator, resource: str) -> None:
    emulator.rest("POST", f"/batch/{resource}", {"batch": BATCHES[resource]})

    assert emulator.rest("DELETE", f"/batch/{resource}", {"batch": KEYS[resource]}).status_code == 204

    assert len(ids(emulator, resource)) == 1


def test_batch_create_replaces_existing_ids(emulator: RunningEmulator) -> None:
    emulator.rest("POST", "/batch/orders", {"batch": [order("o1", "u1", "p1"), order("o2", "u1", "p2")]})

    emulator.rest("POST", "/batch/orders", {"batch": [order("o1", "u9", "p3")]})

    assert ids(emulator, "orders") == ["o1", "o2"]
    assert emulator.requests(type="orders.batch_create")[0]["body"]["batch"][0]["user_id"] == "u9"


def test_batch_order_delete_answers_207_with_a_status_per_order(emulator: RunningEmulator) -> None:
    emulator.rest("POST", "/batch/orders", {"batch": [order("o1"), order("o2"), order("o3")]})

    response = emulator.rest("DELETE", "/batch/orders", {"batch": [{"order_id": "o1"}, {"order_id": ""},
                                                                   {"order_id": "o2"}]})

    assert response.status_code == 207
    statuses = response.json()["status"]
    assert [(s["order_id"], s["status"]) for s in statuses] == [("o1", "OK"), ("", "error"), ("o2", "OK")]
    assert statuses[1]["errors"] == [
        "batch[1].order_id: expected an id (a non-empty string or an integer), got ''"
    ]
    assert ids(emulator, "orders") == ["o3"]


def test_batch_order_delete_of_a_malformed_body_is_400(emulator: RunningEmulator) -> None:
    response = emulator.rest("DELETE", "/batch/orders", {"orders": ["o1"]})

    assert response.status_code == 400
    assert "batch: required field missing" in response.json()["errors"]


def test_more_than_500_batch_items_is_413(emulator: RunningEmulator) -> None:
    batch = [product(f"p{i}") for i in range(501)]

    response = emulator.rest("POST", "/batch/products", {"batch": batch})

    assert response.status_code == 413
    assert "at most 500" in response.json()["message"]
    assert emulator.overview()["products"] == 0
    assert emulator.rest("POST", "/batch/products", {"batch": batch[:500]}).status_code == 201


def test_a_body_over_5_mib_is_413(emulator: RunningEmulator) -> None:
    body = json.dumps({"batch": [product("p1", description="x" * (5 * 1024 * 1024))]}).encode()

    response = requests.post(
        emulator.api_url + "/batch/products",
        data=body,
        headers={"Authorization": rest_authorization(emulator.api_key, emulator.api_secret, body),
                 "Content-Type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 413
    assert "5 MiB" in response.json()["message"]


# -- validation and bodies ----------------------------------------------------------------------


def test_validation_errors_name_every_field_path(emulator: RunningEmulator) -> None:
    bad = product("p2", price="99,50")
    del bad["name"]

    response = emulator.rest("POST", "/batch/products", {"batch": [product("p1"), bad]})

    assert response.status_code == 400
    assert sorted(response.json()["errors"]) == [
        "batch[1].name: required field missing",
        "batch[1].price: expected a number, got '99,50'",
    ]
    assert emulator.overview()["products"] == 0  # all or nothing
    logged = emulator.requests(type="products")[0]
    assert (logged["status"], logged["errors"]) == (400, response.json()["errors"])


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{not json", "invalid JSON"), (b"", "empty"), (b"\xff\xfe", "not UTF-8"), (b'{"price": NaN}', "NaN")],
)
def test_a_body_that_is_not_json_is_400(emulator: RunningEmulator, body: bytes, message: str) -> None:
    response = requests.post(
        emulator.api_url + "/products",
        data=body,
        headers={"Authorization": rest_authorization(emulator.api_key, emulator.api_secret, body)},
        timeout=10,
    )

    assert response.status_code == 400
    assert message in response.json()["message"]


def test_a_body_without_content_type_is_accepted_as_the_guides_samples_send_it(
    emulator: RunningEmulator,
) -> None:
    body = json.dumps(product("p1"))  # exactly like the guide's Python sample

    response = requests.post(
        emulator.api_url + "/products",
        data=body,
        auth=(emulator.api_key, sign(body.encode(), emulator.api_secret)),
        timeout=10,
    )

    assert response.status_code == 201


def test_a_body_declared_as_another_type_is_415(emulator: RunningEmulator) -> None:
    body = json.dumps(product("p1")).encode()

    response = requests.post(
        emulator.api_url + "/products",
        data=body,
        headers={"Authorization": rest_authorization(emulator.api_key, emulator.api_secret, body),
                 "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )

    assert response.status_code == 415
    assert "application/json" in response.json()["message"]


def test_unknown_endpoint_is_404_and_wrong_method_is_405(emulator: RunningEmulator) -> None:
    missing = emulator.rest("GET", "/recommendations")
    wrong_method = emulator.rest("GET", "/products")

    assert missing.status_code == 404
    assert missing.json()["message"] == "no such endpoint: GET /v1/recommendations"
    assert wrong_method.status_code == 405
    assert "allowed: POST" in wrong_method.json()["message"]
    assert "POST" in wrong_method.headers["Allow"]


# -- signatures ------------------------------------------------------------------------------


def _basic(token: str) -> str:
    return "Basic " + base64.b64encode(token.encode()).decode()


BODY = json.dumps(product("p1")).encode()


@pytest.mark.parametrize(
    ("case", "authorization", "sent_body", "message"),
    [
        ("tampered body", rest_authorization("test-key", "test-secret", BODY), BODY.replace(b"25", b"2"),
         "bad checksum"),
        ("wrong secret", rest_authorization("test-key", "not-the-secret", BODY), BODY, "bad checksum"),
        ("unknown key", rest_authorization("other-key", "test-secret", BODY), BODY, "unknown API key"),
        ("missing header", None, BODY, "missing Authorization header"),
        ("non-Basic scheme", "Bearer " + sign(BODY, "test-secret"), BODY, "scheme must be Basic"),
        ("bad base64", "Basic not*base64!", BODY, "malformed Basic credentials"),
        ("no colon", _basic("test-key"), BODY, "malformed Basic credentials"),
        ("empty password", _basic("test-key:"), BODY, "bad checksum"),
    ],
)
def test_signature_failures_are_401_and_store_nothing(
    emulator: RunningEmulator, case: str, authorization: str | None, sent_body: bytes, message: str
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization

    response = requests.post(emulator.api_url + "/products", data=sent_body, headers=headers, timeout=10)

    assert response.status_code == 401, case
    assert message in response.json()["message"]
    assert emulator.overview()["products"] == 0
    assert emulator.requests()[0]["status"] == 401


def test_get_and_bodyless_delete_are_signed_over_the_empty_string(emulator: RunningEmulator) -> None:
    empty = rest_authorization(emulator.api_key, emulator.api_secret, b"")
    signed_braces = rest_authorization(emulator.api_key, emulator.api_secret, b"{}")

    good = requests.get(emulator.api_url + "/overview", headers={"Authorization": empty}, timeout=10)
    bad = requests.get(emulator.api_url + "/overview", headers={"Authorization": signed_braces}, timeout=10)
    deleted = requests.delete(emulator.api_url + "/batch/users/all", headers={"Authorization": empty},
                              timeout=10)

    assert (good.status_code, bad.status_code, deleted.status_code) == (200, 401, 204)
    assert "empty body" in bad.json()["message"]


def test_the_guides_python_sample_is_accepted_verbatim(emulator: RunningEmulator) -> None:
    import hashlib
    import hmac

    data = {"user_id": "u1", "first_name": "Spongebob", "email": "pineapple@underthe.sea"}
    json_data = json.dumps(data)
    checksum = hmac.new(bytes(emulator.api_secret, "utf-8"), bytes(json_data, "utf-8"), hashlib.sha256)

    response = requests.post(emulator.api_url + "/users", data=json_data,
                             auth=(emulator.api_key, checksum.hexdigest()), timeout=10)

    assert response.status_code == 201


# -- journal and persistence -------------------------------------------------------------------


def test_requests_journal_lists_calls_newest_first_with_what_was_answered(emulator: RunningEmulator) -> None:
    emulator.rest("POST", "/orders", order("o1", "u7"))
    emulator.rest("GET", "/overview")

    via_http = requests.get(emulator.url + "/_emulator/requests", timeout=10).json()

    assert via_http == emulator.requests()
    newest, oldest = via_http
    assert (newest["method"], newest["path"], newest["status"]) == ("GET", "/v1/overview", 200)
    assert newest["response"]["orders"] == 1
    assert (oldest["type"], oldest["action"], oldest["user"]) == ("orders", "create", "u7")
    assert oldest["body"] == order("o1", "u7") and oldest["errors"] == []
    assert emulator.requests(user="u7") == [oldest]
    assert emulator.requests(type="orders.create") == [oldest]


def test_a_database_file_keeps_everything_across_restarts(tmp_path: Path) -> None:
    database = tmp_path / "emulator.sqlite3"
    with run_emulator(db_path=database) as first:
        first.rest("POST", "/batch/products", {"batch": [product("p1"), product("p2"), product("p3")]})
        first.rest("POST", "/orders", order("o1", "u1", "p1", "p3"))

    with run_emulator(db_path=database) as second:
        assert second.overview() == {"products": 3, "variants": 3, "categories": 0, "users": 0, "orders": 1}
        answer = second.send_event({"type": "pageview", "subtype": "product", "product_id": "p1"},
                                   anonymous_id="a1").json()

    assert answer["related_product_skus"][0]["product_id"] == "p3"


def test_concurrent_writers_lose_nothing(emulator: RunningEmulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(number: int) -> int:
        return emulator.rest("POST", "/products", product(f"p{number}")).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(80)))

    assert statuses == [201] * 80
    assert emulator.overview()["products"] == 80
    assert len(emulator.requests(type="products.create")) == 80
