"""``window.datacueConfig`` for every documented page type: ``build_config`` and ``render_datacue``.

The config is built from the shop's arguments, the API key and the visitor's ``user_id``,
validated, and rendered as safe HTML followed by DataCue's loader scripts. Rendering
does no I/O, unless server-side recommendations are on (:mod:`cue_front.recommendations`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import g, url_for
from markupsafe import Markup, escape

from . import schema
from .encoding import script_json
from .errors import FieldError, ValidationError
from .identity import UNSET, current_user_id, has_consent, mark_personal
from .recommendations import send_page_event
from .state import DataCueState, get_state

logger = logging.getLogger(__name__)

__all__ = ["build_config", "datacue_events_script", "render_datacue", "script_json"]

#: Spellings accepted for documented page types; the documented string is always emitted.
PAGE_TYPE_ALIASES = {"order_confirmation": "order confirmation", "not_found": "404"}

_PAYMENT_PAGES = ("checkout", "payment", "order checkout")
_RESERVED = frozenset({"api_key", "page_type"})

Nonce = str | Callable[[], str] | None

def _resolve_page_type(page_type: Any) -> str:
    if isinstance(page_type, str):
        page_type = PAGE_TYPE_ALIASES.get(page_type, page_type)
        if page_type in schema.PAGE_TYPES:
            return str(page_type)
        if page_type.lower() in _PAYMENT_PAGES:
            raise ValidationError(
                [
                    FieldError(
                        "page_type",
                        f"{page_type!r} is not a DataCue page type: DataCue advises no tracking"
                        " script (theirs or anyone's) on payment and checkout pages, where"
                        " sensitive data is entered; leave render_datacue out of this page",
                    )
                ]
            )
    documented = ", ".join(repr(name) for name in schema.PAGE_TYPES)
    raise ValidationError(
        [FieldError("page_type", f"expected one of {documented}, got {schema.describe(page_type)}")]
    )


def _build(
    state: DataCueState, page_type: Any, user_id: Any, fields: dict[str, Any]
) -> dict[str, Any] | None:
    """The validated config, or ``None`` when lenient mode had to drop all of it."""
    try:
        page_type = _resolve_page_type(page_type)
    except ValidationError as error:
        if state.strict:
            raise
        logger.warning("datacue: page config not rendered: %s", error)
        return None
    request_globals = g._get_current_object()  # one context lookup instead of several
    request_globals._datacue_page_type = page_type
    if not _RESERVED.isdisjoint(fields):
        raise TypeError("api_key and page_type are set by cue-front, not passed as fields")
    page = {
        "api_key": state.api_key,
        "user_id": current_user_id(state) if user_id is UNSET else user_id,
        "page_type": page_type,
        **fields,
    }
    page_spec = schema.PAGE_CONFIG.variants[(page_type,)]
    if state.strict:
        config: dict[str, Any] = schema.validate(page_spec, page)
        request_globals._datacue_config = config
        return config
    config, errors = schema.validate_partial(page_spec, page)
    request_globals._datacue_config = config
    if errors:
        logger.warning("datacue: invalid %s page data omitted: %s", page_type, "; ".join(map(str, errors)))
    return config


def build_config(page_type: str, *, user_id: Any = UNSET, **fields: Any) -> dict[str, Any]:
    """The ``window.datacueConfig`` object of a page, as a plain dict.

    Keyword names are the documented field names (``product_id``, ``product_update``,
    ``category_id``, ``category_update``, ``term``, ``order_id``, ``order_details``).
    ``user_id`` defaults to the shop's ``user_id_loader``; pass it to override (guest
    checkout: the guest's email). Invalid data raises :class:`ValidationError` in
    strict mode; otherwise the invalid part is left out and a warning logged.
    """
    config = _build(get_state(), page_type, user_id, fields)
    return {} if config is None else config


def _nonce_attribute(state: DataCueState, nonce: Nonce) -> str:
    """`` nonce="..."`` (escaped), or ``""``; flask-talisman's request nonce when none is given."""
    if nonce is None:
        # flask-talisman registers its nonce getter as the Jinja global ``csp_nonce``.
        nonce = state.jinja_globals.get("csp_nonce")  # type: ignore[assignment]
    if callable(nonce):
        nonce = nonce()
    if not nonce:
        return ""
    return f' nonce="{escape(nonce)}"'


@functools.lru_cache(maxsize=64)
def _loader_scripts(script_urls: tuple[str, ...], nonce_attribute: str) -> str:
    return "".join(f'\n<script src="{escape(url)}"{nonce_attribute}></script>' for url in script_urls)


def render_datacue(page_type: str, *, user_id: Any = UNSET, nonce: Nonce = None, **fields: Any) -> Markup:
    """The config script and DataCue's loader scripts, as safe HTML for the page's ``<head>``.

    Same arguments as :func:`build_config`, plus ``nonce`` (a string or a callable
    returning one) for a Content-Security-Policy; flask-talisman's nonce is used
    automatically. With ``DATACUE_CONFIG_MODE = "json"`` the config is a JSON data
    island read by a static loader script, so no inline script is needed at all.
    """
    state = get_state()
    config = _build(state, page_type, user_id, fields)
    if config is None:
        return Markup("")
    if not has_consent(state):
        # DataCue's scripts would track from the browser: neither they nor the config go in.
        # An order confirmation's order is still queued (the shop's data, not tracking), with
        # or without SSR: without consent DataCue's script is not there to send it.
        send_page_event(state, config)
        return Markup("")
    if config.get("user_id") is not None:
        mark_personal()  # the page names who is logged in
    script_urls = state.script_urls
    if state.ssr:
        # The server sends the pageview and renders the recommendations; DataCue's
        # scripts would send the pageview a second time, so they are left out.
        send_page_event(state, config)
        script_urls = ()
    nonce_attribute = _nonce_attribute(state, nonce)
    # The page is built as a str and marked safe once: every value in it is escaped,
    # the config by script_json, attributes by escape(). (Markup.format would do the
    # same at several times the cost, on the one path every page takes.)
    payload = script_json(config, validated=True)  # _build validated it
    if state.config_mode == "json":
        loader = url_for("datacue.static", filename="cue-front-loader.js")
        urls = " ".join(script_urls)
        return Markup(
            f'<script type="application/json" id="datacue-config"{nonce_attribute}>{payload}</script>\n'
            f'<script src="{escape(loader)}" data-datacue-scripts="{escape(urls)}"{nonce_attribute}></script>'
        )
    return Markup(
        f"<script{nonce_attribute}>window.datacueConfig = {payload};</script>"
        + _loader_scripts(script_urls, nonce_attribute)
    )


def datacue_events_script(*, nonce: Nonce = None) -> Markup:
    """``<script>`` for ``static/cue-front.js``: ``cueFront.track()`` and automatic click tracking."""
    state = get_state()
    if not has_consent(state):
        return Markup("")  # it would keep and post the visitor's clicks
    source = url_for("datacue.static", filename="cue-front.js")
    endpoint = url_for("datacue.events") if state.proxy_enabled else ""
    nonce_attribute = _nonce_attribute(state, nonce)
    return Markup(
        f'<script src="{escape(source)}" data-endpoint="{escape(endpoint)}" defer{nonce_attribute}></script>'
    )
