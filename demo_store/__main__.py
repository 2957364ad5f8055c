"""``python -m demo_store [--port 5000]``: the demo shop, with a DataCue emulator beside it.

On start it seeds the shop's database (first run only), starts the emulator in
this process (unless ``DATACUE_API_KEY`` and ``DATACUE_API_SECRET`` are set, in
which case it talks to the real DataCue), imports the shop's history into
DataCue with cue-front's importer (the guide's step 1) when DataCue lacks it,
registers the banners with the emulator, and serves the shop. Ctrl-C stops
both. Everything it keeps is in the app's instance folder, and while it runs a
note of where its emulator is, and its key and secret (``datacue-emulator.json``),
so that ``flask --app demo_store datacue ...`` and ``shop ...`` work beside it. Its log (cue-front's
refusals and delivery failures included) goes to the console; the links it
sends DataCue (a cart's ``cart_link``) lead to the address it serves on, or to
``DATACUE_SHOP_URL`` when the environment gives one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from cue_front.emulator import RunningEmulator, run_emulator
from cue_front.importer import ImportSummary
from cue_front.outbox.journal import journal_folder

from . import INSTANCE_VARIABLE, SHOP_NAME, configure_logging, create_app, integration, seed, settings

#: The instance files ``--reset`` removes: the shop, the emulator and cue-front's outbox.
DATABASES = ("demo-store.sqlite3", "datacue-emulator.sqlite3", "datacue-outbox.sqlite3")


def parse_arguments(arguments: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo_store", description=f"{SHOP_NAME}, the cue-front demo."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="the shop's port (default 5000)")
    parser.add_argument(
        "--emulator-port",
        type=int,
        help="the emulator's port (default: the shop's port + 1, or any free one)",
    )
    parser.add_argument("--instance", help="the instance folder (default: Flask's, beside the package)")
    parser.add_argument(
        "--reset", action="store_true", help="start again from a freshly seeded shop and DataCue"
    )
    return parser.parse_args(arguments)


def default_instance_path() -> str:
    """Flask's instance folder for this package (``instance/`` beside it in a checkout)."""
    return Flask("demo_store").instance_path


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: stop serving. Further signals are ignored: stopping takes a few seconds at
    most (delivering what is queued, then the emulator), and a second Ctrl-C would only cut it short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _start_emulator(
    stack: ExitStack, host: str, port: int | None, fallback: int, db_path: Path
) -> RunningEmulator:
    """The emulator on ``port``, else on ``fallback`` (the shop's port + 1) if free, else on any free port."""
    candidates = [port] if port is not None else [fallback, 0]
    for index, candidate in enumerate(candidates):
        try:
            return stack.enter_context(run_emulator(host, candidate, db_path=db_path))
        except OSError:
            if index == len(candidates) - 1:
                raise
    raise AssertionError("unreachable")


def _deliver_what_is_queued(app: Flask, timeout: float = 3.0) -> None:
    """Before the emulator stops: send what the outbox still holds (what is left waits for next time)."""
    state = app.extensions["datacue"]
    if state.delivery_mode == "outbox" and state.outbox.unfinished() and not state.delivery.flush(timeout):
        print(f"  {state.outbox.unfinished()} events and changes wait in the outbox for the next start")


def _shown(path: str | Path) -> str:
    """A path as the person at the terminal reads it: relative to where they are, when it is below."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _not_started(environ: Any, start_response: Any) -> list[bytes]:
    """The server's app until the shop is made: never called, as nothing is served before."""
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


def _serve_on(host: str, port: int) -> BaseWSGIServer:
    """The shop's server, bound before the shop is made: the shop's config needs its address (the
    port the system picks for ``--port 0``). :func:`main` gives it the shop before serving."""
    return make_server(host, port, _not_started, threaded=True)


def _address(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _flask_command(instance: str | None) -> str:
    """How to run ``flask`` for this demo from here: this environment's, on this instance folder."""
    flask = Path(sys.executable).with_name("flask")
    command = f"{_shown(flask) if flask.exists() else 'flask'} --app demo_store"
    if instance is not None:
        command = f"{INSTANCE_VARIABLE}={shlex.quote(_shown(instance))} {command}"
    return command


def _print_summary(summary: ImportSummary) -> None:
    print(f"    {summary.line()}", flush=True)


def main(arguments: Sequence[str] | None = None) -> int:
    options = parse_arguments(arguments)
    instance = Path(options.instance or default_instance_path())
    if options.reset:
        for name in DATABASES:
            for suffix in ("", "-wal", "-shm"):
                (instance / f"{name}{suffix}").unlink(missing_ok=True)
        # The outbox's journal of events not yet moved into it (see docs/delivery.md).
        shutil.rmtree(journal_folder(instance / DATABASES[2]), ignore_errors=True)
        (instance / settings.RECORD_NAME).unlink(missing_ok=True)
    real_datacue = bool(os.environ.get("DATACUE_API_KEY") and os.environ.get("DATACUE_API_SECRET"))
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    configure_logging()
    print(f"{SHOP_NAME}: the cue-front demo store", flush=True)
    try:
        server = _serve_on(options.host, options.port)
    except OSError as error:
        print(f"cannot serve the shop on {options.host}:{options.port}: {error}", file=sys.stderr)
        return 1
    shop_url = _address(options.host, server.server_port)
    with ExitStack() as stack:
        stack.callback(server.server_close)
        # Links sent to DataCue lead here, whatever Host header a request comes with.
        config: dict[str, Any] = {"DATACUE_SHOP_URL": os.environ.get("DATACUE_SHOP_URL") or shop_url}
        emulator = None
        try:
            if not real_datacue:
                instance.mkdir(parents=True, exist_ok=True)
                beside = options.port + 1 if options.port else 0
                emulator = _start_emulator(
                    stack, options.host, options.emulator_port, beside, instance / DATABASES[1]
                )
                config.update(emulator.config)
            app = create_app(config, instance_path=str(instance))
        except OSError as error:
            print(f"cannot start: {error}", file=sys.stderr)
            return 1
        if emulator is not None:
            # For `flask --app demo_store ...` beside this demo (see demo_store/settings.py).
            settings.record_emulator(
                instance, {**emulator.config, "DATACUE_SHOP_URL": config["DATACUE_SHOP_URL"]}
            )
            stack.callback(settings.forget_emulator, instance)
        seeded = app.extensions["demo_store.seeded"]
        if seeded is not None:
            print(f"  seeded {_shown(app.config['DEMO_DATABASE'])}: {seeded.line()}")
        if emulator is not None:
            print(f"  DataCue emulator on {emulator.url} (its data: {_shown(instance / DATABASES[1])})")
        else:
            print(f"  DataCue: {app.config['DATACUE_API_URL']} (DATACUE_API_KEY is set: no emulator)")
        if integration.needs_import(app):
            print("  importing the shop's history into DataCue (the guide's step 1):", flush=True)
            integration.import_history(app, on_summary=_print_summary)
        if emulator is not None:
            print(f"  registered {integration.register_banners(app, emulator)} banners with the emulator")
        server.app = app
        print()
        print(f"  Shop:             {shop_url}")
        if emulator is not None:
            print(f"  Events debugger:  {emulator.url}/")
        accounts = ", ".join(account.email for account in seed.DEMO_ACCOUNTS)
        print(f"  Demo accounts:    {accounts} (password: {seed.DEMO_PASSWORD})")
        print(f"  Command line:     {_flask_command(options.instance)} --help  (datacue, shop)")
        print("\nPress Ctrl-C to stop the shop and the emulator.", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        print("\nStopping the shop" + (" and the emulator." if emulator is not None else "."), flush=True)
        _deliver_what_is_queued(app)
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # stopped while starting: the emulator is stopped already
        sys.exit(130)
