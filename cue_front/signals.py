"""Signals a shop can observe (blinker, as Flask uses): a row queued, delivered, dead-lettered.

Each is sent with the Flask app as sender (``current_app._get_current_object()``
in a request, the app the delivery worker serves otherwise) and keyword
arguments describing the outbox row: ``row_id``, ``kind`` (``"event"`` or
``"rest"``), ``method``, ``path`` and, for dead letters, ``status`` and
``error``. An event queued through the outbox's journal is ``queued`` with
``row_id=None``: it gets its id when the worker moves it into the outbox table
(see :mod:`cue_front.journal`). Overflow of a full outbox is signalled too: nothing is dropped quietly.

``delivered`` and ``dead_lettered`` come from a background thread: the delivery
thread, or the thread that hears answers DataCue gave after the read timeout.
Keep receivers quick; the app context is pushed for them.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A row was written to the outbox (it is durable now).
queued = _signals.signal("datacue-queued")
#: DataCue accepted a row.
delivered = _signals.signal("datacue-delivered")
#: DataCue refused a row for good (a 4xx other than 408/429); it is kept as a dead letter.
dead_lettered = _signals.signal("datacue-dead-lettered")
#: The outbox hit DATACUE_OUTBOX_MAX_ROWS with only pending rows left.
outbox_full = _signals.signal("datacue-outbox-full")
