"""The delivery worker: drains the outbox into DataCue on a thread of its own (or the caller's).

It claims due rows, keeps up to ``max_in_flight`` requests in flight at once (one per
ordering key: :mod:`.flight`), and settles each row by its verdict: acked, retried after a
backoff, or kept as a dead letter. It depends on the outbox only through
:class:`~.contract.OutboxBackend`. How it paces itself, pauses when DataCue is down, and
flushes at exit (SIGTERM included) is in docs/delivery.md ("The delivery worker").
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
import weakref
from typing import Final

from .. import forks
from ..settings import DEFAULT_SHUTDOWN_GRACE
from ..transport import Transport
from .contract import OutboxBackend
from .flight import Flight
from .sender import RowSender
from .settle import Settlement, backoff

__all__ = ["DEFAULT_IN_FLIGHT", "DeliveryWorker", "backoff", "exit_cleanly_on_sigterm"]

logger = logging.getLogger(__name__)

#: Requests one worker keeps in flight at most (``DATACUE_DELIVERY_IN_FLIGHT``).
DEFAULT_IN_FLIGHT: Final = 64
#: Seconds between WAL checkpoints by the worker (puts never checkpoint).
CHECKPOINT_INTERVAL: Final = 1.0
#: While delivery is paused, journaled events are still moved into the outbox this often (seconds).
INGEST_WHILE_PAUSED: Final = 0.5
#: The least time between two claims while requests are in flight (a claim reads the whole queue).
CLAIM_INTERVAL: Final = 0.01


class DeliveryWorker:
    """Drains an outbox into DataCue through ``transport``, on a thread of its own.

    ``sender`` is the blinker sender of ``signals.delivered`` and ``signals.dead_lettered``
    (the Flask app; its app context is pushed while they are sent). ``batch_size`` rows are
    claimed at a time, and up to ``max_in_flight`` requests are in flight at once; failed
    rows wait :func:`backoff` seconds. With nothing due, the thread sleeps up to
    ``idle_interval`` seconds, or until :meth:`notify`, then lingers ``linger`` seconds to
    send what arrives meanwhile in the same claim. ``shutdown_grace`` bounds the flush at
    interpreter exit (``DATACUE_SHUTDOWN_GRACE``).

    With ``deliver=False`` its thread only forwards: it moves this process's journaled events
    into the outbox (``ingest``) as they come, and sends nothing. That is what a web process of a
    Redis outbox runs when another process delivers (``DATACUE_DELIVERY_THREAD`` off): no
    other host can read its journal (docs/redis.md, "The forwarder").
    """

    def __init__(
        self,
        outbox: OutboxBackend,
        transport: Transport,
        *,
        sender: object = None,
        batch_size: int = 100,
        max_in_flight: int = DEFAULT_IN_FLIGHT,
        backoff_base: float = 0.5,
        backoff_max: float = 300.0,
        idle_interval: float = 1.0,
        linger: float = 0.01,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        deliver: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight!r}")
        self.outbox = outbox
        self.transport = transport
        self.sender = sender
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.idle_interval = idle_interval
        self.linger = linger
        self.shutdown_grace = shutdown_grace
        self.deliver = deliver
        #: Rows claimed at a time while a backlog drains (the outbox hands out at most 500).
        self._backlog_claim = max(batch_size, min(500, 4 * max_in_flight))
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
        """Fresh thread state: at creation, and in a forked child (connections belong to a flight)."""
        self._pid = os.getpid()
        self._generation = forks.generation
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        #: When a graceful stop gives up on the requests in flight (None: no stop asked for).
        self._finish_by: float | None = None
        #: The thread in serve(), if one is.
        self._serving: threading.Thread | None = None
        self.row_sender = RowSender(self.transport)
        self.settlement = Settlement(
            self.outbox, sender=self.sender, backoff_base=self.backoff_base, backoff_max=self.backoff_max
        )
        self._last_prune = time.monotonic()
        self._last_checkpoint = time.monotonic()

    def _flight(self, deadline: float | None = None) -> Flight:
        """A flight for one delivery loop (``deadline``: a bounded flush's)."""
        return Flight(
            self.outbox, self.row_sender, self.settlement, self.pause, self.max_in_flight, deadline
        )

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
            if self.deliver:
                thread = threading.Thread(target=self._run, name="cue-front-delivery", daemon=True)
            else:
                thread = threading.Thread(target=self._forward, name="cue-front-forwarder", daemon=True)
            try:
                thread.start()
            except RuntimeError as error:  # interpreter shutdown: the rows wait in the outbox
                logger.warning("datacue: cannot start the delivery thread (%s); rows stay queued", error)
                return
            self._thread = thread

    def serve(self) -> None:
        """Deliver in the calling thread until :meth:`stop` (from a signal handler or another thread).

        For a process that only delivers (``flask datacue worker``), so that no delivery work
        competes with the shop's requests for the GIL.
        """
        self._check_fork()
        if self._stopped:  # stop() is final, even when it comes first
            return
        self._serving = threading.current_thread()
        try:
            self._run()
        finally:
            self._serving = None

    def notify(self) -> None:
        """Wake the thread: a row was just put. Cheap enough for the request path."""
        wake = self._wake
        if not wake.is_set():
            wake.set()

    def stop(self, timeout: float = 5.0, *, grace: float = 0.0) -> None:
        """Stop delivering, waiting up to ``timeout`` (plus ``grace``) for the thread to end.

        No new row is claimed, and rows claimed but not started are released at once (anyone
        may claim them). Requests in flight get ``grace`` seconds to be answered and settled;
        those still unanswered then are given up, their rows due again at once. Everything
        left waits in the outbox for the next start. Safe to call from a signal handler that
        interrupts :meth:`serve`; a second call with a shorter grace shortens it.
        """
        self._stopped = True
        if self._generation != forks.generation:
            return
        finish_by = time.monotonic() + max(0.0, grace)
        if self._finish_by is None or finish_by < self._finish_by:
            self._finish_by = finish_by
        if self._serving is threading.current_thread():
            # A signal handler interrupting serve(): the loop sees _finish_by within a second.
            # Setting an Event here could wait forever on a lock the interrupted code holds.
            return
        if grace <= 0:
            self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout + max(0.0, grace))

    def _finish(self, flight: Flight, now: float) -> None:
        """One step of a graceful stop: rows not started go back, answers are awaited until the
        grace ends, and then the loop ends (its flight hands back whatever is still unanswered)."""
        flight.hand_back_queue()
        finish_by = self._finish_by
        try:
            if flight.sending and finish_by is not None and now < finish_by:
                flight.wait(min(finish_by - now, self.idle_interval))
                return
        except Exception:  # the outbox file: what is left is handed back as the loop ends
            logger.exception("datacue: stopping the delivery worker failed; its rows are handed back")
        self._stopping.set()

    def _run(self) -> None:
        flight = self._flight()
        failures = 0
        wanted = True  # a claim is wanted: woken, or a backlog (or the flight's keys_freed)
        look_again = 0.0  # when to claim anyway (a retry falls due)
        claimed_at = -CLAIM_INTERVAL
        last_ingest = tidied_at = 0.0
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if self._finish_by is not None:  # stop(grace=...): nothing new, answers awaited
                    self._finish(flight, now)
                    continue
                # The outbox keeps the pause (one clock, whichever worker set it; cheap to read).
                paused = (left := self.outbox.paused_for()) > 0
                try:
                    if paused and flight.queue:  # another worker paused: rows not started go back
                        flight.hand_back_queue(left)
                    if self._wake.is_set():
                        self._wake.clear()
                        wanted = True
                    if paused:
                        # Journaled events still move into the outbox, where the cap and
                        # `flask datacue status` see them.
                        if now - last_ingest >= INGEST_WHILE_PAUSED:
                            last_ingest = now
                            self.outbox.ingest()
                    elif (
                        flight.room > 0
                        and (wanted or flight.keys_freed or now >= look_again)
                        and (now - claimed_at >= CLAIM_INTERVAL or not flight.busy)
                    ):
                        claimed_at = now
                        got = flight.refill(self.batch_size, self._backlog_claim)
                        wanted = flight.backlog  # a backlog: again as soon as there is room
                        if not got and not flight.busy:
                            look_again = now + self._idle_wait()
                        elif not wanted:
                            look_again = now + self.idle_interval
                    if not paused:
                        flight.start(now)
                    failures = 0
                except Exception:  # the outbox file, the disk: keep going, loudly
                    failures += 1
                    logger.exception("datacue: the delivery worker failed; trying again")
                    flight.pause(self.settlement.backoff(failures), "the outbox failed")
                try:
                    self._upkeep(idle=not flight.busy)
                    if now - tidied_at >= 1.0:
                        tidied_at = now
                        flight.close_idle_connections(now)
                except Exception:
                    logger.exception("datacue: outbox upkeep failed")
                if flight.busy:
                    # Room for more: look at the outbox again within a linger (a notify may come).
                    longest = self.linger if flight.room > 0 and not paused else self.idle_interval
                    try:
                        flight.wait(max(longest, 0.001))
                    except Exception:
                        logger.exception("datacue: the delivery worker failed; trying again")
                        flight.pause(self.settlement.backoff(1), "the outbox failed")
                    continue
                try:
                    flight.flush_acks(time.monotonic(), force=True)
                except Exception:
                    logger.exception("datacue: recording delivered rows failed; they are sent again")
                now = time.monotonic()
                wait = min(self.outbox.paused_for(), INGEST_WHILE_PAUSED) if paused else look_again - now
                if self._wake.wait(max(0.0, wait)) and self.linger and not paused:
                    # Rows keep coming: gather what arrives meanwhile into one claim.
                    self._stopping.wait(self.linger)
        finally:
            flight.close()

    def _forward(self) -> None:
        """The loop of a worker that only forwards: journaled events into the outbox, soon after
        each :meth:`notify` (gathering what comes within ``linger``), and every ``idle_interval``."""
        while not self._stopping.is_set() and self._finish_by is None:
            try:
                self.outbox.ingest()  # a backend that cannot reach its store says so, once
            except Exception:
                logger.exception("datacue: forwarding journaled events failed; trying again")
            if self._wake.wait(self.idle_interval):
                self._wake.clear()
                self._stopping.wait(self.linger)

    def _idle_wait(self) -> float:
        try:
            pause = self.outbox.paused_for()
            if pause > 0:
                return pause
            due_in = self.outbox.next_due_in()
        except Exception:
            return self.idle_interval
        if due_in is None:
            return self.idle_interval
        return min(self.idle_interval, max(due_in, 0.005))

    def pause(self, seconds: float) -> None:
        """Start no new request for ``seconds`` (DataCue is down, or asked us to slow down): the
        outbox keeps the pause, for every worker that shares it (``OutboxBackend.pause_all``)."""
        try:
            self.outbox.pause_all(seconds)
        except Exception:  # a backend keeps its own process's pause before it shares it
            logger.warning("datacue: the pause could not be shared", exc_info=True)

    def _upkeep(self, idle: bool) -> None:
        now = time.monotonic()
        prune_every = max(100, min(10_000, self.outbox.max_rows // 10))
        acked = self.settlement.acked_since_prune
        if acked >= prune_every or (idle and acked and now - self._last_prune >= 5.0):
            self.settlement.acked_since_prune = 0
            self._last_prune = now
            self.outbox.prune(pause=0.001)
        if now - self._last_checkpoint >= CHECKPOINT_INTERVAL:
            self._last_checkpoint = now
            self.outbox.checkpoint()

    # -- delivering here and now ------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch and send it, here and now; returns how many rows were settled.

        A row answered after the read timeout is waited for (until its lease nearly ends).
        """
        self._check_fork()
        flight = self._flight()
        try:
            flight.claim(self.batch_size)
            while flight.busy:
                flight.start(time.monotonic())
                if flight.busy:
                    flight.wait(self.idle_interval)
            flight.flush_acks(time.monotonic(), force=True)
            return flight.settled
        finally:
            flight.close()

    def flush(self, timeout: float) -> bool:
        """Deliver until the outbox is empty or ``timeout`` seconds pass; True when nothing is left.

        Waits for rows in flight elsewhere (this process's thread, another process) and
        for retries that fall due before the deadline; gives up at once when what is
        left waits out a backoff longer than the time left.
        """
        self._check_fork()
        deadline = time.monotonic() + max(0.0, timeout)
        flight = self._flight(deadline)
        wanted = True
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                if (wanted or flight.keys_freed) and flight.room > 0:
                    flight.refill(self.batch_size, self._backlog_claim)
                    wanted = flight.backlog
                flight.start(now)
                if flight.busy:
                    flight.wait(min(deadline - now, self.linger if flight.room > 0 else 1.0))
                    continue
                flight.flush_acks(now, force=True)
                stats = self.outbox.stats()
                if stats.pending + stats.in_flight == 0:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wanted = True
                if stats.in_flight:  # in flight elsewhere: this process's thread, another process
                    time.sleep(min(left, 0.02))
                    continue
                due_in = stats.next_due_in  # as of the counts: nobody had a row in flight then
                if due_in is None:
                    return True
                if due_in >= left:
                    return False
                time.sleep(max(due_in, 0.005))
        finally:
            flight.close()
        return self.outbox.unfinished() == 0


# -- the flush at interpreter exit --------------------------------------------------------

_workers: weakref.WeakSet[DeliveryWorker] = weakref.WeakSet()


def _flush_at_exit() -> None:
    """Deliver what this process's delivery threads hold, within their ``shutdown_grace``
    (the longest of them, in all), then hand the rest and the journal segment over."""
    running = [worker for worker in list(_workers) if worker.running]
    if not running:
        return
    deadline = time.monotonic() + max(worker.shutdown_grace for worker in running)
    for worker in running:
        try:
            left = deadline - time.monotonic()
            if worker.deliver and left > 0 and not worker.flush(left):
                logger.warning(
                    "datacue: exiting with %d rows still in the outbox; they are sent at the next start",
                    worker.outbox.unfinished(),
                )
            worker.stop(timeout=max(0.1, deadline - time.monotonic()))
            worker.outbox.retire_journal(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            logger.exception("datacue: the flush at exit failed; undelivered rows stay in the outbox")


atexit.register(_flush_at_exit)


def exit_cleanly_on_sigterm() -> bool:
    """Make SIGTERM end this process as an ordinary exit, so that the flush at exit runs.

    Python runs no ``atexit`` function when a signal kills the process, and SIGTERM is how
    platforms (Heroku, Kubernetes, systemd) stop one. Only where nothing handles SIGTERM yet
    (gunicorn, uWSGI and the like handle it, and exit cleanly themselves) and only from the
    main thread; returns whether the handler was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return True


def _exit_on_sigterm(signum: int, frame: object) -> None:
    if not any(worker.running for worker in list(_workers)):
        # Nothing to flush: die of the signal, as without this handler.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    # Unwinds the main thread (its locks and `finally` blocks), then atexit flushes; 143 is how
    # shells and container runtimes report an exit on SIGTERM.
    raise SystemExit(128 + signum)
