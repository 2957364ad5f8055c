"""cue-front: connect a Flask shop to DataCue personalization.

The public face only; each name is documented where it is defined, and docs/architecture.md
is the map of the rooms behind it.
"""

from __future__ import annotations

import logging

from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DataCueError,
    NetworkError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from .events import track
from .extension import DataCue
from .identity import current_anonymous_id, current_user_id, end_visitor
from .pages import build_config, datacue_events_script, render_datacue
from .widgets import datacue_banner_slot, datacue_banners, datacue_products

# The one handler of the library's logger hierarchy (cue_front.<room>): the shop configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "DataCue",
    "DataCueError",
    "NetworkError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
    "__version__",
    "build_config",
    "current_anonymous_id",
    "current_user_id",
    "datacue_banner_slot",
    "datacue_banners",
    "datacue_events_script",
    "datacue_products",
    "end_visitor",
    "render_datacue",
    "track",
]
