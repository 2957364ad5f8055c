"""The exceptions cue-front raises, all under :class:`DataCueError`.

API errors carry the HTTP ``status``, the response ``body`` and DataCue's
``request_id`` when it sent one, in the manner of stripe-python. No message ever
contains the API secret: messages are built from the server's reply and our own
words only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class DataCueError(Exception):
    """Base class of every error cue-front raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigurationError(DataCueError):
    """The extension is set up wrongly (a missing key, an unknown mode)."""


class FieldError(NamedTuple):
    """One problem with one field, named by its path (``product_update[1].price``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(DataCueError, ValueError):
    """Data does not match the documented object; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(error) for error in self.errors))


class APIError(DataCueError):
    """DataCue answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r})"


class BadRequestError(APIError):
    """400: DataCue refused the payload; the message is the server's."""


class AuthenticationError(APIError):
    """401: wrong API key, or a signature that does not match the body."""


class NotFoundError(APIError):
    """404: no such endpoint or object."""


class PayloadTooLargeError(APIError):
    """413, or a body refused before sending because it is over DataCue's limit."""


class RateLimitError(APIError):
    """429 after all retries; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx after all retries."""


class NetworkError(DataCueError):
    """DataCue could not be reached (connection refused, reset, timed out)."""
