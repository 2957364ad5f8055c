"""``python -m cue_front.emulator``: serve the emulator and print what a shop must set to use it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .app import DEFAULT_API_KEY, DEFAULT_API_SECRET, create_emulator
from .server import serve


def parse_arguments(arguments: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cue_front.emulator",
        description="A local, stateful DataCue for tests, CI and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--api-secret", default=DEFAULT_API_SECRET)
    parser.add_argument("--db", help="SQLite file that keeps the data across restarts")
    parser.add_argument("--banners", help="JSON file of banners: {\"banners\": [...]}")
    parser.add_argument("--faults", help="a fault plan, as JSON text or a JSON file")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (repeatable); by default only the address it"
        " serves on, localhost, 127.0.0.1 and [::1] are answered, to keep other sites out",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log")
    return parser.parse_args(arguments)


def _fault_plan(text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    path = Path(text)
    loaded = json.loads(path.read_text(encoding="utf-8") if path.is_file() else text)
    if not isinstance(loaded, dict):
        raise SystemExit("--faults: expected a JSON object")
    return loaded


def main(arguments: Sequence[str] | None = None) -> int:
    options = parse_arguments(arguments)
    try:
        app = create_emulator(
            api_key=options.api_key,
            api_secret=options.api_secret,
            db_path=options.db,
            faults=_fault_plan(options.faults),
            banners=options.banners,
            allow_hosts=options.allow_host,
        )
    except (ValueError, OSError) as error:  # ValidationError is a ValueError
        raise SystemExit(f"cannot start the emulator: {error}") from None
    server = serve(app, options.host, options.port, quiet=options.quiet)
    root = f"http://{server.host}:{server.port}"
    print(f"DataCue emulator on {root} (events debugger: {root}/)")
    print("Set these in your shop's config:")
    print(f"DATACUE_API_KEY={options.api_key}")
    print(f"DATACUE_API_SECRET={options.api_secret}")
    print(f"DATACUE_API_URL={root}/v1")
    print(f"DATACUE_EVENTS_URL={root}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
