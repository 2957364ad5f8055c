"""A shop run in processes of its own, for the tests of delivery outside the web process.

Configured from JSON in the ``WORKER_SHOP`` environment variable: ``instance`` (the instance
folder, where the outbox and its journal are) and ``config`` (``DATACUE_*`` settings: the
emulator's, ``DATACUE_DELIVERY_THREAD``...). Three ways to run it:

* ``flask --app tests.support.worker_shop datacue worker``: cue-front's delivery worker;
* ``flask --app tests.support.worker_shop queue --events N --changes M``: tracks N events
  (through the shop's own route, ``N`` visitors) and queues M store changes, then prints the
  names of the threads alive in the process and exits;
* ``python -m tests.support.worker_shop``: serves the shop with werkzeug on a free loopback
  port (printing ``serving http://...``), a web process with no SIGTERM handling of its own,
  as ``flask run`` or waitress would be.

Markers: event ``n`` is a banner click with ``banner_id`` ``ev-<n>``, store change ``n`` a
category ``ch-<n>``.
"""

from __future__ import annotations

import json
import os
import sys
import threading

import click
from flask import Flask, request
from werkzeug.serving import make_server

from cue_front import DataCue, track


def create_app() -> Flask:
    settings = json.loads(os.environ["WORKER_SHOP"])
    app = Flask("worker_shop", instance_path=settings["instance"])
    app.config.update(SECRET_KEY="worker-shop-secret-key", DATACUE_DELIVERY="outbox", **settings["config"])
    datacue = DataCue(app)

    @datacue.user_id_loader
    def visitor() -> str | None:
        return request.headers.get("X-Visitor")

    @app.post("/track/<int:n>")
    def track_view(n: int) -> str:
        taken = track({"type": "click", "subtype": "banner", "banner_id": f"ev-{n}"})
        return "queued" if taken else "refused"

    @app.post("/change/<int:n>")
    def change_view(n: int) -> str:
        datacue.queued.categories.create({"category_id": f"ch-{n}", "name": f"Category {n}"})
        return "queued"

    @app.cli.command("queue")
    @click.option("--events", default=0)
    @click.option("--changes", default=0)
    def queue_command(events: int, changes: int) -> None:
        """Queue events and store changes through the shop's routes, then name the threads alive."""
        client = app.test_client()
        for n in range(events):
            answer = client.post(f"/track/{n}", headers={"X-Visitor": f"visitor-{n}"})
            assert answer.get_data(as_text=True) == "queued", answer.get_data(as_text=True)
        for n in range(changes):
            assert client.post(f"/change/{n}").status_code == 200
        click.echo(f"queued {events} events, {changes} changes")
        click.echo("threads: " + ",".join(sorted(thread.name for thread in threading.enumerate())))

    return app


def serve() -> None:
    """Serve the shop with werkzeug's threaded server until the process is stopped."""
    app = create_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"serving http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(serve())
