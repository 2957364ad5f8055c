"""The REST API under ``/v1``: every documented endpoint, method and status code, and the
official client's forms of them.

Each request is authenticated (a signed body, see ``auth``), its JSON body
validated with the shared schema specs, and applied whole or not at all:
201 for creates, 204 for updates and deletes, 207 with a status per item for
a batch order delete, 200 for the overview. Unknown ids are no error for a
delete (deletes are idempotent: a retried delete still answers 204), but are
for an order status change (404), which has nothing to change.

DataCue's official PHP client (``DataCueCo/datacue-php``) sends some calls
otherwise than the guide, and DataCue takes them, so the emulator does too,
validating each like its documented twin: batches as bare arrays (see
``exchange.read_batch``), ``PUT /batch/<resource>`` (batchUpdate) like
``POST``, ``PATCH /orders/<id>`` (cancel) like ``PUT``, ``PATCH /batch/orders``
(batchCancel), and the two calls the guide leaves out, ``GET /clients/sync``
and ``DELETE /clients``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from flask import Blueprint, Response, jsonify, request

from ..errors import ValidationError
from ..schema import (
    ORDER_STATUS_CHANGE,
    ORDER_STATUS_ITEM,
    RESOURCES,
    Object,
    validate_partial,
    validate_with_warnings,
)
from .auth import authenticate_rest
from .exchange import (
    Batch,
    Exchange,
    batch_spec,
    current_exchange,
    emulator_state,
    fail,
    note_warnings,
    read_batch,
    read_json,
    validated,
)

__all__ = ["ACTIONS", "blueprint", "note_what_was_asked"]

blueprint = Blueprint("emulator_rest", __name__, url_prefix="/v1")

_RESOURCE = f"<any({', '.join(RESOURCES)}):resource>"
_ORDER_KEY: Final = RESOURCES["orders"].key
_USERS: Final = RESOURCES["users"]

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


def _batch() -> Batch:
    return read_batch(_body())


def _no_order(order_id: str) -> str:
    return f"no order {order_id!r}: create it before changing its status"


# -- create, update, delete one ---------------------------------------------------------------


@_route(f"/{_RESOURCE}", "POST", None, "create")
def create(resource: str) -> Response:
    _put(resource, [validated(RESOURCES[resource].spec, _body())])
    return _created()


@_route("/products/<product_id>/<variant_id>", "PUT", "products", "update")
def update_product(product_id: str, variant_id: str) -> Response:
    changes = validated(RESOURCES["products"].changes, _body())
    _put("products", [{**changes, "product_id": product_id, "variant_id": variant_id}])
    return _no_content()


@_route("/categories/<category_id>", "PUT", "categories", "update")
def update_category(category_id: str) -> Response:
    changes = validated(RESOURCES["categories"].changes, _body())
    _put("categories", [{**changes, "category_id": category_id}])
    return _no_content()


@_route("/users/<user_id>", "PUT", "users", "update")
def update_user(user_id: str) -> Response:
    # The guide's sample repeats user_id in the body: a warning, and an error when it is not the path's.
    changes = validated(_USERS.changes, _body())
    errors = [str(error) for error in _USERS.repeated_id_errors({"user_id": user_id}, changes)]
    if errors:
        fail(400, "; ".join(errors), errors)
    _put("users", [{**changes, "user_id": user_id}])
    return _no_content()


# The official client's cancel() sends PATCH; the guide documents PUT. Both change the status.
@_route("/orders/<order_id>", "PATCH", "orders", "status")
@_route("/orders/<order_id>", "PUT", "orders", "status")
def change_order_status(order_id: str) -> Response:
    change = validated(ORDER_STATUS_CHANGE, _body())
    if emulator_state().change_order_statuses([(order_id, change["order_status"])]):
        fail(404, _no_order(order_id))
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


# batchUpdate in the official client is PUT; it upserts exactly as the guide's POST does.
@_route(f"/batch/{_RESOURCE}", "PUT", None, "batch_update")
@_route(f"/batch/{_RESOURCE}", "POST", None, "batch_create")
def batch_create(resource: str) -> Response:
    _put(resource, _batch().validated(RESOURCES[resource].spec))
    return _created()


@_route(f"/batch/{_RESOURCE}", "DELETE", None, "batch_delete")
def batch_delete(resource: str) -> Response:
    batch = _batch()
    state = emulator_state()
    if resource == "orders":
        return _per_order(batch, _ORDER_KEY, _delete_orders)
    keys = batch.validated(RESOURCES[resource].key)
    if resource == "products":
        state.delete_variants([(key["product_id"], key["variant_id"]) for key in keys])
    else:
        id_field = RESOURCES[resource].id_field
        state.delete(resource, [key[id_field] for key in keys])
    return _no_content()


def _delete_orders(orders: list[dict[str, Any]]) -> Collection[str]:
    emulator_state().delete("orders", [order["order_id"] for order in orders])
    return ()  # deletes are idempotent: an unknown order is deleted already


# The official client's batchCancel. The guide documents no batch status change; its answer is
# modelled on the guide's other batch of orders, Delete Multiple Orders: 207 with a status per
# order, so that a client resends only what failed. An unknown order is an "error" item there,
# as the single status change answers it 404, while the others are changed. The client wraps
# this batch in {"batch": [...]}; a bare array is taken too, as at every other batch endpoint.
@_route("/batch/orders", "PATCH", "orders", "batch_status")
def batch_change_order_status() -> Response:
    return _per_order(_batch(), ORDER_STATUS_ITEM, _change_statuses)


def _change_statuses(changes: list[dict[str, Any]]) -> Collection[str]:
    pairs = [(change["order_id"], change["order_status"]) for change in changes]
    return emulator_state().change_order_statuses(pairs)


def _per_order(
    batch: Batch, item_spec: Object, apply: Callable[[list[dict[str, Any]]], Collection[str]]
) -> Response:
    """207: a status per order sent. Invalid items are reported, the valid ones applied together;
    ``apply`` returns the ids it found no order for, which are reported as errors too."""
    _, errors = validate_partial(batch_spec(item_spec), batch.wrapped)
    whole_body_errors = batch.as_sent(error for error in errors if not error.path.startswith("batch["))
    if whole_body_errors:
        fail(400, "; ".join(whole_body_errors), whole_body_errors)
    # (path, order id, its errors; None while it is valid)
    results: list[tuple[str, Any, list[str] | None]] = []
    valid: list[dict[str, Any]] = []
    for index, item in enumerate(batch.wrapped["batch"]):
        path = f"{batch.prefix}[{index}]"
        try:
            valid_item, warnings = validate_with_warnings(item_spec, item, path=path)
        except ValidationError as error:
            sent_id = item.get("order_id") if isinstance(item, Mapping) else None
            results.append((path, sent_id, [str(problem) for problem in error.errors]))
            continue
        note_warnings(warnings)
        valid.append(valid_item)
        results.append((path, valid_item["order_id"], None))
    missing = apply(valid)
    statuses: list[dict[str, Any]] = []
    for path, order_id, item_errors in results:
        if item_errors is None and order_id in missing:
            item_errors = [f"{path}.order_id: {_no_order(order_id)}"]
        if item_errors is None:
            statuses.append({"order_id": order_id, "status": "OK"})
        else:
            statuses.append({"order_id": order_id, "status": "error", "errors": item_errors})
    exchange = current_exchange()
    if exchange is not None:
        exchange.errors = [error for status in statuses for error in status.get("errors", ())]
    response = jsonify(status=statuses)
    response.status_code = 207
    return response


@_route(f"/batch/{_RESOURCE}/all", "DELETE", None, "delete_all")
def delete_all(resource: str) -> Response:
    emulator_state().delete_all(resource)
    return _no_content()


# -- the account (the official client's Client module; the guide documents neither call) ---------


@_route("/clients/sync", "GET", "clients", "sync")
def sync() -> Response:
    """What DataCue wants the shop to send again. DataCue's own plugins (WooCommerce's ReSync)
    read a JSON object whose ``products``, ``categories``, ``users`` and ``orders`` are each null
    (nothing), ``"full"`` (everything again) or a list of ids. The emulator keeps all it
    received, so it never needs anything again: 200 with four nulls (an empty body would break
    those plugins, which read the members of the object)."""
    return jsonify(products=None, categories=None, users=None, orders=None)


@_route("/clients", "DELETE", "clients", "clear")
def clear() -> Response:
    """The official client's ``clear()``, "Clear all data": 204, as every other delete answers,
    and the account's data is gone (see ``EmulatorState.clear_data`` for what stays)."""
    emulator_state().clear_data()
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
