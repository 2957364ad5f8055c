"""Banner and product widget markup, as the page's HTML carries it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import html5lib
import pytest
from flask import Flask

from cue_front import ValidationError, datacue_banner_slot, datacue_banners, datacue_products, render_datacue


def only_element(html: str) -> dict[str, str]:
    body = html5lib.parse(html, namespaceHTMLElements=False).find("body")
    assert body is not None
    (element,) = list(body)
    return dict(element.attrib)


def test_standard_banner_layout(app: Flask) -> None:
    with app.test_request_context():
        assert only_element(datacue_banners()) == {"data-dc-banners": ""}
        attributes = only_element(datacue_banners("/img/b.jpg", '/c?a=1&b="2"><script>'))
    assert attributes == {
        "data-dc-banners": "",
        "data-dc-static-img": "/img/b.jpg",
        "data-dc-static-link": '/c?a=1&b="2"><script>',
    }


def test_custom_banner_slots(app: Flask) -> None:
    with app.test_request_context():
        main = only_element(datacue_banner_slot("main", 1, class_="custom-big"))
        sub = only_element(datacue_banner_slot("sub", 2))
    assert main == {"class": "custom-big", "data-dc-main-insert-banner": "1"}
    assert sub == {"data-dc-sub-insert-banner": "2"}


@pytest.mark.parametrize(("kind", "position"), [("side", 1), ("main", 0), ("sub", "1")])
def test_bad_banner_slots_are_refused(app: Flask, kind: str, position: int) -> None:
    with app.test_request_context(), pytest.raises(ValidationError):
        datacue_banner_slot(kind, position)


@pytest.mark.parametrize("kind", [None, "related", "categories", "recent"])
def test_product_widgets_on_any_page(app: Flask, kind: str | None) -> None:
    with app.test_request_context():
        render_datacue("cart")
        attributes = only_element(datacue_products(kind))
    assert attributes == {"data-dc-products": kind or ""}


def test_similar_belongs_on_product_pages_and_top_on_category_pages(app: Flask) -> None:
    with app.test_request_context():
        render_datacue("product", product_id="p1")
        assert only_element(datacue_products("similar")) == {"data-dc-products": "similar"}
        with pytest.raises(ValidationError, match="'top' recommendations only apply to category pages"):
            datacue_products("top")
    with app.test_request_context():
        render_datacue("category", category_id="c1")
        assert only_element(datacue_products("top")) == {"data-dc-products": "top"}
        with pytest.raises(ValidationError, match="'similar' recommendations only apply to product pages"):
            datacue_products("similar")


def test_misplaced_kind_is_only_logged_when_lenient(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(DATACUE_STRICT=False)
    with app.test_request_context(), caplog.at_level(logging.WARNING, logger="cue_front"):
        render_datacue("home")
        assert only_element(datacue_products("similar")) == {"data-dc-products": "similar"}
        assert datacue_products("bestsellers") == ""
    assert "'similar' recommendations only apply to product pages" in caplog.text
    assert "kind: expected one of related, categories, recent, similar, top" in caplog.text


def test_widgets_are_jinja_globals(app: Flask) -> None:
    source = (
        "{{ render_datacue('home') }}{{ datacue_banners(static_img=img) }}"
        "{{ datacue_banner_slot('sub', 1) }}{{ datacue_products('recent') }}"
    )
    with app.test_request_context():
        html = app.jinja_env.from_string(source).render(img='"><img src=x onerror=alert(1)>')
    document = html5lib.parse(html, namespaceHTMLElements=False)
    assert [div.attrib for div in document.iter("div")] == [
        {"data-dc-banners": "", "data-dc-static-img": '"><img src=x onerror=alert(1)>'},
        {"data-dc-sub-insert-banner": "1"},
        {"data-dc-products": "recent"},
    ]
    assert list(document.iter("img")) == []


def test_a_shop_can_override_a_widget_template(tmp_path: object, make_app: Callable[..., Flask]) -> None:
    app = make_app()
    from jinja2 import ChoiceLoader, DictLoader

    assert app.jinja_loader is not None
    app.jinja_loader = ChoiceLoader(  # type: ignore[assignment]
        [
            DictLoader(
                {"datacue/products_placeholder.html": '<section data-dc-products="{{ kind }}"></section>'}
            ),
            app.jinja_loader,
        ]
    )
    with app.test_request_context():
        assert str(datacue_products("recent")) == '<section data-dc-products="recent"></section>'


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("/products/p1", "/products/p1"),
        ("https://cdn.example/p1.jpg", "https://cdn.example/p1.jpg"),
        ("//cdn.example/p1.jpg", "//cdn.example/p1.jpg"),
        ("p1.jpg", "p1.jpg"),
        ("javascript:alert(1)", "#"),
        ("JaVaScRiPt:alert(1)", "#"),
        ("\tjava\nscript:alert(1)", "#"),
        ("\x01 javascript:alert(1)", "#"),
        ("data:text/html,<script>alert(1)</script>", "#"),
        ("vbscript:msgbox", "#"),
        (None, "#"),
    ],
)
def test_links_from_datacue_lead_only_to_web_pages(app: Flask, url: object, shown: str) -> None:
    with app.test_request_context():
        html = app.jinja_env.from_string('<a href="{{ url|datacue_url }}">x</a>').render(url=url)
    document = html5lib.parse(html, namespaceHTMLElements=False)
    (link,) = document.iter("a")
    assert link.attrib["href"] == shown
