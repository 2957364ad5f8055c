"""What a newcomer met on a first walk through the demo store, each fixed where they would see it.

Each product is drawn as what it is; asking for more than is left says so;
wishlisting a product twice says so; "Recently viewed" shows the colour viewed;
a product page's two rails share nothing and stay near the product. (The same,
in Chromium: ``tests/browser/test_demo_polish.py``.)
"""

from __future__ import annotations

import re

import html5lib
from flask import Flask
from flask.testing import FlaskClient

from cue_front.emulator import RunningEmulator
from demo_store import catalog, seed, svg
from demo_store.basket import MAX_QUANTITY
from tests.support.demo_forms import add, log_in, received


def drawn_kind(picture: str) -> str:
    match = re.search(r'<svg [^>]*data-kind="([^"]+)"', picture)
    assert match is not None, picture[:200]
    return match.group(1)


def test_every_product_is_drawn_as_what_it_is(shop: Flask, client: FlaskClient) -> None:
    assert set(seed.KINDS.values()) <= set(svg.DRAWINGS)
    assert len(set(seed.KINDS.values())) == len(seed.KINDS)  # no two products of one kind
    with shop.app_context():
        products = catalog.load_products()
    for product in products:
        for variant in product.colours:
            response = client.get(variant.photo_path)
            assert response.status_code == 200
            assert drawn_kind(response.get_data(as_text=True)) == seed.KINDS[product.name], product.name
    expected = {
        "Linen Tea Towels": "tea-towels",
        "Copper Saucepan": "saucepan",
        "Olive Wood Board": "board",
        "Cast Iron Skillet": "skillet",
        "Canvas Sneakers": "sneaker",
        "Trail Running Shoes": "running-shoe",
        "Stoneware Vase": "vase",
    }
    assert {name: seed.KINDS[name] for name in expected} == expected


def test_no_two_products_of_a_category_look_alike() -> None:
    """Drawn in one colour, with their names taken out, every product of a category differs."""
    for category in seed.CATEGORIES:
        pictures = {
            re.sub(
                r"<title>.*?</title>|data-kind=\"[^\"]+\"",
                "",
                svg.product_svg(kind, category.category_id, "#27406b", name),
            )
            for name, kind in category.products
        }
        assert len(pictures) == len(category.products), category.category_id


def flashes(html: str) -> list[tuple[str, str]]:
    """The page's messages: (kind, text)."""
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return [
        (p.attrib["class"].split("--")[-1], "".join(p.itertext()))
        for p in document.iter("p")
        if "flash" in p.attrib.get("class", "").split()
    ]


def cart_quantities(html: str) -> dict[str, str]:
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return {
        form.attrib.get("id", ""): form.attrib.get("value", "")
        for form in document.iter("input")
        if form.attrib.get("name") == "quantity"
    }


def scarce_variant(shop: Flask, at_most: int = 5) -> tuple[catalog.Product, catalog.Variant]:
    """A product and one of its variants with a few left, but more than one."""
    with shop.app_context():
        for product in catalog.load_products():
            for variant in product.variants:
                if 1 < variant.stock <= at_most:
                    return product, variant
    raise AssertionError("the seeded shop has no variant with a few left")


def test_asking_for_more_than_is_left_says_so(shop: Flask, client: FlaskClient) -> None:
    product, variant = scarce_variant(shop)
    add(client, product.product_id, variant.variant_id, 10)
    html = client.get("/cart").get_data(as_text=True)
    assert flashes(html) == [
        ("success", f"Added {variant.stock} of {product.name} ({variant.label}) to your cart."),
        (
            "notice",
            f"You asked for 10, but only {variant.stock} of {product.name} ({variant.label}) are left:"
            f" your cart has {variant.stock}.",
        ),
    ]
    assert cart_quantities(html) == {"q-1": str(variant.stock)}


def test_asking_for_more_than_an_order_takes_says_so(shop: Flask, client: FlaskClient) -> None:
    with shop.app_context():
        product = next(p for p in catalog.load_products() if p.variants[0].stock > MAX_QUANTITY + 2)
        variant = product.variants[0]
    add(client, product.product_id, variant.variant_id, 8)
    add(client, product.product_id, variant.variant_id, 5)
    html = client.get("/cart").get_data(as_text=True)
    assert flashes(html)[-1] == (
        "notice",
        f"You asked for 5: an order takes {MAX_QUANTITY} of an item at most, your cart has {MAX_QUANTITY}.",
    )
    assert cart_quantities(html) == {"q-1": str(MAX_QUANTITY)}


def test_a_quantity_that_is_left_adds_without_a_notice(shop: Flask, client: FlaskClient) -> None:
    product, variant = scarce_variant(shop)
    add(client, product.product_id, variant.variant_id, variant.stock)
    kinds = [kind for kind, _ in flashes(client.get("/cart").get_data(as_text=True))]
    assert kinds == ["success"]


def test_wishlisting_a_product_already_there_says_so(client: FlaskClient, emulator: RunningEmulator) -> None:
    log_in(client, "chloe@example.com")
    client.post("/wishlist/add", data={"product_id": "p144", "variant_id": "no-variants"})
    response = client.post("/wishlist/add", data={"product_id": "p144", "variant_id": "no-variants"})
    assert flashes(client.get(response.headers["Location"]).get_data(as_text=True)) == [
        ("notice", "Olive Wood Board is already on your wishlist.")
    ]
    assert len(received(emulator, "wishlist")) == 1  # DataCue heard of it once
    client.post("/wishlist/remove", data={"product_id": "p144"})
    response = client.post("/wishlist/remove", data={"product_id": "p144"})
    assert flashes(client.get(response.headers["Location"]).get_data(as_text=True)) == [
        ("notice", "Olive Wood Board was not on your wishlist.")
    ]


def recent_cards(html: str) -> dict[str, tuple[str, str]]:
    """The "Recently viewed" cards: product id -> (link, picture)."""
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return {
        a.attrib["data-dc-product-id"]: (a.attrib["href"], next(a.iter("img")).attrib["src"])
        for a in document.iter("a")
        if a.attrib.get("data-dc-kind") == "recent"
    }


def test_recently_viewed_shows_the_colour_viewed(shop: Flask, client: FlaskClient) -> None:
    with shop.app_context():
        colours = catalog.load_product("p101").colours  # type: ignore[union-attr]
    assert len(colours) >= 2
    # DataCue is told the product, not the colour: whichever it shows, one of these two differs.
    for variant in (colours[1], colours[0], colours[1]):
        client.get(f"/p/p101?colour={variant.colour.lower()}")
        client.get("/p/p144")
        link, picture = recent_cards(client.get("/").get_data(as_text=True))["p101"]
        assert picture == f"/media/products/p101/{variant.colour.lower()}.svg"
        assert link.startswith("/p/p101?variant=") and link.split("=")[1].startswith(variant.colour.lower())
    # A logged-in customer's "Recently viewed" (DataCue's, joined at login) keeps the colours too.
    log_in(client, "ana@example.com")
    assert recent_cards(client.get("/").get_data(as_text=True))["p101"][1].endswith(
        f"/{colours[1].colour.lower()}.svg"
    )


def rails(html: str) -> dict[str, list[str]]:
    """A product page's recommendation rails: kind -> product ids, in order."""
    document = html5lib.parse(html, namespaceHTMLElements=False)
    found: dict[str, list[str]] = {}
    for a in document.iter("a"):
        if "data-dc-product-id" in a.attrib:
            found.setdefault(a.attrib["data-dc-kind"], []).append(a.attrib["data-dc-product-id"])
    return found


def test_a_product_page_s_rails_are_distinct_and_near_the_product(shop: Flask, client: FlaskClient) -> None:
    with shop.app_context():
        products = {p.product_id: p for p in catalog.load_products()}
    for product_id, product in products.items():
        shown = rails(client.get(f"/p/{product_id}").get_data(as_text=True))
        similar, related = shown.get("similar", []), shown.get("related", [])
        assert similar and not set(similar) & set(related), product_id
        # "You may also like": products of its own category.
        assert {products[other].category_id for other in similar} == {product.category_id}, product_id
        # "Customers also bought": those of its own category first.
        own = [products[other].category_id == product.category_id for other in related]
        assert own == sorted(own, reverse=True), product_id
    # The parka, where a newcomer once met a lamp.
    parka = rails(client.get("/p/p101").get_data(as_text=True))
    categories = {products[other].category_id for kind in ("similar", "related") for other in parka[kind]}
    assert categories <= {"outerwear", "knitwear"}
    assert {products[other].category_id for other in parka["similar"]} == {"outerwear"}
