"""Listens, on a thread of its own, for DataCue's answers that come after the read timeout.

DataCue's APIs have no idempotency key, so a row sent again after a timeout is counted
twice whenever DataCue did process the first copy, only slowly; docs/delivery.md ("Late
answers") tells why the row is listened for instead, and for how long.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .contract import OutboxRow
from .sender import Outcome, RowSender, Unanswered, Verdict

__all__ = ["Awaited", "LateAnswers", "unanswered_outcome"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Awaited:
    """A row whose answer is still listened for after the read timeout."""

    row: OutboxRow
    owner: str
    unanswered: Unanswered
    #: When the request went out, and when to stop listening (before the row's lease ends).
    sent_at: float
    until: float


class LateAnswers:
    """Listens, on a thread of its own, for answers that come after the read timeout.

    DataCue's APIs have no idempotency key, so a request sent again after a timeout
    is counted twice whenever DataCue did process the first copy, only slowly. A row
    not answered within the read timeout is therefore not retried at once: the
    delivery thread moves on, and this thread keeps the connection open and reads the
    answer when it comes, until shortly before the row's lease runs out. Only then,
    or when DataCue hangs up without answering, is the row retried. ``settle``
    records each outcome. At most ``capacity`` rows are listened for at a time.
    """

    def __init__(
        self, sender: RowSender, settle: Callable[[Awaited, Outcome], None], capacity: int
    ) -> None:
        self._sender = sender
        self._settle = settle
        self._capacity = capacity
        self._awaited: list[Awaited] = []
        #: Rows taken from ``_awaited`` whose answer is being read or recorded.
        self._settling: set[int] = set()
        self._changed = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._wake_pair: tuple[socket.socket, socket.socket] | None = None

    def listen(self, awaited: Awaited) -> bool:
        """Listen for ``awaited``'s answer; False (nothing taken) when full or closed."""
        with self._changed:
            if self._closing or len(self._awaited) + len(self._settling) >= self._capacity:
                return False
            if self._thread is None:
                pair = socket.socketpair()
                for end in pair:
                    end.setblocking(False)
                thread = threading.Thread(target=self._run, args=(pair[0],), name="cue-front-late-answers")
                thread.daemon = True
                try:
                    thread.start()
                except RuntimeError:  # interpreter shutdown
                    for end in pair:
                        end.close()
                    return False
                self._thread, self._wake_pair = thread, pair
            self._awaited.append(awaited)
        self._wake()
        return True

    def wait_for(self, row_ids: set[int]) -> None:
        """Return once none of ``row_ids`` is listened for any more (each has been settled)."""

        def unsettled() -> list[Awaited]:
            return [item for item in self._awaited if item.row.id in row_ids]

        with self._changed:
            while (waiting := unsettled()) or self._settling & row_ids:
                if self._thread is None or not self._thread.is_alive():
                    return  # nothing would settle them: their leases run out instead
                until = max((item.until for item in waiting), default=time.monotonic())
                self._changed.wait(max(0.05, until - time.monotonic() + 0.05))

    def close(self, timeout: float) -> list[Awaited]:
        """Stop listening; the rows still waiting for an answer are returned, their connections closed.

        Waits up to ``timeout`` seconds for an answer being read meanwhile to be recorded.
        """
        with self._changed:
            self._closing = True
            left, self._awaited = self._awaited, []
            thread, pair = self._thread, self._wake_pair
            self._changed.notify_all()
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for item in left:
            item.unanswered.connection.close()
        if pair is not None and (thread is None or not thread.is_alive()):
            for end in pair:
                end.close()
        return left

    def _wake(self) -> None:
        pair = self._wake_pair
        if pair is not None:
            with contextlib.suppress(OSError):  # a wake-up already waiting (buffer full), or closed
                pair[1].send(b"\0")

    def _run(self, wake: socket.socket) -> None:
        while True:
            with self._changed:
                if self._closing:
                    return
                awaited = list(self._awaited)
            sockets = {item.unanswered.connection.sock: item for item in awaited}
            timeout = min((item.until for item in awaited), default=time.monotonic() + 60.0)
            try:
                with selectors.DefaultSelector() as selector:  # not select(): see _readable
                    for sock in (wake, *sockets):
                        selector.register(sock, selectors.EVENT_READ)
                    events = selector.select(max(0.0, timeout - time.monotonic()))
            except (OSError, ValueError):  # a connection closed meanwhile (by close())
                continue
            ready = {key.fileobj for key, _ in events}
            if wake in ready:
                try:
                    while wake.recv(4096):
                        pass
                except OSError:  # drained (or closed)
                    pass
            now = time.monotonic()
            due = [item for sock, item in sockets.items() if sock in ready or now >= item.until]
            with self._changed:
                due = [item for item in due if item in self._awaited]
                for item in due:
                    self._awaited.remove(item)
                    self._settling.add(item.row.id)
            for index, item in enumerate(due):
                self._answer(item, now, due[index + 1 :])

    def _answer(self, item: Awaited, now: float, due_next: list[Awaited]) -> None:
        unanswered = item.unanswered
        connection = unanswered.connection
        try:
            # An answer slow to come whole must not keep the others unread past their time.
            with self._changed:
                next_until = min((other.until for other in (*self._awaited, *due_next)), default=None)
            read_timeout = self._sender.read_timeout
            if next_until is not None:
                read_timeout = max(0.01, min(read_timeout, next_until - time.monotonic()))
            outcome: Outcome | None = None
            if connection.sock is not None:
                method, url = unanswered.method, unanswered.url
                outcome = self._sender.receive(connection, unanswered.origin, method, url, read_timeout, 0.0)
            if outcome is None:
                with self._changed:
                    # Readable for no answer (a TLS session ticket): listen on, while there is time.
                    if not self._closing and time.monotonic() < item.until:
                        self._awaited.append(item)
                        return
                connection.close()
                outcome = unanswered_outcome(unanswered, now - item.sent_at)
            self._settle(item, outcome)
        except Exception:  # the outbox file: the lease runs out and the row is sent again
            logger.exception("datacue: recording the late answer to outbox row %d failed", item.row.id)
        finally:
            with self._changed:
                self._settling.discard(item.row.id)
                self._changed.notify_all()


def unanswered_outcome(unanswered: Unanswered, waited: float) -> Outcome:
    message = f"{unanswered.method} {unanswered.url}: DataCue did not answer in time ({waited:.3g}s)"
    return Outcome(Verdict.RETRY, None, message)
