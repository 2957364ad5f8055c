"""The REST API under ``/v1``: every documented endpoint, method and status code.

Each request is authenticated (a signed body, see ``auth``), its JSON body
validated with the shared schema specs, and applied whole or not at all:
201 for creates, 204 for updates and deletes, 207 with a status per item for
a batch order delete, 200 for the overview. Unknown ids are no error for a
delete (deletes are idempotent: a retried delete still answers 204), but are
for an order status change (404), which has nothing to change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from flask import Blueprint, Response, jsonify, request

from ..errors import ValidationError
from ..schema import (
    BATCH_LIMIT,
    CATEGORY,
    CATEGORY_CHANGES,
    CATEGORY_KEY,
    ORDER,
    ORDER_KEY,
    ORDER_STATUS_CHANGE,
    PRODUCT,
    PRODUCT_CHANGES,
    PRODUCT_KEY,
    USER,
    USER_CHANGES,
    USER_KEY,
    Object,
    batch_of,
    validate,
    validate_partial,
)
from .auth import authenticate_rest
from .exchange import Exchange, current_exchange, emulator_state, fail, read_json, validated

__all__ = ["ACTIONS", "blueprint", "note_what_was_asked"]

blueprint = Blueprint("emulator_rest", __name__, url_prefix="/v1")

_RESOURCE = "<any(products, categories, users, orders):resource>"
_CREATE_SPECS: Final[Mapping[str, Object]] = {
    "products": PRODUCT,
    "categories": CATEGORY,
    "users": USER,
    "orders": ORDER,
}
_BATCH_CREATE_SPECS: Final = {name: batch_of(spec) for name, spec in _CREATE_SPECS.items()}
_BATCH_DELETE_SPECS: Final = {
    "products": batch_of(PRODUCT_KEY),
    "categories": batch_of(CATEGORY_KEY),
    "users": batch_of(USER_KEY),
    "orders": batch_of(ORDER_KEY),
}

#: Endpoint -> (resource, action), what the journal calls each request; the resource is
#: None where the URL says it.
ACTIONS: dict[str, tuple[str | None, str]] = {}


def _route(rule: str, method: str, resource: str | None, action: str) -> Callable[[Any], Any]:
    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        endpoint = f"{resource or 'any'}_{action}"
        blueprint.add_url_rule(rule, endpoint, view, methods=[method])
        ACTIONS[f"{blueprint.name}.{endpoint}"] = (resource, action)
        return view

    return register


def note_what_was_asked(exchange: Exchange) -> None:
    """Which resource and action the request is, for the journal (None for unknown endpoints)."""
    resource, action = ACTIONS.get(request.endpoint or "", (None, None))
    exchange.type = resource or (request.view_args or {}).get("resource")
    exchange.subtype = action


@blueprint.before_request
def _authenticate() -> None:
    authenticate_rest(emulator_state())


def _created() -> Response:
    return Response(status=201)


def _no_content() -> Response:
    return Response(status=204)


def _body() -> Any:
    return read_json(require_json_type=True)


def _note_user(user_id: Any) -> None:
    exchange = current_exchange()
    if exchange is not None and isinstance(user_id, str):
        exchange.user_id = user_id


def _put(resource: str, items: list[dict[str, Any]]) -> None:
    state = emulator_state()
    if resource == "products":
        state.put_products(items)
    elif resource == "categories":
        state.put_categories(items)
    elif resource == "users":
        state.put_users(items)
    else:
        state.put_orders(items)
    if resource in ("users", "orders") and len(items) == 1:
        _note_user(items[0]["user_id"])


def _batch_body() -> Any:
    """The body of a batch request; 413 beyond DataCue's 500 items, before any other check."""
    body = _body()
    if isinstance(body, Mapping) and isinstance(body.get("batch"), list):
        count = len(body["batch"])
        if count > BATCH_LIMIT:
            fail(413, f"batch: at most {BATCH_LIMIT} items per request, got {count}")
    return body


# -- create, update, delete one ---------------------------------------------------------------


@_route(f"/{_RESOURCE}", "POST", None, "create")
def create(resource: str) -> Response:
    _put(resource, [validated(_CREATE_SPECS[resource], _body())])
    return _created()


@_route("/products/<product_id>/<variant_id>", "PUT", "products", "update")
def update_product(product_id: str, variant_id: str) -> Response:
    changes = validated(PRODUCT_CHANGES, _body())
    _put("products", [{**changes, "product_id": product_id, "variant_id": variant_id}])
    return _no_content()


@_route("/categories/<category_id>", "PUT", "categories", "update")
def update_category(category_id: str) -> Response:
    changes = validated(CATEGORY_CHANGES, _body())
    _put("categories", [{**changes, "category_id": category_id}])
    return _no_content()


@_route("/users/<user_id>", "PUT", "users", "update")
def update_user(user_id: str) -> Response:
    changes = validated(USER_CHANGES, _body())
    _put("users", [{**changes, "user_id": user_id}])
    return _no_content()


@_route("/orders/<order_id>", "PUT", "orders", "status")
def change_order_status(order_id: str) -> Response:
    change = validated(ORDER_STATUS_CHANGE, _body())
    if not emulator_state().change_order_status(order_id, change["order_status"]):
        fail(404, f"no order {order_id!r}: create it before changing its status")
    return _no_content()


@_route("/products/<product_id>/<variant_id>", "DELETE", "products", "delete_variant")
def delete_variant(product_id: str, variant_id: str) -> Response:
    emulator_state().delete_variants([(product_id, variant_id)])
    return _no_content()


@_route("/products/<product_id>", "DELETE", "products", "delete")
def delete_product(product_id: str) -> Response:
    emulator_state().delete_products([product_id])
    return _no_content()


@_route("/<any(categories, users, orders):resource>/<entity_id>", "DELETE", None, "delete")
def delete_one(resource: str, entity_id: str) -> Response:
    if resource == "users":
        _note_user(entity_id)
    emulator_state().delete(resource, [entity_id])
    return _no_content()


# -- batch ------------------------------------------------------------------------------------


@_route(f"/batch/{_RESOURCE}", "POST", None, "batch_create")
def batch_create(resource: str) -> Response:
    batch = validated(_BATCH_CREATE_SPECS[resource], _batch_body())["batch"]
    _put(resource, batch)
    return _created()


@_route(f"/batch/{_RESOURCE}", "DELETE", None, "batch_delete")
def batch_delete(resource: str) -> Response:
    body = _batch_body()
    state = emulator_state()
    if resource == "orders":
        return _batch_delete_orders(body)
    keys = validated(_BATCH_DELETE_SPECS[resource], body)["batch"]
    if resource == "products":
        state.delete_variants([(key["product_id"], key["variant_id"]) for key in keys])
    else:
        id_field = {"categories": "category_id", "users": "user_id"}[resource]
        state.delete(resource, [key[id_field] for key in keys])
    return _no_content()


def _batch_delete_orders(body: Any) -> Response:
    """207: a status per order sent; invalid items are reported, the valid ones deleted."""
    _, errors = validate_partial(_BATCH_DELETE_SPECS["orders"], body)
    whole_body_errors = [str(error) for error in errors if not error.path.startswith("batch[")]
    if whole_body_errors:
        fail(400, "; ".join(whole_body_errors), whole_body_errors)
    statuses: list[dict[str, Any]] = []
    deleted: list[str] = []
    item_errors: list[str] = []
    for index, item in enumerate(body["batch"]):
        try:
            order_id = validate(ORDER_KEY, item, path=f"batch[{index}]")["order_id"]
        except ValidationError as error:
            messages = [str(problem) for problem in error.errors]
            item_errors += messages
            sent_id = item.get("order_id") if isinstance(item, Mapping) else None
            statuses.append({"order_id": sent_id, "status": "error", "errors": messages})
            continue
        deleted.append(order_id)
        statuses.append({"order_id": order_id, "status": "OK"})
    emulator_state().delete("orders", deleted)
    exchange = current_exchange()
    if exchange is not None:
        exchange.errors = item_errors
    response = jsonify(status=statuses)
    response.status_code = 207
    return response


@_route(f"/batch/{_RESOURCE}/all", "DELETE", None, "delete_all")
def delete_all(resource: str) -> Response:
    emulator_state().delete_all(resource)
    return _no_content()


# -- overview ---------------------------------------------------------------------------------


@_route("/overview", "GET", "overview", "summary")
def overview() -> Response:
    counts = emulator_state().counts()
    # Guide: the sample nests {"products": {"products": n, "variants": m}}; its table lists
    # four integer fields side by side. The table wins, as everywhere in cue-front.
    return jsonify(
        products=counts["products"],
        variants=counts["variants"],
        orders=counts["orders"],
        users=counts["users"],
    )


@_route(f"/overview/{_RESOURCE}", "GET", None, "ids")
def overview_ids(resource: str) -> Response:
    ids = emulator_state().ids(resource)
    return jsonify(ids=ids, count=len(ids))
