"""The emulator takes what DataCue's official PHP client sends, as DataCue does (issue 12).

Each call is made with the client's wire format (``DataCueCo/datacue-php``):
its method and path, its body as PHP's ``json_encode`` writes it, signed over
those exact bytes (REST) or with the API key and an empty password (events),
with ``Content-Type: application/json`` always. Each test checks the effect on
the emulator's state through what the emulator shows (``/_emulator/...``, the
overview, the recommendations it answers) and the journal entry it made.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
import requests

from cue_front.emulator import RunningEmulator
from cue_front.signing import events_authorization, rest_authorization
from tests.test_emulator_rest import order, product
from tests.test_schema import GUIDE_USER


def php_json(data: Any) -> bytes:
    """``json_encode($data)``: compact, ASCII only, and slashes escaped."""
    return json.dumps(data, separators=(",", ":")).replace("/", "\\/").encode()


def php_rest(emulator: RunningEmulator, method: str, path: str, data: Any = None) -> requests.Response:
    """A REST call as the PHP client's ``Request`` makes it; ``path`` is under ``/v1``."""
    payload = b"" if data is None else php_json(data)
    headers = {
        "Content-Type": "application/json",
        "Authorization": rest_authorization(emulator.api_key, emulator.api_secret, payload),
    }
    return requests.request(method, emulator.api_url + path, data=payload, headers=headers, timeout=10)


def php_track(emulator: RunningEmulator, data: Any, path: str = "/") -> requests.Response:
    """An events call as the PHP client makes it (``withoutChecksum``: the key, no password)."""
    headers = {"Content-Type": "application/json", "Authorization": events_authorization(emulator.api_key)}
    return requests.post(emulator.url + path, data=php_json(data), headers=headers, timeout=10)


def inspect(emulator: RunningEmulator, what: str) -> Any:
    """``GET /_emulator/<what>``, as a shop's test or a person reads it."""
    response = requests.get(f"{emulator.url}/_emulator/{what}", timeout=10)
    assert response.status_code == 200
    return response.json()


def journaled(emulator: RunningEmulator) -> dict[str, Any]:
    """The newest REST request the emulator journaled."""
    newest: dict[str, Any] = inspect(emulator, "requests?limit=1")[0]
    return newest


def product_page(emulator: RunningEmulator, product_id: str, user_id: str = "viewer") -> dict[str, Any]:
    response = emulator.send_event({"type": "pageview", "subtype": "product", "product_id": product_id},
                                   user_id=user_id)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


ITEMS: dict[str, list[dict[str, Any]]] = {
    "products": [product("p1"), product("p1", "v2"), product("p2")],
    "categories": [{"category_id": "c1", "name": "One"}, {"category_id": "c2", "name": "Two"}],
    "users": [{"user_id": "u1", "first_name": "Ann"}, {"user_id": "u2", "first_name": "Bob"}],
    "orders": [order("o1", "u1", "p1"), order("o2", "u2", "p2")],
}
#: batchDelete's bare array for each resource, deleting the first item of ITEMS.
DELETE_KEYS: dict[str, list[dict[str, str]]] = {
    "products": [{"product_id": "p1", "variant_id": "v1"}],
    "categories": [{"category_id": "c1"}],
    "users": [{"user_id": "u1"}],
}
COUNT_AFTER_DELETE = {"products": 2, "categories": 1, "users": 1}  # p1 keeps its v2


# -- batchCreate, batchUpdate, batchDelete: bare arrays -------------------------------------------


@pytest.mark.parametrize("resource", sorted(ITEMS))
def test_batch_create_takes_a_bare_array(emulator: RunningEmulator, resource: str) -> None:
    response = php_rest(emulator, "POST", f"/batch/{resource}", ITEMS[resource])

    assert response.status_code == 201, response.text
    assert inspect(emulator, "overview")[resource] == 2
    entry = journaled(emulator)
    assert (entry["type"], entry["action"], entry["errors"]) == (resource, "batch_create", [])


@pytest.mark.parametrize("resource", sorted(ITEMS))
@pytest.mark.parametrize("form", ["bare", "batch"])
def test_batch_update_is_put_and_upserts_like_batch_create(
    emulator: RunningEmulator, resource: str, form: str
) -> None:
    items = ITEMS[resource]
    php_rest(emulator, "POST", f"/batch/{resource}", items[:1])

    response = php_rest(emulator, "PUT", f"/batch/{resource}", items if form == "bare" else {"batch": items})

    assert response.status_code == 201, response.text
    assert inspect(emulator, "overview")[resource] == 2
    entry = journaled(emulator)
    assert (entry["method"], entry["type"], entry["action"]) == ("PUT", resource, "batch_update")


def test_batch_update_replaces_what_was_there(emulator: RunningEmulator) -> None:
    php_rest(emulator, "POST", "/batch/products", [product("p1", name="Old"), product("p2", name="Old")])

    php_rest(emulator, "PUT", "/batch/products", [product("p1", name="New"), product("p3", name="New")])

    similar = product_page(emulator, "p2")["similar_product_skus"]
    assert {item["product_id"]: item["name"] for item in similar} == {"p1": "New", "p3": "New"}


@pytest.mark.parametrize("resource", sorted(DELETE_KEYS))
def test_batch_delete_takes_a_bare_array(emulator: RunningEmulator, resource: str) -> None:
    php_rest(emulator, "POST", f"/batch/{resource}", ITEMS[resource])

    response = php_rest(emulator, "DELETE", f"/batch/{resource}", DELETE_KEYS[resource])

    assert response.status_code == 204, response.text
    counts = inspect(emulator, "overview")
    assert counts["variants" if resource == "products" else resource] == COUNT_AFTER_DELETE[resource]
    assert journaled(emulator)["action"] == "batch_delete"


def test_batch_order_delete_of_a_bare_array_answers_207_per_order(emulator: RunningEmulator) -> None:
    php_rest(emulator, "POST", "/batch/orders", ITEMS["orders"])

    response = php_rest(emulator, "DELETE", "/batch/orders", [{"order_id": "o1"}, {"order_id": ""}])

    assert response.status_code == 207
    assert response.json()["status"] == [
        {"order_id": "o1", "status": "OK"},
        {"order_id": "", "status": "error",
         "errors": ["[1].order_id: expected an id (a non-empty string or an integer), got ''"]},
    ]
    assert inspect(emulator, "overview")["orders"] == 1


def test_a_bad_item_of_a_bare_array_is_named_by_its_index_and_nothing_is_stored(
    emulator: RunningEmulator,
) -> None:
    bad = product("p2", price="99,50")
    del bad["name"]

    bare = php_rest(emulator, "POST", "/batch/products", [product("p1"), bad])
    wrapped = php_rest(emulator, "POST", "/batch/products", {"batch": [product("p1"), bad]})

    assert bare.status_code == wrapped.status_code == 400
    assert sorted(bare.json()["errors"]) == [
        "[1].name: required field missing",
        "[1].price: expected a number, got '99,50'",
    ]
    # The same checks as the batch form, at the same items.
    assert sorted(bare.json()["errors"]) == sorted(e.removeprefix("batch") for e in wrapped.json()["errors"])
    assert inspect(emulator, "overview")["products"] == 0
    assert journaled(emulator)["status"] == 400


def test_a_bare_array_takes_at_most_500_items_and_at_least_one(emulator: RunningEmulator) -> None:
    items = [{"category_id": f"c{number}", "name": "C"} for number in range(501)]

    too_many = php_rest(emulator, "POST", "/batch/categories", items)
    empty = php_rest(emulator, "POST", "/batch/categories", [])
    most = php_rest(emulator, "POST", "/batch/categories", items[:500])

    assert too_many.status_code == 413
    assert "at most 500 items" in too_many.json()["message"]
    assert empty.status_code == 400
    assert empty.json()["errors"] == ["needs at least 1 item(s), got 0"]
    assert most.status_code == 201
    assert inspect(emulator, "overview")["categories"] == 500


# -- cancel and batchCancel: PATCH ----------------------------------------------------------------


def bought_together(emulator: RunningEmulator) -> None:
    """p1 and p3 in stock, and bought together in o1 (a completed order)."""
    php_rest(emulator, "POST", "/batch/products", [product("p1"), product("p2"), product("p3")])
    assert php_rest(emulator, "POST", "/orders", order("o1", "u1", "p1", "p3")).status_code == 201


def related_to(emulator: RunningEmulator, product_id: str) -> list[str] | None:
    related = product_page(emulator, product_id)["related_product_skus"]
    return None if related is None else [item["product_id"] for item in related]


def test_cancel_is_patch_and_a_cancelled_order_stops_counting_as_a_sale(emulator: RunningEmulator) -> None:
    bought_together(emulator)
    assert related_to(emulator, "p1") == ["p3"]

    response = php_rest(emulator, "PATCH", "/orders/o1", {"order_status": "cancelled"})

    assert response.status_code == 204, response.text
    assert related_to(emulator, "p1") is None
    entry = inspect(emulator, "requests?type=orders.status")[0]
    assert (entry["method"], entry["path"], entry["status"]) == ("PATCH", "/v1/orders/o1", 204)
    assert php_rest(emulator, "PATCH", "/orders/o1", {"order_status": "completed"}).status_code == 204
    assert related_to(emulator, "p1") == ["p3"]


def test_patch_of_a_bad_status_is_400_and_of_an_unknown_order_404(emulator: RunningEmulator) -> None:
    bought_together(emulator)

    bad = php_rest(emulator, "PATCH", "/orders/o1", {"order_status": "refunded"})
    unknown = php_rest(emulator, "PATCH", "/orders/o404", {"order_status": "cancelled"})

    assert bad.status_code == 400
    assert bad.json()["errors"] == ["order_status: expected one of 'completed', 'cancelled', got 'refunded'"]
    assert unknown.status_code == 404
    assert "o404" in unknown.json()["message"]
    assert related_to(emulator, "p1") == ["p3"]


def test_batch_cancel_answers_207_with_a_status_per_order(emulator: RunningEmulator) -> None:
    bought_together(emulator)
    batch = [
        {"order_id": "o1", "order_status": "cancelled"},
        {"order_id": "o404", "order_status": "cancelled"},
        {"order_id": "o1", "order_status": "refunded"},
    ]

    response = php_rest(emulator, "PATCH", "/batch/orders", {"batch": batch})

    assert response.status_code == 207
    assert response.json()["status"] == [
        {"order_id": "o1", "status": "OK"},
        {"order_id": "o404", "status": "error",
         "errors": ["batch[1].order_id: no order 'o404': create it before changing its status"]},
        {"order_id": "o1", "status": "error",
         "errors": ["batch[2].order_status: expected one of 'completed', 'cancelled', got 'refunded'"]},
    ]
    assert related_to(emulator, "p1") is None  # o1 was cancelled
    entry = inspect(emulator, "requests?type=orders.batch_status")[0]
    assert (entry["method"], entry["status"], len(entry["errors"])) == ("PATCH", 207, 2)


def test_batch_cancel_as_a_bare_array_names_items_by_index(emulator: RunningEmulator) -> None:
    bought_together(emulator)

    response = php_rest(emulator, "PATCH", "/batch/orders", [{"order_id": "o1"}])

    assert response.status_code == 207
    assert response.json()["status"][0]["errors"] == ["[0].order_status: required field missing"]
    assert related_to(emulator, "p1") == ["p3"]


def test_batch_cancel_of_a_malformed_body_is_400(emulator: RunningEmulator) -> None:
    response = php_rest(emulator, "PATCH", "/batch/orders", {"orders": ["o1"]})

    assert response.status_code == 400
    assert "batch: required field missing" in response.json()["errors"]


# -- events->batchTrack ---------------------------------------------------------------------------


def viewed(product_id: str, timestamp: str) -> dict[str, Any]:
    """An envelope as the PHP client's track() builds it, with context and timestamp."""
    return {
        "user": {"user_id": "u1"},
        "event": {"type": "pageview", "subtype": "product", "product_id": product_id},
        "context": {"ip": "12.34.56.78", "user_agent": "php"},
        "timestamp": timestamp,
    }


def recently_viewed(emulator: RunningEmulator, user_id: str = "u1") -> list[str]:
    response = emulator.send_event({"type": "pageview", "subtype": "home"}, user_id=user_id)
    assert response.status_code == 200
    return [item["product_id"] for item in response.json()["recent_product_skus"]]


@pytest.mark.parametrize("path", ["/", "/events"])
def test_batch_track_records_every_event_in_order(emulator: RunningEmulator, path: str) -> None:
    php_rest(emulator, "POST", "/batch/products", [product("p1"), product("p2")])
    batch = [viewed("p1", "2018-01-23 00:30:08.276Z"), viewed("p2", "2018-01-23 00:31:00Z")]

    response = php_track(emulator, batch, path)

    assert response.status_code == 204, response.text
    assert recently_viewed(emulator) == ["p2", "p1"]
    entry = inspect(emulator, "events?type=batch")[0]
    assert (entry["path"], entry["status"], entry["events"], entry["user"]) == (path, 204, 2, "u1")
    assert entry["body"] == batch
    assert "batch (2 events)" in requests.get(emulator.url + "/", timeout=10).text  # the debugger


@pytest.mark.parametrize("path", ["/", "/events"])
def test_a_bad_event_in_a_batch_is_named_by_its_index_and_none_is_recorded(
    emulator: RunningEmulator, path: str
) -> None:
    php_rest(emulator, "POST", "/batch/products", [product("p1"), product("p2")])
    bad = {"user": {"user_id": "u1"}, "event": {"type": "pageveiw", "subtype": "product"}}

    response = php_track(emulator, [viewed("p1", "2018-01-23 00:30:08Z"), viewed("p2", "nope"), bad], path)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0] == "[1].timestamp: expected an ISO-8601 date and time, got 'nope'"
    assert errors[1].startswith("[2].event.type: unknown event (type='pageveiw', subtype='product')")
    assert recently_viewed(emulator) == []  # the valid first one was not recorded either
    entry = inspect(emulator, "events?type=batch")[0]
    assert (entry["status"], entry["errors"]) == (400, errors)


def test_a_batch_of_events_takes_at_least_one_and_at_most_500(emulator: RunningEmulator) -> None:
    login = {"user": {"user_id": "u1"}, "event": {"type": "login"}}

    empty = php_track(emulator, [])
    too_many = php_track(emulator, [login] * 501)
    most = php_track(emulator, [login] * 500)

    assert empty.status_code == 400
    assert empty.json()["errors"] == ["needs at least 1 item(s), got 0"]
    assert too_many.status_code == 413
    assert "at most 500 items" in too_many.json()["message"]
    assert most.status_code == 204


# -- client->sync() and client->clear() ----------------------------------------------------------


def test_sync_answers_that_nothing_needs_sending_again(emulator: RunningEmulator) -> None:
    php_rest(emulator, "POST", "/batch/products", [product("p1")])

    response = php_rest(emulator, "GET", "/clients/sync")

    assert response.status_code == 200
    assert response.json() == {"products": None, "categories": None, "users": None, "orders": None}
    entry = journaled(emulator)
    assert (entry["type"], entry["action"], entry["status"]) == ("clients", "sync", 200)


def test_clear_forgets_the_shops_data_and_visitors_and_keeps_banners_and_journal(
    emulator: RunningEmulator,
) -> None:
    for resource, items in ITEMS.items():
        php_rest(emulator, "POST", f"/batch/{resource}", items)
    banner = {"banner_id": "b1", "category_id": "jeans", "photo_url": "/b1.jpg", "link": "/sale"}
    emulator.set_banners([banner])
    php_track(emulator, [viewed("p1", "2018-01-23 00:30:08Z")])

    response = php_rest(emulator, "DELETE", "/clients")

    assert response.status_code == 204, response.text
    assert inspect(emulator, "overview") == {
        "products": 0, "variants": 0, "categories": 0, "users": 0, "orders": 0,
    }
    assert recently_viewed(emulator) == []
    assert len(inspect(emulator, "banners")["banners"]) == 1
    entry = journaled(emulator)
    assert (entry["method"], entry["path"], entry["type"], entry["action"]) == (
        "DELETE", "/v1/clients", "clients", "clear",
    )
    assert len(inspect(emulator, "requests")) == len(ITEMS) + 1


# -- user_id in an Update User body ---------------------------------------------------------------


def test_the_guides_update_user_sample_with_user_id_in_the_body_is_accepted(
    emulator: RunningEmulator,
) -> None:
    # The guide's Python sample as written (its data is GUIDE_USER, user_id included), but for
    # the URL and the credentials.
    user_id = "u1"
    data = GUIDE_USER
    json_data = json.dumps(data)
    checksum = hmac.new(bytes(emulator.api_secret, "utf-8"), bytes(json_data, "utf-8"), hashlib.sha256)

    response = requests.put(f"{emulator.api_url}/users/{user_id}", data=json_data,
                            auth=(emulator.api_key, checksum.hexdigest()), timeout=10)

    assert response.status_code == 204, response.text
    assert inspect(emulator, "overview")["users"] == 1
    assert journaled(emulator)["user"] == "u1"


def test_an_integer_user_id_equal_to_the_paths_is_accepted(emulator: RunningEmulator) -> None:
    response = php_rest(emulator, "PUT", "/users/42", {"user_id": 42, "first_name": "Ann"})

    assert response.status_code == 204, response.text
    assert emulator.rest("GET", "/overview/users").json()["ids"] == ["42"]


def test_a_user_id_in_the_body_other_than_the_paths_is_400_naming_both(emulator: RunningEmulator) -> None:
    response = php_rest(emulator, "PUT", "/users/u1", {"user_id": "u2", "first_name": "John"})

    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("user_id: ")
    assert "'u2'" in message and "'u1'" in message
    assert inspect(emulator, "overview")["users"] == 0
