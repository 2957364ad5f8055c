"""cue-front: connect a Flask shop to DataCue personalization.

The public face only; each name is documented where it is defined.
"""

from __future__ import annotations

import logging

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
from .identity import current_anonymous_id, current_user_id
from .pages import build_config, datacue_events_script, render_datacue
from .widgets import datacue_banner_slot, datacue_banners, datacue_products

__version__ = "0.1.0"

logging.getLogger("cue_front").addHandler(logging.NullHandler())

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
    "render_datacue",
    "track",
]
