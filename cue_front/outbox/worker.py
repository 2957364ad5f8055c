"""The delivery worker: drains the outbox into DataCue on a thread of its own (or the caller's).

It claims due rows, sends each with :class:`~.sender.RowSender`, and settles it by its
verdict: acked, retried after a backoff, or kept as a dead letter. It depends on the
outbox only through :class:`~.contract.OutboxBackend`. How it paces itself, pauses when
DataCue is down, and flushes at exit is in docs/delivery.md ("The delivery worker").
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import random
import socket
import threading
import time
import weakref
from typing import Any, Final

from .. import forks, signals
from ..transport import Transport
from .contract import OutboxBackend, OutboxRow
from .late_answers import Awaited, LateAnswers, unanswered_outcome
from .sender import Outcome, RowSender, Unanswered, Verdict

__all__ = ["EXIT_FLUSH_SECONDS", "DeliveryWorker", "backoff"]

logger = logging.getLogger(__name__)

#: How long, in all, the flush at interpreter exit may take.
EXIT_FLUSH_SECONDS: Final = 2.0
#: Failures in a row, within one batch, after which DataCue is taken to be down.
FAILURES_BEFORE_PAUSE: Final = 3
#: The longest ``Retry-After`` honoured; a longer one (a confused proxy) is cut to this.
MAX_RETRY_AFTER: Final = 3600.0
#: A row failing this many times is logged at WARNING (before: INFO, since one failure is routine).
ATTEMPTS_BEFORE_WARNING: Final = 5
#: Seconds between WAL checkpoints by the worker (puts never checkpoint).
CHECKPOINT_INTERVAL: Final = 1.0
#: While delivery is paused, journaled events are still moved into the outbox this often (seconds).
INGEST_WHILE_PAUSED: Final = 0.5
#: Rows whose late answer one worker listens for at a time; past that a timed-out row is retried.
MAX_LATE_ANSWERS: Final = 32
#: Seconds before a claim's lease ends by which its rows are settled (no other process may have them yet).
LEASE_MARGIN: Final = 1.0


class DeliveryWorker:
    """Drains an outbox into DataCue through ``transport``, on a thread of its own.

    ``sender`` is the blinker sender of ``signals.delivered`` and ``signals.dead_lettered``
    (the Flask app; its app context is pushed while they are sent). ``batch_size`` rows are
    claimed at a time; failed rows wait :func:`backoff` seconds. With nothing due, the
    thread sleeps up to ``idle_interval`` seconds, or until :meth:`notify`, then lingers
    ``linger`` seconds to send what arrives meanwhile in the same batch.
    """

    def __init__(
        self,
        outbox: OutboxBackend,
        transport: Transport,
        *,
        sender: object = None,
        batch_size: int = 100,
        backoff_base: float = 0.5,
        backoff_max: float = 300.0,
        idle_interval: float = 1.0,
        linger: float = 0.01,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        self.outbox = outbox
        self.transport = transport
        self.sender = sender
        self.batch_size = batch_size
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.idle_interval = idle_interval
        self.linger = linger
        self._stopped = False
        self._reset_for_this_process()
        request_seconds = sum(transport.timeout)
        if outbox.lease_seconds <= request_seconds:
            logger.warning(
                "datacue: the outbox lease (%gs) is not longer than one request may take (%gs):"
                " rows may be sent twice; raise lease_seconds",
                outbox.lease_seconds,
                request_seconds,
            )
        _workers.add(self)

    def __repr__(self) -> str:
        return f"<DeliveryWorker outbox={self.outbox!r} running={self.running}>"

    def _reset_for_this_process(self) -> None:
        """Fresh thread state and HTTP connections: at creation, and in a forked child."""
        self._pid = os.getpid()
        self._generation = forks.generation
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._sender = RowSender(self.transport)
        self._late = LateAnswers(self._sender, self._settle_late, MAX_LATE_ANSWERS)
        self._owner = f"{socket.gethostname()}:{self._pid}:{id(self):x}"
        self._claims = itertools.count(1)
        self._paused_until = 0.0
        self._acked_since_prune = 0
        self._last_prune = time.monotonic()
        self._last_checkpoint = time.monotonic()

    def _check_fork(self) -> None:
        if self._generation != forks.generation:
            # The parent's thread does not exist here, and its sockets are the parent's.
            self._reset_for_this_process()

    # -- the thread -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True when this process's delivery thread is alive."""
        thread = self._thread
        return thread is not None and self._generation == forks.generation and thread.is_alive()

    def ensure_running(self) -> None:
        """Start the delivery thread if it is not running in this process (first use, or after a fork)."""
        # On every track(): a fork generation, not os.getpid(), which is a system call.
        if self._generation == forks.generation and self._thread is not None and self._thread.is_alive():
            return
        self._check_fork()
        if self._stopped:
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._thread is not None:
                logger.error("datacue: the delivery thread had stopped; starting it again")
            self._stopping.clear()
            thread = threading.Thread(target=self._run, name="cue-front-delivery", daemon=True)
            try:
                thread.start()
            except RuntimeError as error:  # interpreter shutdown: the rows wait in the outbox
                logger.warning("datacue: cannot start the delivery thread (%s); rows stay queued", error)
                return
            self._thread = thread

    def serve(self) -> None:
        """Deliver in the calling thread until :meth:`stop` (from a signal handler or another thread).

        For a process that only delivers, so that no delivery work competes with the shop's
        requests for the GIL (no command runs it yet: the scale-out work adds one).
        """
        self._check_fork()
        if self._stopped:  # stop() is final, even when it comes first
            return
        try:
            self._run()
        finally:
            self._stop_listening(timeout=5.0)
            self._sender.close()

    def notify(self) -> None:
        """Wake the thread: a row was just put. Cheap enough for the request path."""
        wake = self._wake
        if not wake.is_set():
            wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (waiting up to ``timeout`` for the batch in hand) and close its connections.

        Rows it could not finish stay in the outbox for the next start.
        """
        self._stopped = True
        if self._generation != forks.generation:
            return
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._stop_listening(timeout=max(0.1, deadline - time.monotonic()))
        if thread is None or not thread.is_alive():  # else its connections are still in use
            self._sender.close()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            pause = self._paused_until - time.monotonic()
            if pause > 0:  # DataCue is down or asked us to slow down: even a notify waits
                # ...but journaled events still move into the outbox, where the cap and
                # `flask datacue status` see them.
                self._stopping.wait(min(pause, INGEST_WHILE_PAUSED))
                try:
                    self.outbox.ingest()
                except Exception:
                    logger.exception("datacue: moving journaled events into the outbox failed")
                continue
            self._wake.clear()
            try:
                handled = self._deliver_batch(deadline=None)
                failures = 0
            except Exception:  # the outbox file, the disk: keep going, loudly
                failures += 1
                logger.exception("datacue: the delivery worker failed; trying again")
                handled = 0
                self._pause(self._backoff(failures))
            try:
                self._upkeep(idle=handled == 0)
            except Exception:
                logger.exception("datacue: outbox upkeep failed")
            paused = time.monotonic() < self._paused_until
            if handled >= self.batch_size and not paused:
                continue  # a backlog: straight on with the next batch
            if handled and not paused:
                # Rows keep coming: gather what arrives meanwhile into one batch, so that a
                # busy process pays one claim and one ack per batch, not per event.
                self._stopping.wait(self.linger)
                continue
            if self._wake.wait(self._idle_wait()) and self.linger:
                self._stopping.wait(self.linger)

    def _idle_wait(self) -> float:
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            return pause
        try:
            due_in = self.outbox.next_due_in()
        except Exception:
            return self.idle_interval
        if due_in is None:
            return self.idle_interval
        return min(self.idle_interval, max(due_in, 0.005))

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _upkeep(self, idle: bool) -> None:
        now = time.monotonic()
        prune_every = max(100, min(10_000, self.outbox.max_rows // 10))
        if self._acked_since_prune >= prune_every or (
            idle and self._acked_since_prune and now - self._last_prune >= 5.0
        ):
            self._acked_since_prune = 0
            self._last_prune = now
            self.outbox.prune(pause=0.001)
        if now - self._last_checkpoint >= CHECKPOINT_INTERVAL:
            self._last_checkpoint = now
            self.outbox.checkpoint()

    # -- delivering -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch and send it, here and now; returns how many rows were settled.

        A row answered after the read timeout is waited for (see :class:`LateAnswers`).
        """
        return self._deliver_batch(deadline=None, wait_for_late_answers=True)

    def flush(self, timeout: float) -> bool:
        """Deliver until the outbox is empty or ``timeout`` seconds pass; True when nothing is left.

        Waits for rows in flight elsewhere (this process's thread, another process) and
        for retries that fall due before the deadline; gives up at once when what is
        left waits out a backoff longer than the time left.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self._deliver_batch(deadline=deadline):
                if time.monotonic() < deadline:
                    continue
                return self.outbox.unfinished() == 0
            stats = self.outbox.stats()
            if stats.pending + stats.in_flight == 0:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if stats.in_flight:
                time.sleep(min(left, 0.02))
                continue
            due_in = self.outbox.next_due_in()
            if due_in is None:
                return True
            if due_in >= left:
                return False
            time.sleep(max(due_in, 0.005))

    def _deliver_batch(self, deadline: float | None, wait_for_late_answers: bool = False) -> int:
        self._check_fork()
        # An owner per claim, not per thread: an answer recorded after the lease ran out
        # (the listener was busy) must not settle the copy this thread has sent since.
        owner = f"{self._owner}:{next(self._claims)}"
        started = time.monotonic()  # before the claim: its lease may only end later than this says
        rows = self.outbox.claim(owner, self.batch_size)
        if not rows:
            return 0
        # A row is only started while enough lease is left to finish it (see the module doc).
        last_start = started + self.outbox.lease_seconds - self._sender.request_seconds - LEASE_MARGIN
        if deadline is not None:
            last_start = min(last_start, deadline)
        delivered: list[OutboxRow] = []
        listened_for: set[int] = set()
        failures_in_a_row = 0
        settled = 0
        for index, row in enumerate(rows):
            now = time.monotonic()
            if index and now >= last_start:
                self.outbox.release([r.id for r in rows[index:]], owner=owner)
                break
            time_left = None if deadline is None else deadline - now
            sent = self._sender.send(row, time_left)
            settled += 1
            if isinstance(sent, Unanswered):
                outcome = self._listen_for_answer(row, owner, sent, started, deadline)
            else:
                outcome = sent
            if outcome.verdict is Verdict.DELIVERED:
                delivered.append(row)
                failures_in_a_row = 0
                continue
            if outcome.verdict is Verdict.REFUSED:
                self._dead_letter(row, outcome, owner)
                failures_in_a_row = 0
                continue
            failures_in_a_row += 1
            if outcome.verdict is Verdict.AWAITED:  # the row waits for its answer; the backoff paces the rest
                listened_for.add(row.id)
                delay = self._backoff(row.attempts)
            else:
                delay = self._retry_later(row, outcome, owner)
            rest = rows[index + 1 :]
            rate_limited = outcome.status == 429
            if rest and (outcome.unreachable or rate_limited or failures_in_a_row >= FAILURES_BEFORE_PAUSE):
                # DataCue looks down or asks us to slow down: the rest of the batch waits too.
                self.outbox.release([r.id for r in rest], delay=delay, owner=owner)
                self._pause(delay)
                logger.info("datacue: pausing delivery for %.1fs (%s)", delay, outcome.error)
                break
            if outcome.unreachable or rate_limited:
                self._pause(delay)
        if delivered:
            self.outbox.ack([row.id for row in delivered])
            self._acked_since_prune += len(delivered)
            if signals.delivered.receivers:
                for row in delivered:
                    _signal(signals.delivered, self.sender, row)
        if wait_for_late_answers and listened_for:
            self._late.wait_for(listened_for)
        return settled

    def _listen_for_answer(
        self, row: OutboxRow, owner: str, unanswered: Unanswered, claimed_at: float, deadline: float | None
    ) -> Outcome:
        """Hand a request that outlasted the read timeout to :class:`LateAnswers`, or give it up.

        Listened for until :data:`LEASE_MARGIN` before the claim's lease ends (and never
        past ``deadline``); the verdict is then ``awaited``. When that leaves no time, or
        too many answers are awaited already, the connection is closed and the row retried.
        """
        now = time.monotonic()
        until = claimed_at + self.outbox.lease_seconds - LEASE_MARGIN
        if deadline is not None:
            until = min(until, deadline)
        sent_at = now - unanswered.waited
        if until - now > 0.01 and self._late.listen(Awaited(row, owner, unanswered, sent_at, until)):
            logger.info(
                "datacue: outbox row %d (%s) not answered in %gs; listening for its answer %.1fs more",
                row.id,
                row.kind,
                unanswered.waited,
                until - now,
            )
            return Outcome(Verdict.AWAITED, None, "")
        unanswered.connection.close()
        return unanswered_outcome(unanswered, unanswered.waited)

    def _settle_late(self, awaited: Awaited, outcome: Outcome) -> None:
        """Record the outcome of a row whose answer came (or did not) after the read timeout."""
        row, owner = awaited.row, awaited.owner
        if outcome.verdict is Verdict.DELIVERED:
            self.outbox.ack([row.id])
            self._acked_since_prune += 1
            logger.info(
                "datacue: outbox row %d (%s) delivered; DataCue answered after %.1fs",
                row.id,
                row.kind,
                time.monotonic() - awaited.sent_at,
            )
            if signals.delivered.receivers:
                _signal(signals.delivered, self.sender, row)
        elif outcome.verdict is Verdict.REFUSED:
            self._dead_letter(row, outcome, owner)
        else:
            delay = self._retry_later(row, outcome, owner)
            if outcome.status == 429:
                self._pause(delay)

    def _stop_listening(self, timeout: float) -> None:
        """Stop listening for late answers; the rows still waiting are retried (at once)."""
        for awaited in self._late.close(timeout):
            outcome = unanswered_outcome(awaited.unanswered, time.monotonic() - awaited.sent_at)
            try:
                self._retry_later(awaited.row, outcome, awaited.owner, delay=0.0)
            except Exception:  # the lease runs out and the row is sent again
                logger.exception("datacue: could not hand back outbox row %d", awaited.row.id)

    def _backoff(self, attempts: int) -> float:
        return backoff(self.backoff_base, self.backoff_max, attempts)

    def _retry_later(
        self, row: OutboxRow, outcome: Outcome, owner: str, delay: float | None = None
    ) -> float:
        if delay is None:
            delay = self._backoff(row.attempts)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
        self.outbox.retry_later(row.id, delay=delay, error=outcome.error, status=outcome.status, owner=owner)
        level = logging.WARNING if row.attempts >= ATTEMPTS_BEFORE_WARNING else logging.INFO
        logger.log(
            level,
            "datacue: outbox row %d (%s) failed, attempt %d; retrying in %.1fs: %s",
            row.id,
            row.kind,
            row.attempts,
            delay,
            outcome.error,
        )
        return delay

    def _dead_letter(self, row: OutboxRow, outcome: Outcome, owner: str) -> None:
        self.outbox.dead_letter(
            row.id,
            status=outcome.status,
            error=outcome.error,
            response_body=outcome.response_body,
            owner=owner,
        )
        logger.error(
            "datacue: DataCue refused outbox row %d (%s %s), kept as a dead letter: %s",
            row.id,
            row.method,
            row.path or "events",
            outcome.error,
        )
        if signals.dead_lettered.receivers:
            _signal(signals.dead_lettered, self.sender, row, status=outcome.status, error=outcome.error)


def backoff(base: float, longest: float, attempts: int) -> float:
    """Seconds a row that failed ``attempts`` times waits: ``base * 2**(attempts - 1)``, at most
    ``longest``, with "equal jitter": never less than half of it, so that a failing row is not
    hammered, and spread over the other half, so that processes retrying together drift apart."""
    ceiling = min(longest, base * 2.0 ** max(0, min(attempts - 1, 62)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _signal(signal: Any, sender: object, row: OutboxRow, **extra: Any) -> None:
    """Send ``signal`` about ``row`` from ``sender`` (a Flask app: its context is pushed for receivers)."""
    details = {"row_id": row.id, "kind": row.kind, "method": row.method, "path": row.path, **extra}
    app_context = getattr(sender, "app_context", None)
    try:
        if callable(app_context):
            with app_context():  # receivers may use current_app, as in a request
                signal.send(sender, **details)
        else:
            signal.send(sender, **details)
    except Exception:  # a receiver's bug must not stop delivery
        logger.exception("datacue: a receiver of %s failed", signal.name)


# -- the flush at interpreter exit --------------------------------------------------------

_workers: weakref.WeakSet[DeliveryWorker] = weakref.WeakSet()


def _flush_at_exit() -> None:
    deadline = time.monotonic() + EXIT_FLUSH_SECONDS
    for worker in list(_workers):
        if not worker.running:
            continue
        try:
            left = deadline - time.monotonic()
            if left > 0 and not worker.flush(left):
                logger.warning(
                    "datacue: exiting with %d rows still in the outbox; they are sent at the next start",
                    worker.outbox.unfinished(),
                )
            worker.stop(timeout=max(0.1, deadline - time.monotonic()))
            worker.outbox.retire_journal()
        except Exception:
            logger.exception("datacue: the flush at exit failed; undelivered rows stay in the outbox")


atexit.register(_flush_at_exit)
