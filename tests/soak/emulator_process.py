"""The soak's DataCue: the emulator in a process of its own, with a ledger of what it answered.

``python -m tests.soak.emulator_process --ledger FILE [--faults JSON] [--port 0]``
prints ``ready http://127.0.0.1:PORT`` once it serves, and stops on SIGTERM or
when its stdin closes (so it never outlives the test that started it). The
emulator's journal and data stay in memory; the ledger (see ``ledger.py``) is the
file the test reads.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cue_front.emulator import create_emulator
from cue_front.emulator.server import serve
from tests.soak.ledger import LedgerMiddleware

API_KEY = "soak-key"
API_SECRET = "soak-secret"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--faults", default="{}")
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args()
    app = create_emulator(api_key=API_KEY, api_secret=API_SECRET, faults=json.loads(options.faults))
    ledger = LedgerMiddleware(app.wsgi_app, Path(options.ledger))
    app.wsgi_app = ledger  # type: ignore[method-assign]
    server = serve(app, "127.0.0.1", options.port, quiet=True)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    # The test holds our stdin: when it goes away (even killed), so do we.
    threading.Thread(target=lambda: (sys.stdin.read(), stop()), daemon=True).start()
    print(f"ready http://127.0.0.1:{server.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        ledger.close()


if __name__ == "__main__":
    main()
