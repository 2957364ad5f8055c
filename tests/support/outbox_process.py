"""Another process sharing an outbox, for the crash and multi-process tests (run as a script, not by pytest).

``python tests/support/outbox_process.py COMMAND SETTINGS_JSON``, where SETTINGS_JSON holds
``outbox`` (the file), ``lease_seconds`` and, for the commands that deliver,
``api_key``, ``api_secret``, ``api_url``, ``events_url`` and ``timeout``:

* ``put``: puts events ``{"seq": n}`` forever, printing each row id once ``put`` has
  returned (the test kills the process with SIGKILL at some point).
* ``deliver``: delivers with a worker's thread until killed.
* ``flush``: waits for a line on stdin (so that several processes start together),
  delivers batch by batch until nothing is left, prints the rows it settled.
* ``fork``: starts a worker's thread, forks; the child puts ``count`` events,
  delivers them with its own thread and exits 0 once the outbox is empty.
* ``exit``: puts ``count`` events, wakes a worker whose thread lingers for a minute
  before sending, and exits at once: only the flush at exit can deliver them.

The journal's commands (``put_event``, no worker and no delivery settings needed):

* ``journal_forever``: puts events ``{"seq": n}`` with ``put_event`` forever, printing
  each ``n`` once ``put_event`` has returned (the test kills it with SIGKILL).
* ``journal_on_cue``: for each number read on stdin, puts that event for the visitor
  ``visitor`` and prints the number once ``put_event`` has returned; exits at EOF.
* ``journal_many``: prints ``ready``, waits for a line on stdin, then puts ``count``
  events (every ``large_every``-th one padded to ``large_bytes``, so that the writer
  moves on to new segments), pausing a little now and then; prints ``done``.
* ``ingest``: prints ``ready``, calls ``ingest()`` in a loop until a line arrives on
  stdin, then prints how many events it moved.
* ``journal_fork``: puts ``count`` events, forks; the child puts ``count`` of its own
  while the parent puts ``count`` more; prints the child's exit code.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cue_front.encoding import encode_json
from cue_front.outbox import Outbox
from cue_front.transport import Transport

if TYPE_CHECKING:
    from cue_front.outbox import DeliveryWorker

#: This script's path, for the tests that run it in a process of its own.
HELPER = Path(__file__)


def event_body(seq: int, visitor: str) -> bytes:
    """An event DataCue accepts, numbered in the visitor's profile so that a test can find it."""
    return encode_json(
        {
            "user": {"anonymous_id": visitor, "profile": {"seq": seq}},
            "event": {"type": "click", "subtype": "banner", "banner_id": f"b{seq}"},
        }
    )


def make_worker(settings: dict[str, Any], outbox: Outbox) -> DeliveryWorker:
    from cue_front.outbox import DeliveryWorker

    transport = Transport(
        settings["api_key"],
        settings["api_secret"],
        api_url=settings["api_url"],
        events_url=settings["events_url"],
        timeout=tuple(settings.get("timeout", (2.0, 5.0))),
    )
    return DeliveryWorker(outbox, transport, backoff_base=0.01, backoff_max=0.1, idle_interval=0.05)


def put_forever(outbox: Outbox) -> None:
    seq = 0
    while True:
        row_id = outbox.put("event", "POST", "", event_body(seq, f"v{seq % 10}"), f"v{seq % 10}")
        print(row_id, flush=True)
        seq += 1


def deliver_until_killed(worker: DeliveryWorker) -> None:
    worker.ensure_running()
    print("delivering", flush=True)
    while True:
        time.sleep(1)


def flush_on_go(worker: DeliveryWorker, outbox: Outbox) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    settled = 0
    while True:
        handled = worker.run_once()
        settled += handled
        if not handled and outbox.unfinished() == 0:
            break
        if not handled:
            time.sleep(0.01)  # the last rows are in flight in the other process
    print(settled, flush=True)


def fork_and_deliver(worker: DeliveryWorker, outbox: Outbox, count: int) -> None:
    worker.ensure_running()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            for seq in range(count):
                outbox.put("event", "POST", "", event_body(seq, "forked"), "forked")
            worker.ensure_running()  # the parent's thread does not exist here: a new one starts
            worker.notify()
            deadline = time.monotonic() + 30
            while outbox.unfinished() and time.monotonic() < deadline:
                time.sleep(0.02)
            code = 0 if outbox.unfinished() == 0 and worker.running else 2
            worker.stop()
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    worker.stop()
    print(os.waitstatus_to_exitcode(status), flush=True)


def put_and_exit(worker: DeliveryWorker, outbox: Outbox, count: int) -> None:
    worker.linger = 60.0
    for seq in range(count):
        outbox.put_event(event_body(seq, "leaving"), "leaving")
    worker.ensure_running()
    worker.notify()
    sys.exit(0)


def journaled_body(seq: int, visitor: str, padding: int = 0) -> bytes:
    """An event numbered for its visitor, padded with ``padding`` characters (big events fill segments)."""
    if not padding:
        return event_body(seq, visitor)
    return encode_json(
        {
            "user": {"anonymous_id": visitor, "profile": {"seq": seq, "padding": "x" * padding}},
            "event": {"type": "pageview"},
        }
    )


def journal_forever(outbox: Outbox) -> None:
    seq = 0
    while True:
        outbox.put_event(event_body(seq, f"v{seq % 10}"), f"v{seq % 10}")
        print(seq, flush=True)
        seq += 1


def journal_on_cue(outbox: Outbox, visitor: str) -> None:
    for line in sys.stdin:
        seq = int(line)
        outbox.put_event(event_body(seq, visitor), visitor)
        print(seq, flush=True)


def journal_many(outbox: Outbox, count: int, large_every: int, large_bytes: int) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    for seq in range(count):
        padding = large_bytes if seq % large_every == large_every - 1 else 0
        outbox.put_event(journaled_body(seq, f"v{seq % 7}", padding), f"v{seq % 7}")
        if seq % 10 == 9:
            time.sleep(0.001)  # so that the ingests in other processes run while this one writes
    print("done", flush=True)


def ingest_until_told(outbox: Outbox) -> None:
    told = threading.Event()

    def wait_for_a_line() -> None:
        sys.stdin.readline()
        told.set()

    threading.Thread(target=wait_for_a_line, daemon=True).start()
    print("ready", flush=True)
    moved = 0
    while not told.is_set():
        moved += outbox.ingest()
    print(moved, flush=True)


def fork_and_journal(outbox: Outbox, count: int) -> None:
    for seq in range(count):
        outbox.put_event(event_body(seq, "parent"), "parent")
    child = os.fork()
    if child == 0:
        code = 1
        try:
            for seq in range(count):
                outbox.put_event(event_body(seq, "child"), "child")
            code = 0
        finally:
            os._exit(code)
    for seq in range(count, 2 * count):
        outbox.put_event(event_body(seq, "parent"), "parent")
    _, status = os.waitpid(child, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)


def run_journal_command(command: str, settings: dict[str, Any], outbox: Outbox) -> bool:
    """Run one of the journal's commands; False if ``command`` is not one of them."""
    if command == "journal_forever":
        journal_forever(outbox)
    elif command == "journal_on_cue":
        journal_on_cue(outbox, settings["visitor"])
    elif command == "journal_many":
        journal_many(outbox, settings["count"], settings["large_every"], settings["large_bytes"])
    elif command == "ingest":
        ingest_until_told(outbox)
    elif command == "journal_fork":
        fork_and_journal(outbox, settings["count"])
    else:
        return False
    return True


def main() -> None:
    command, settings = sys.argv[1], json.loads(sys.argv[2])
    outbox = Outbox(settings["outbox"], lease_seconds=settings.get("lease_seconds", 30.0))
    if command == "put":
        put_forever(outbox)
    if run_journal_command(command, settings, outbox):
        outbox.close()
        return
    worker = make_worker(settings, outbox)
    if command == "deliver":
        deliver_until_killed(worker)
    elif command == "flush":
        flush_on_go(worker, outbox)
    elif command == "fork":
        fork_and_deliver(worker, outbox, settings["count"])
    elif command == "exit":
        put_and_exit(worker, outbox, settings["count"])
    else:
        raise SystemExit(f"unknown command {command!r}")
    outbox.close()


if __name__ == "__main__":
    main()
