"""A delivery worker in a process of its own, for the multi-host soak, until ``flask datacue worker`` lands.

``python -m tests.soak.delivery_process`` with the soak shop's settings in ``SOAK_SHOP`` (see
``shop.create_app``): the same app, delivering its outbox in the foreground (``DeliveryWorker.serve``)
until SIGTERM, which stops it the way the worker command will (rows not yet sent handed back). The
harness picks this or the command in one place (``harness.WORKER_COMMAND``).
"""

from __future__ import annotations

import signal
from typing import Any

from cue_front.state import get_state
from tests.soak.shop import create_app


def main() -> None:
    app = create_app()
    state = get_state(app)
    # The worker the app's own delivery thread would run, served here in the foreground.
    worker = state._make_delivery()

    def stop(*_: Any) -> None:
        worker.stop(timeout=0)  # from the signal handler: serve() returns once it has handed back

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        worker.serve()
    finally:
        state.close()


if __name__ == "__main__":
    main()
