"""The durable outbox: requests owed to DataCue (events and store changes), kept until delivered.

``contract`` is the queue's Protocol; ``sqlite`` its backend on one host, with the intake
``journal``; ``worker`` drains it, many requests in ``flight`` at once, each an ``exchange``
built by ``sender``. The design is in docs/delivery.md.
"""

from .contract import (
    KINDS,
    DeadLetter,
    Droppable,
    OutboxBackend,
    OutboxFullError,
    OutboxRow,
    OutboxStats,
)
from .sqlite import Outbox
from .worker import DeliveryWorker

__all__ = [
    "KINDS",
    "DeadLetter",
    "DeliveryWorker",
    "Droppable",
    "Outbox",
    "OutboxBackend",
    "OutboxFullError",
    "OutboxRow",
    "OutboxStats",
]
