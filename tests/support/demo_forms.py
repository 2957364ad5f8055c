"""Driving the demo store with Flask's test client as its forms do, and reading what DataCue received.

The demo's test clients post with the CSRF token of the pages they were given
(``demo_store.testing.FormClient``): these helpers fill in the rest of each form.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cue_front.emulator import RunningEmulator

#: A card number the checkout form takes (the demo charges nothing).
CARD = "4242 4242 4242 4242"


def add(
    client: FlaskClient, product_id: str, variant_id: str, quantity: int = 1, **request: Any
) -> TestResponse:
    """The product page's "Add to cart"; ``request`` goes to the client (``base_url=...``)."""
    response = client.post(
        "/cart/add",
        data={"product_id": product_id, "variant_id": variant_id, "quantity": str(quantity)},
        **request,
    )
    assert response.status_code == 302 and response.headers["Location"] == "/cart"
    return response


def log_in(client: FlaskClient, email: str, next_path: str = "") -> TestResponse:
    """The login form, with the demo accounts' password."""
    query = f"?next={next_path}" if next_path else ""
    return client.post(f"/login{query}", data={"email": email, "password": "demo"})


def checkout(client: FlaskClient, **form: str) -> TestResponse:
    """The cart's checkout button, then the payment page's form (``form`` overrides its fields)."""
    assert client.post("/checkout/start").headers["Location"] == "/checkout"
    data = {"name": "Ana Souza", "address": "1 Rua Augusta, Lisbon", "card": CARD, **form}
    return client.post("/checkout", data=data)


def received(emulator: RunningEmulator, type: str | None = None) -> list[dict[str, Any]]:
    """Event envelopes the emulator received, oldest first."""
    return [item["body"] for item in reversed(emulator.events(type=type))]


def rest_calls(emulator: RunningEmulator, type: str) -> list[dict[str, Any]]:
    """REST requests the emulator received after the history import, oldest first."""
    return [item for item in reversed(emulator.requests(type=type))]
