"""Browsing: home, category, product and search pages, the generated pictures, and the 404 page.

Each page passes its documented DataCue fields to its template, which calls
``render_datacue`` in ``<head>`` before any widget (see ``templates/``).

A product page's pageview names the product, not the colour and size on view
(DataCue's product page has no field for it), so DataCue's "Recently viewed"
cards come in a colour of DataCue's choosing. The session remembers which
variant this browser last viewed of each product, and the cards show that one
(:func:`viewed_variant`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from flask import Blueprint, Response, abort, redirect, render_template, request, session, url_for
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as BaseResponse

from . import catalog, svg
from .catalog import SORTS

__all__ = ["blueprint", "not_found", "viewed_variant"]

blueprint = Blueprint("shop", __name__)

#: The shop's own, non-personalised banner beside DataCue's (``data-dc-static-img``).
STATIC_BANNER = ("Free delivery over $75", "And 30 days to change your mind")
STATIC_BANNER_LINK = "/c/knitwear"

#: Generated pictures never change for a given URL.
IMAGE_MAX_AGE = 24 * 3600

#: How many products' viewed variants the session keeps (DataCue's "Recently viewed" shows 10).
VIEWED_KEPT: Final = 20


@blueprint.get("/")
def home() -> str:
    categories = catalog.load_categories()
    return render_template("home.html", categories=categories, static_banner_link=STATIC_BANNER_LINK)


@blueprint.get("/c/<category_id>")
def category(category_id: str) -> str:
    found = catalog.load_category(category_id)
    if found is None:
        abort(404)
    sort = request.args.get("sort", "featured")
    if sort not in SORTS:
        sort = "featured"
    products = catalog.load_products(category_id=category_id, sort=sort)
    return render_template("category.html", category=found, products=products, sort=sort, sorts=SORTS)


@blueprint.get("/p/<product_id>")
def product(product_id: str) -> str:
    found = catalog.load_product(product_id)
    if found is None:
        abort(404)
    selected = found.variant(request.args.get("variant"))
    if selected is None:
        colour = request.args.get("colour")
        selected = next(
            (v for v in found.variants if v.available and (colour is None or v.colour.lower() == colour)),
            found.variants[0],
        )
    _remember_viewed(found.product_id, selected.variant_id)
    return render_template(
        "product.html",
        product=found,
        selected=selected,
        product_update=catalog.product_update(found),
    )


def _remember_viewed(product_id: str, variant_id: str) -> None:
    viewed = [pair for pair in session.get("viewed", []) if pair[0] != product_id]
    session["viewed"] = [*viewed, [product_id, variant_id]][-VIEWED_KEPT:]


def viewed_variant(card: Mapping[str, Any]) -> catalog.Variant | None:
    """The variant this browser last viewed of a recommended product (DataCue's product object), if any."""
    product_id = card.get("product_id")
    variant_id = next((v for p, v in reversed(session.get("viewed", [])) if p == product_id), None)
    if variant_id is None:
        return None
    product = catalog.load_product(str(product_id))
    return None if product is None else product.variant(variant_id)


@blueprint.get("/search")
def search() -> BaseResponse | str:
    term = " ".join(request.args.get("q", "").split())[:100]
    if not term:
        return redirect(url_for("shop.home"))
    products = catalog.search_products(term)
    return render_template("search.html", term=term, products=products)


def _svg(text: str) -> BaseResponse:
    response = Response(text, mimetype="image/svg+xml")
    response.cache_control.public = True
    response.cache_control.max_age = IMAGE_MAX_AGE
    response.add_etag()
    return response.make_conditional(request)


@blueprint.get("/media/products/<product_id>/<colour>.svg")
def product_image(product_id: str, colour: str) -> BaseResponse:
    found = catalog.load_product(product_id)
    variant = None if found is None else next((v for v in found.colours if v.colour.lower() == colour), None)
    if found is None or variant is None:
        abort(404)
    label = f"{found.name}, {variant.colour}"
    return _svg(svg.product_svg(found.kind, found.category_id, variant.colour_hex, label))


@blueprint.get("/media/banners/<banner_id>.svg")
def banner_image(banner_id: str) -> BaseResponse:
    if banner_id == "static":
        return _svg(svg.static_banner_svg(*STATIC_BANNER))
    category_id, _, kind = banner_id.removeprefix("b-").rpartition("-")
    found = catalog.load_category(category_id)
    if found is None or kind not in ("main", "sub"):
        abort(404)
    if kind == "main":
        return _svg(svg.banner_svg(found.category_id, found.name, found.tagline, found.colour))
    return _svg(
        svg.banner_svg(
            found.category_id, f"New in {found.name}", "Fresh arrivals this week", found.colour, sub=True
        )
    )


def not_found(error: NotFound) -> tuple[str, int]:
    """The 404 page, with DataCue's ``404`` page type."""
    return render_template("404.html"), 404
