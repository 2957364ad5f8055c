"""Keeping other sites out: the emulator answers only to its own names, and only its own pages change it.

The emulator is a dev server on a loopback port that holds what a shop sent it
(customer emails among it). A page on any other site, open in the developer's
browser, could otherwise reach it in two ways:

* **DNS rebinding**: ``evil.example`` is made to resolve to 127.0.0.1 once its
  page has loaded; the page then reads ``/_emulator/requests`` as same-origin.
  Its requests name ``evil.example`` in their ``Host`` header, so the emulator
  answers 421 to every request whose host is not one of its own names: the
  loopback names, the address it serves on (the one the connection arrived at),
  and the hosts it was started to allow (``allow_hosts``, ``--allow-host``).
* **Cross-site requests**: a page can send a form or a ``no-cors`` fetch to
  ``POST /_emulator/reset`` without reading the answer: the harm is done. The
  browser says where such a request comes from, in ``Sec-Fetch-Site`` (or, in
  browsers without it, ``Origin``), so the emulator's state-changing
  ``/_emulator/`` endpoints answer 403 unless it is the emulator's own page or
  no page at all (typed in the address bar). Requests with neither header do
  not come from a web page (curl, ``requests``, the tests, the shop's server)
  and stay allowed.

The port is not part of the host check: a browser always names the port it
connects to, so a rebinding page is told apart by its name alone, while a local
forwarder (a TCP proxy, ``docker -p``, an SSH tunnel) keeps the loopback name
and its own port. The events API (``POST /``, ``/events``) is not concerned:
shops' pages post to it from other origins by design, and REST calls need a
signature no page can send without a CORS preflight, which the emulator refuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from flask import Response, current_app, request

from .exchange import Problem, error_response

__all__ = ["ALLOWED_HOSTS_KEY", "LOOPBACK_NAMES", "allowed_hosts", "guard", "host_name"]

#: Where the app keeps the hosts it was started to allow, besides its own names.
ALLOWED_HOSTS_KEY: Final = "EMULATOR_ALLOWED_HOSTS"

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})

#: Methods that only read: the cross-site check leaves them alone.
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

#: ``Sec-Fetch-Site`` values of requests from the emulator's own pages, or from no page at all.
_OWN_FETCH_SITES: Final = frozenset({"same-origin", "none"})


def host_name(host: str) -> str:
    """The name in a ``Host`` header (or an ``--allow-host`` value) without its port, lowercased:
    ``[::1]:5050`` is ``::1``, ``Example.test:80`` is ``example.test``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.partition(":")[0]


def allowed_hosts(names: Iterable[str]) -> frozenset[str]:
    """The host names given to ``create_emulator(allow_hosts=...)``, as the guard compares them."""
    return frozenset(host_name(name) for name in names if name.strip())


def _own_names() -> set[str]:
    """The names this request may use for the emulator."""
    names = set(LOOPBACK_NAMES) | set(current_app.config.get(ALLOWED_HOSTS_KEY, ()))
    # The address it was started on (werkzeug: the bound address, "0.0.0.0" for every interface)...
    names.add(host_name(request.environ.get("SERVER_NAME", "")))
    # ...and the one this connection arrived at (a LAN address, when bound to every interface).
    connection = request.environ.get("werkzeug.socket")
    if connection is not None:
        names.add(str(connection.getsockname()[0]).lower())
    return names


def _cross_site_source() -> str | None:
    """What says that this request comes from another site's page; None when nothing does."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return None if fetch_site in _OWN_FETCH_SITES else f"Sec-Fetch-Site: {fetch_site}"
    origin = request.headers.get("Origin")
    # The host was checked first, so the origin it names is the emulator's as the browser sees it.
    if origin is None or origin.lower() == f"{request.scheme}://{request.host}".lower():
        return None
    return f"Origin: {origin}"


def guard() -> Response | None:
    """Before every request: 421 for a host that is not the emulator's, 403 for another site's
    page changing it; None lets the request through."""
    name = host_name(request.host)
    if name not in _own_names():
        return error_response(
            Problem(
                421,
                f"this emulator does not answer for host {name!r}: use 127.0.0.1 or localhost, or"
                f" start it with --allow-host {name} (create_emulator(allow_hosts=[{name!r}]))"
                " if that host is yours",
            )
        )
    if request.path.startswith("/_emulator/") and request.method not in _SAFE_METHODS:
        source = _cross_site_source()
        if source is not None:
            return error_response(
                Problem(
                    403,
                    f"{request.method} {request.path} refused: it comes from another site's page"
                    f" ({source}); only the emulator's own page, and clients that are not"
                    " browsers, may change it",
                )
            )
    return None
