"""Who the visitor is, as the server decides it: the logged-in user's id, and their profile.

The shop tells cue-front through ``@datacue.user_id_loader`` (and optionally
``@datacue.profile_loader``); each is called at most once per request and the
answer is cached on ``g``. The browser is never asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import g, has_request_context

from .extension import DataCueState, get_state

_UNSET: Any = object()


def current_user_id(state: DataCueState | None = None) -> str | None:
    """The logged-in user's id from the shop's loader, or ``None`` when anonymous."""
    if not has_request_context():
        return None
    cached = g.get("_datacue_user_id", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[no-any-return]
    loader = (state or get_state()).extension.user_id_loader_callback
    user_id = loader() if loader is not None else None
    if user_id is not None and not isinstance(user_id, str):
        user_id = str(user_id)
    g._datacue_user_id = user_id
    return user_id


def current_profile() -> Mapping[str, Any] | None:
    """The visitor's profile (``sex``, ``segment``, ``location``...) from the shop's loader."""
    if not has_request_context():
        return None
    cached = g.get("_datacue_profile", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[no-any-return]
    loader = get_state().extension.profile_loader_callback
    profile = loader() if loader is not None else None
    g._datacue_profile = profile
    return profile
