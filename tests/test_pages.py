"""window.datacueConfig for every documented page type, as the page's HTML carries it."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from cue_front import ConfigurationError, DataCue, ValidationError, build_config, render_datacue
from cue_front.settings import DATACUE_CDN_SCRIPTS
from tests.support.pages_html import config_from_html, script_elements
from tests.support.shops import API_KEY, SECRET

# The guide's own examples ("The config object" and its page sections), transcribed.
GUIDE_PRODUCT_UPDATE = [
    {
        "variant_id": "v1",
        "name": "Blue Regular Fit Jeans",
        "price": 99.50,
        "full_price": 120,
        "photo_url": "https://mycoolstore.com/images/p1.jpg",
        "available": True,
        "stock": 15,
        "category_ids": ["jeans", "summer"],
        "brand": "Zayra",
    },
    {
        "variant_id": "v2",
        "name": "Green Regular Fit Jeans",
        "price": 99.50,
        "full_price": 120,
        "photo_url": "https://mycoolstore.com/images/p1.jpg",
        "available": True,
        "stock": 10,
        "category_ids": ["jeans", "summer"],
        "brand": "Zayra",
    },
]
GUIDE_ORDER_DETAILS = {
    "order_status": "completed",
    "cart": [
        {"product_id": "p1", "variant_id": "v1", "quantity": 1, "unit_price": 24, "currency": "USD"},
        {"product_id": "p3", "variant_id": "v2", "quantity": 9, "unit_price": 42, "currency": "USD"},
    ],
    "timestamp": "2018-04-04 23:29:04Z",
}

GUIDE_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("home", {}),
    ("product", {"product_id": "p1", "product_update": GUIDE_PRODUCT_UPDATE}),
    ("category", {"category_id": "jeans", "category_update": {"name": "Jeans", "link": "/category/jeans"}}),
    ("search", {"term": "blue jeans"}),
    ("cart", {}),
    ("404", {}),
    ("order confirmation", {}),
    ("order confirmation", {"order_id": "O123", "order_details": GUIDE_ORDER_DETAILS}),
]


def render(app: Flask, page_type: str, **fields: Any) -> str:
    with app.test_request_context():
        return str(render_datacue(page_type, **fields))


@pytest.mark.parametrize(("page_type", "fields"), GUIDE_EXAMPLES)
def test_guide_examples_render_exactly(app: Flask, page_type: str, fields: dict[str, Any]) -> None:
    html = render(app, page_type, **fields)
    expected = {"api_key": API_KEY, "user_id": None, "page_type": page_type, **fields}
    assert config_from_html(html) == expected
    # The config comes first, then DataCue's two scripts in the documented order.
    scripts = script_elements(html)
    assert [s.get("src") for s in scripts] == [None, *DATACUE_CDN_SCRIPTS]


def test_product_without_variants_uses_the_documented_marker(app: Flask) -> None:
    html = render(app, "product", product_id=7, product_update=[{"variant_id": "no-variants", "stock": 0}])
    config = config_from_html(html)
    assert config["product_id"] == "7"  # ids are always sent as strings
    assert config["product_update"] == [{"variant_id": "no-variants", "stock": 0}]


def test_values_are_normalized(app: Flask) -> None:
    ordered_at = datetime(2018, 4, 4, 20, 29, 4, tzinfo=timezone.utc)
    details = {
        "cart": [{"product_id": 1, "variant_id": 2, "quantity": 3, "unit_price": Decimal("19.90")}],
        "timestamp": ordered_at,
    }
    config = config_from_html(render(app, "order confirmation", order_id=99, order_details=details))
    assert config["order_id"] == "99"
    assert config["order_details"] == {
        "cart": [{"product_id": "1", "variant_id": "2", "quantity": 3, "unit_price": 19.9}],
        "timestamp": "2018-04-04 20:29:04Z",
        "order_status": "completed",  # the documented default, made explicit
    }


def test_user_id_comes_from_the_loader_and_can_be_overridden(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    extension: DataCue = app.extensions["datacue"].extension
    calls = []

    @extension.user_id_loader
    def current_user() -> int:
        calls.append(1)
        return 42

    with app.test_request_context():
        assert build_config("home")["user_id"] == "42"
        assert build_config("cart")["user_id"] == "42"
        guest = build_config("order confirmation", user_id="guest@example.com")
        assert guest["user_id"] == "guest@example.com"
    assert len(calls) == 1  # loaded once per request


def test_order_confirmation_alias_emits_the_documented_string(app: Flask) -> None:
    config = config_from_html(render(app, "order_confirmation"))
    assert config["page_type"] == "order confirmation"


@pytest.mark.parametrize("page_type", ["checkout", "payment"])
def test_payment_pages_are_refused_with_the_reason(app: Flask, page_type: str) -> None:
    with app.test_request_context(), pytest.raises(ValidationError, match="payment and checkout pages"):
        render_datacue(page_type)


def test_unknown_page_type_lists_the_documented_ones(app: Flask) -> None:
    with app.test_request_context(), pytest.raises(ValidationError) as caught:
        render_datacue("homepage")
    assert "page_type: expected one of 'home', 'product'" in str(caught.value)


def test_strict_mode_raises_with_every_field_path(app: Flask) -> None:
    bad_variants = [
        {"variant_id": "v1", "price": 10},
        {"variant": "v2", "price": "99,50", "available": "yes"},
    ]
    with app.test_request_context(), pytest.raises(ValidationError) as caught:
        render_datacue("product", product_id="p1", product_update=bad_variants)
    message = str(caught.value)
    assert "product_update[1].price: expected a number, got '99,50'" in message
    assert "product_update[1].variant: unknown field; did you mean 'variant_id'?" in message
    assert "product_update[1].available: expected true or false, got 'yes'" in message
    assert "product_update[1].variant_id: required field missing" in message


def test_missing_conditional_field_is_an_error(app: Flask) -> None:
    with app.test_request_context():
        with pytest.raises(ValidationError, match="product_id: required field missing"):
            render_datacue("product")
        with pytest.raises(ValidationError, match="term: required field missing"):
            render_datacue("search")
        with pytest.raises(ValidationError, match=r"order_details\.cart: required field missing"):
            render_datacue("order confirmation", order_id="o1", order_details={})
        with pytest.raises(ValidationError, match="order_id: required with order_details"):
            render_datacue("order confirmation", order_details=GUIDE_ORDER_DETAILS)
        with pytest.raises(ValidationError, match="product_id: unknown field"):
            render_datacue("home", product_id="p1")


def test_lenient_mode_omits_the_invalid_part_and_logs_its_path(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(DATACUE_STRICT=False)
    variants = [{"variant_id": "v1", "price": 10}, {"variant_id": "v2", "price": "99,50", "stock": 3}]
    with caplog.at_level(logging.WARNING, logger="cue_front"):
        config = config_from_html(render(app, "product", product_id="p1", product_update=variants))
    assert config["product_update"] == [{"variant_id": "v1", "price": 10}, {"variant_id": "v2", "stock": 3}]
    assert "product_update[1].price: expected a number, got '99,50'" in caplog.text


def test_lenient_mode_renders_nothing_for_a_refused_page_type(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(DATACUE_STRICT=False)
    with caplog.at_level(logging.WARNING, logger="cue_front"):
        assert render(app, "payment") == ""
    assert "payment and checkout pages" in caplog.text


def test_strict_defaults_to_debug_or_testing(make_app: Callable[..., Flask]) -> None:
    assert make_app().config["DATACUE_STRICT"] is True
    assert make_app(TESTING=False).config["DATACUE_STRICT"] is False


def test_nonce_on_every_script_tag(app: Flask) -> None:
    for nonce in ("n0nce", lambda: "n0nce"):
        html = render(app, "home", nonce=nonce)
        assert [s.get("nonce") for s in script_elements(html)] == ["n0nce"] * 3


def test_talisman_nonce_is_used_automatically(make_app: Callable[..., Flask]) -> None:
    from flask_talisman import Talisman

    app = make_app()
    Talisman(
        app,
        force_https=False,
        content_security_policy={"script-src": "'self'"},
        content_security_policy_nonce_in=["script-src"],
    )

    @app.route("/")
    def home() -> str:
        return f"<head>{render_datacue('home')}</head>"

    response = app.test_client().get("/")
    policy = response.headers["Content-Security-Policy"]
    nonces = {s.get("nonce") for s in script_elements(response.get_data(as_text=True))}
    assert len(nonces) == 1
    assert f"'nonce-{nonces.pop()}'" in policy


def test_nonce_is_escaped(app: Flask) -> None:
    html = render(app, "home", nonce='"><script>alert(1)</script>')
    assert len(script_elements(html)) == 3


def test_data_island_mode(make_app: Callable[..., Flask]) -> None:
    app = make_app(DATACUE_CONFIG_MODE="json")
    html = render(app, "search", term="</script><b>", nonce="abc")
    island, loader = script_elements(html)
    assert island.get("type") == "application/json"
    assert config_from_html(html)["term"] == "</script><b>"
    assert loader.get("src") == "/datacue/static/cue-front-loader.js"
    assert loader.get("data-datacue-scripts") == " ".join(DATACUE_CDN_SCRIPTS)
    assert {island.get("nonce"), loader.get("nonce")} == {"abc"}
    assert "window.datacueConfig" not in html  # no inline code at all
    response = app.test_client().get("/datacue/static/cue-front-loader.js")
    assert response.status_code == 200
    assert b"datacue-config" in response.data
    response.close()


def test_custom_script_urls(make_app: Callable[..., Flask]) -> None:
    app = make_app(DATACUE_SCRIPT_URLS=["/static/a.js?x=1&y=2"])
    html = render(app, "home")
    assert [s.get("src") for s in script_elements(html)] == [None, "/static/a.js?x=1&y=2"]
    assert "a.js?x=1&amp;y=2" in html


def test_template_global(app: Flask) -> None:
    with app.test_request_context():
        html = app.jinja_env.from_string("{{ render_datacue('category', category_id='c<1>') }}").render()
    assert config_from_html(html)["category_id"] == "c<1>"


def test_the_secret_never_reaches_a_page(app: Flask) -> None:
    outputs = [render(app, page_type, **fields) for page_type, fields in GUIDE_EXAMPLES]
    with app.test_request_context(), pytest.raises(ValidationError) as caught:
        render_datacue("product", product_id="p", product_update=[{"variant_id": "v", "price": "x"}])
    outputs += [str(caught.value), repr(caught.value), repr(app.extensions["datacue"])]
    assert all(SECRET not in output for output in outputs)
    assert all(API_KEY in page for page in outputs[: len(GUIDE_EXAMPLES)])


def test_missing_api_key_is_a_clear_error() -> None:
    app = Flask("shop")
    with pytest.raises(ConfigurationError, match="DATACUE_API_KEY is not set"):
        DataCue(app)


def test_unknown_mode_is_a_clear_error(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError, match="DATACUE_CONFIG_MODE must be one of inline, json"):
        make_app(DATACUE_CONFIG_MODE="island")


def test_app_factory_and_two_apps_in_one_process() -> None:
    datacue = DataCue()
    apps = []
    for key in ("key-one", "key-two"):
        app = Flask(key)
        app.config.update(DATACUE_API_KEY=key, TESTING=True)
        datacue.init_app(app)
        apps.append(app)
    assert not hasattr(datacue, "app")
    for app, key in zip(apps, ("key-one", "key-two"), strict=True):
        assert config_from_html(render(app, "home"))["api_key"] == key


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_a_page_never_carries_a_number_datacue_would_refuse(
    make_app: Callable[..., Flask], number: float, strict: bool
) -> None:
    """A guest's page holds ``null`` (``user_id``), so the page encoder trusts the schema, not a
    read-back, to keep NaN and infinities out: neither may reach the page as ``null``."""
    app = make_app(DATACUE_STRICT=strict)
    variants = [{"variant_id": "v1", "price": number}, {"variant_id": "v2", "price": 5}]
    with app.test_request_context():
        if strict:
            with pytest.raises(ValidationError, match=r"update\[0\]\.price: expected a finite number"):
                render_datacue("product", product_id="p1", product_update=variants)
            return
        html = str(render_datacue("product", product_id="p1", product_update=variants))
    config = config_from_html(html)
    assert config["user_id"] is None
    # Lenient: the bad price is left out (logged), never written as null.
    assert config["product_update"] == [{"variant_id": "v1"}, {"variant_id": "v2", "price": 5}]
