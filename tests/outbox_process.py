"""Another process sharing an outbox, for the crash and multi-process tests (run as a script, not by pytest).

``python tests/outbox_process.py COMMAND SETTINGS_JSON``, where SETTINGS_JSON holds
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
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from cue_front.outbox import Outbox
from cue_front.transport import Transport, encode_json

if TYPE_CHECKING:
    from cue_front.delivery import DeliveryWorker


def event_body(seq: int, visitor: str) -> bytes:
    """An event DataCue accepts, numbered in the visitor's profile so that a test can find it."""
    return encode_json(
        {
            "user": {"anonymous_id": visitor, "profile": {"seq": seq}},
            "event": {"type": "click", "subtype": "banner", "banner_id": f"b{seq}"},
        }
    )


def make_worker(settings: dict[str, Any], outbox: Outbox) -> DeliveryWorker:
    from cue_front.delivery import DeliveryWorker

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
        outbox.put("event", "POST", "", event_body(seq, "leaving"), "leaving")
    worker.ensure_running()
    worker.notify()
    sys.exit(0)


def main() -> None:
    command, settings = sys.argv[1], json.loads(sys.argv[2])
    outbox = Outbox(settings["outbox"], lease_seconds=settings.get("lease_seconds", 30.0))
    if command == "put":
        put_forever(outbox)
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
