"""Banner and product-recommendation widgets: placeholders for DataCue's script, or rendered on the server.

Each returns safe HTML from an overridable template under ``templates/datacue/``; rendered
on the server, cards carry the ids ``cue-front.js`` tracks clicks on.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import g, render_template
from markupsafe import Markup

from .errors import FieldError, ValidationError
from .links import safe_url
from .recommendations import page_recommendations
from .state import DataCueState, get_state

logger = logging.getLogger(__name__)

__all__ = ["PRODUCT_KINDS", "datacue_banner_slot", "datacue_banners", "datacue_products", "safe_url"]

#: The ``data-dc-products`` values of "Inserting products", with the page types each
#: is limited to (``None``: every page type).
PRODUCT_KINDS: dict[str, tuple[str, ...] | None] = {
    "related": None,
    "categories": None,
    "recent": None,
    "similar": ("product",),
    "top": ("category",),
}

#: The kinds DataCue's event answers carry, in the order a page shows them.
SERVER_SIDE_KINDS = ("related", "similar", "recent")
SECTION_TITLES = {
    "related": "Recommended for you",
    "similar": "Similar products",
    "recent": "Recently viewed",
}

BANNER_SLOT_KINDS = ("main", "sub")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


def _refuse(path: str, message: str) -> None:
    """Raise in strict mode; otherwise log, and the caller renders what it can."""
    error = ValidationError([FieldError(path, message)])
    if get_state().strict:
        raise error
    logger.warning("datacue: %s", error)




def _server_side(state: DataCueState, server_side: bool | None) -> dict[str, Any] | None:
    """DataCue's answer for this page when the widget is to be rendered on the server."""
    if not (state.ssr if server_side is None else server_side):
        return None
    return page_recommendations(state)


def datacue_banners(
    static_img: str | None = None, static_link: str | None = None, *, server_side: bool | None = None
) -> Markup:
    """DataCue's standard banner layout; ``static_img``/``static_link`` fill its static banner.

    Rendered on the server (``server_side=True``, or ``DATACUE_SSR``) from the page's
    ``main_banners`` and ``sub_banners`` when DataCue sent some; otherwise the placeholder.
    """
    answer = _server_side(get_state(), server_side)
    if answer and (answer.get("main_banners") or answer.get("sub_banners")):
        return Markup(
            render_template(
                "datacue/banners.html",
                main_banners=answer.get("main_banners") or [],
                sub_banners=answer.get("sub_banners") or [],
                static_img=static_img,
                static_link=static_link,
            )
        )
    return Markup(
        render_template("datacue/banners_placeholder.html", static_img=static_img, static_link=static_link)
    )


def datacue_banner_slot(kind: str, position: int, **attributes: Any) -> Markup:
    """One slot of a custom banner layout: ``<div data-dc-main-insert-banner="1">``.

    ``kind`` is ``"main"`` or ``"sub"``, ``position`` counts from 1; other keyword
    arguments become attributes (``class_="custom-big"`` for ``class``).
    """
    if kind not in BANNER_SLOT_KINDS:
        _refuse("kind", f"expected 'main' or 'sub', got {kind!r}")
        return Markup("")
    if isinstance(position, bool) or not isinstance(position, int) or position < 1:
        _refuse("position", f"expected a whole number from 1, got {position!r}")
        return Markup("")
    html_attributes = {name.rstrip("_").replace("_", "-"): value for name, value in attributes.items()}
    for name in html_attributes:
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise ValueError(f"not an HTML attribute name: {name!r}")
    return Markup(
        render_template("datacue/banner_slot.html", kind=kind, position=position, attributes=html_attributes)
    )


def datacue_products(kind: str | None = None, *, server_side: bool | None = None) -> Markup:
    """A product recommendation widget: all kinds for the page (``None``), or one kind.

    ``similar`` belongs on product pages and ``top`` on category pages; used
    elsewhere (the page type is known from this request's ``render_datacue``)
    it is an error in strict mode and a logged warning otherwise.

    Rendered on the server (``server_side=True``, or ``DATACUE_SSR``) from the
    page's ``related_product_skus``, ``similar_product_skus`` and
    ``recent_product_skus`` when DataCue sent some; otherwise the placeholder
    (``categories`` and ``top`` have no server-side form in DataCue's API).
    """
    if kind is not None:
        if kind not in PRODUCT_KINDS:
            _refuse("kind", f"expected one of {', '.join(PRODUCT_KINDS)}, got {kind!r}")
            return Markup("")
        allowed = PRODUCT_KINDS[kind]
        page_type = g.get("_datacue_page_type")
        if allowed is not None and page_type is not None and page_type not in allowed:
            _refuse(
                "kind",
                f"{kind!r} recommendations only apply to {' and '.join(allowed)} pages,"
                f" not to this {page_type!r} page",
            )
    answer = _server_side(get_state(), server_side)
    if answer:
        kinds = SERVER_SIDE_KINDS if kind is None else (kind,)
        sections = [
            {
                "kind": name,
                "title": SECTION_TITLES[name],
                "products": answer.get(f"{name}_product_skus") or [],
            }
            for name in kinds
            if name in SERVER_SIDE_KINDS
        ]
        sections = [section for section in sections if section["products"]]
        if sections:
            return Markup(render_template("datacue/products.html", kind=kind, sections=sections))
    elif get_state().ssr and server_side is not False:
        _warn_once(
            (g.get("_datacue_page_type"), kind),
            f"datacue: no server-side recommendations for datacue_products({kind!r}) on"
            f" {g.get('_datacue_page_type')!r} pages (DataCue answers home, product and search"
            " pages only); its placeholder stays empty without DataCue's script",
        )
    return Markup(render_template("datacue/products_placeholder.html", kind=kind))


_warned: set[object] = set()


def _warn_once(key: object, message: str) -> None:
    """Log a configuration hint once per process, not on every page."""
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)
