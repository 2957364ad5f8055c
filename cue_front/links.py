"""Links read as a browser (or a mail client) reads them: where a link really leads.

One reading for every check: widgets keep ``javascript:`` out of ``href`` (:func:`safe_url`),
and the events path keeps a cart link on the shop's own site (:func:`is_path_on_this_site`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["as_browsers_read", "is_path_on_this_site", "origin", "safe_url"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_IGNORED = re.compile(r"[\t\n\r]")  # browsers drop these anywhere in a URL
_WEB_SCHEMES = frozenset({"http", "https"})
_C0_AND_SPACE = "".join(map(chr, range(0x21)))


def as_browsers_read(link: str) -> str:
    """``link`` as a browser reads it: tabs and newlines gone, controls and spaces around it
    gone, ``\\`` taken for ``/`` (so ``\\\\evil.example`` is ``//evil.example``)."""
    return _IGNORED.sub("", link).strip(_C0_AND_SPACE).replace("\\", "/")


def safe_url(url: object) -> str:
    """``url`` if it leads to a web page or picture (http, https or relative), else ``"#"``.

    Links in server-rendered widgets come from DataCue's answers (and so from
    whatever data reached DataCue): ``javascript:``, ``data:`` and other schemes
    are never put in an ``href`` or ``src``. The Jinja filter ``datacue_url``.
    """
    if not isinstance(url, str):
        return "#"
    scheme = _SCHEME.match(as_browsers_read(url))  # "\tjava\nscript:" is still javascript:
    if scheme is not None and scheme.group(1).lower() not in _WEB_SCHEMES:
        return "#"
    return url


def is_path_on_this_site(link: str) -> bool:
    """Whether ``link`` is a path on whatever site it is read on (``/cart``, ``cart?id=1``), not
    a link elsewhere (``//evil.example``, ``\\\\evil.example``, ``http:...``)."""
    read = as_browsers_read(link)
    if read.startswith("//"):
        return False
    try:
        parts = urlsplit(read)
    except ValueError:  # "http://[::1": no link at all
        return False
    return not parts.scheme and not parts.netloc


def origin(url: str, *, as_written: bool = False) -> tuple[str, str] | None:
    """``(scheme, host[:port])`` of ``url`` read as a browser does (or, ``as_written``, exactly as
    written: an ``Origin`` header, which browsers send clean), lower case; ``None`` if it is no
    URL at all."""
    try:
        parts = urlsplit(url if as_written else as_browsers_read(url))
    except ValueError:
        return None
    return parts.scheme.lower(), parts.netloc.lower()
