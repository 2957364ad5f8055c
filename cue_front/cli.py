"""The ``flask datacue ...`` commands a shop runs from its own app: import, overview, status, outbox,
and the delivery worker.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from . import model_sync, reconcile
from .errors import DataCueError
from .importer import FORMATS, Checkpoint, FileSource, Importer, IterableSource, SourceError
from .outbox import DeliveryWorker
from .outbox.contract import OutboxUnavailableError
from .redis_store import redacted
from .schema import BATCH_LIMIT, RESOURCE_NAMES
from .state import DataCueState, get_state


class _Commands(AppGroup):
    """cue-front's commands, where a :class:`DataCueError` (DataCue's refusal, an outage of DataCue
    or of the outbox's Redis, a missing setting) is a one-line error and exit 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DataCueError as error:
            raise click.ClickException(str(error)) from None


datacue_cli = _Commands(
    "datacue", help="Talk to DataCue: import history, inspect what it holds, deliver the outbox."
)

logger = logging.getLogger(__name__)


def _state() -> DataCueState:
    """The app's cue-front state (``app.extensions["datacue"]``); without one, a
    :class:`ConfigurationError` that the group shows as a command-line error."""
    return get_state()


class _ProgressBar:
    """click's progress bar fed by the importer: position in bytes (or items), rate, ETA.

    click hides the bar itself when the output is not a terminal.
    """

    def __init__(self, label: str, length: int | None, unit_is_bytes: bool) -> None:
        self.unit_is_bytes = unit_is_bytes
        self.position = 0
        self.items = 0
        self.started = time.perf_counter()
        nothing: tuple[int, ...] = ()
        unsized: Any = (x for x in nothing)  # no length hint: click draws a pulsing bar
        self.bar = click.progressbar(
            iterable=None if length is not None else unsized,
            length=length,
            label=label,
            show_eta=True,
            show_percent=length is not None,
            show_pos=False,
            item_show_func=self._describe,
            file=sys.stderr,
        )

    def _describe(self, _: object) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return f"{self.items:,} items  {self.items / elapsed:,.0f}/s"

    def __enter__(self) -> _ProgressBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.bar.__exit__(*exc_info)

    def update(self, progress: Any) -> None:
        self.items = progress.items_done
        position = progress.bytes_read if self.unit_is_bytes else progress.items_done
        if position is not None and position > self.position:
            self.bar.update(position - self.position)
            self.position = position
        else:
            self.bar.render_progress()  # the item count moved (rejects, skips) but not the bar


@datacue_cli.command("import")
@click.argument("resource", type=click.Choice(RESOURCE_NAMES))
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format", "file_format", type=click.Choice(FORMATS), help="Input format (default: from FILE's name)."
)
@click.option("--batch-size", default=BATCH_LIMIT, show_default=True, type=click.IntRange(1, BATCH_LIMIT))
# At most the client's connection pool size (10), so every sender keeps its connection alive.
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 10))
@click.option("--skip-existing", is_flag=True, help="Skip ids DataCue's overview already lists.")
@click.option("--resume", is_flag=True, help="Continue after the last acknowledged batch of a stopped run.")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False),
    help="Where invalid items go, as JSON Lines (default: FILE.rejects.jsonl, or the instance folder).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    help="Progress file for --resume (default: FILE.checkpoint, or the instance folder).",
)
def import_command(
    resource: str,
    file: str | None,
    file_format: str | None,
    batch_size: int,
    concurrency: int,
    skip_existing: bool,
    resume: bool,
    rejects: str | None,
    checkpoint: str | None,
) -> None:
    """Import RESOURCE's history from FILE (JSON Lines, CSV or a JSON array) or the shop's source.

    Without FILE, records come from the generator registered with
    @datacue.source("RESOURCE"). Invalid items go to the rejects file; the exit
    status is 1 when any item was rejected or failed.
    """
    state = _state()
    source: FileSource | IterableSource
    if file is not None:
        if file != "-" and not os.path.isfile(file):
            raise click.BadParameter(f"{file!r} is not a file", param_hint="FILE")
        try:
            source = FileSource(file, resource, file_format)
        except SourceError as error:
            raise click.UsageError(str(error)) from None
        beside = (
            file if file != "-" else os.path.join(current_app.instance_path, f"datacue-import-{resource}")
        )
    else:
        source = IterableSource(_shop_records(state, resource), name=f"shop:{resource}")
        beside = os.path.join(current_app.instance_path, f"datacue-import-{resource}")
    checkpoint_file = Checkpoint(checkpoint or f"{beside}.checkpoint")
    if not resume and checkpoint_file.path.exists():
        click.echo(
            f"note: {checkpoint_file.path} is left from a stopped run; starting over "
            "(use --resume to continue it)",
            err=True,
        )
    rejects_path = rejects or f"{beside}.rejects.jsonl"
    if file is None or file == "-":
        Path(current_app.instance_path).mkdir(parents=True, exist_ok=True)

    client = state.client
    length = source.total_bytes if source.total_bytes is not None else source.total_items
    progress = _ProgressBar(f"{resource}", length, unit_is_bytes=source.total_bytes is not None)
    importer = Importer(
        client,
        resource,
        batch_size=batch_size,
        concurrency=concurrency,
        skip_existing=skip_existing,
        rejects=rejects_path,
        checkpoint=checkpoint_file,
        resume=resume,
        on_progress=progress.update,
    )
    with progress:
        summary = importer.run(source)
    click.echo(summary.line())
    if not summary.ok:
        click.get_current_context().exit(1)


@datacue_cli.command("overview")
def overview_command() -> None:
    """Print how many products, variants, categories, users and orders DataCue holds."""
    client = _state().client
    summary = client.overview.summary()
    categories = client.overview.categories().count

    def shown(count: int | None) -> str:
        return "-" if count is None else f"{count:,}"

    rows = [
        ("products", shown(summary.products)),
        ("variants", shown(summary.variants)),
        ("categories", shown(summary.categories if summary.categories is not None else categories)),
        ("users", shown(summary.users)),
        ("orders", shown(summary.orders)),
    ]
    width = max(len(count) for _, count in rows)
    for name, count in rows:
        click.echo(f"{name:<11}{count:>{width}}")


def _shop_records(state: DataCueState, resource: str) -> Iterator[Mapping[str, Any]]:
    """The shop's records of ``resource``: its ``@datacue.source``, else its declared models' rows."""
    registered = state.extension.sources.get(resource)
    if registered is not None:
        return iter(registered())
    declarations = state.extension.model_sync.for_resource(resource)
    if not declarations:
        raise click.UsageError(
            f"give a FILE, or tell cue-front where the shop's {resource} are:"
            f' @datacue.syncs(Model, "{resource}") or @datacue.source("{resource}")'
        )
    session = model_sync.flask_sqlalchemy_session()
    rows = state.extension.model_sync.rows
    return itertools.chain.from_iterable(rows(session, declaration) for declaration in declarations)


@datacue_cli.command("reconcile")
@click.argument("resources", nargs=-1, type=click.Choice(RESOURCE_NAMES))
@click.option("--dry-run", is_flag=True, help="Show the drift; change nothing.")
@click.option("--resend", is_flag=True, help="Also send every record again (drift in content).")
@click.option("--yes", "-y", is_flag=True, help="Repair without asking first.")
def reconcile_command(resources: tuple[str, ...], dry_run: bool, resend: bool, yes: bool) -> None:
    """Compare the shop's ids with DataCue's and repair the drift: create what DataCue lacks,
    delete what the shop no longer has.

    RESOURCES default to those the shop declares (@datacue.syncs or @datacue.source). DataCue's
    overview lists ids only (products by product id), so content drift needs --resend.
    """
    state = _state()
    extension = state.extension
    declared = {declaration.resource.name for declaration in extension.model_sync.declarations}
    declared.update(extension.sources)
    wanted = resources or tuple(name for name in RESOURCE_NAMES if name in declared)
    if not wanted:
        raise click.UsageError('declare a model (@datacue.syncs) or a source (@datacue.source) first')
    client = state.client
    drifts = [reconcile.find_drift(client, name, _shop_records(state, name)) for name in wanted]
    click.echo(f"{'resource':<11}{'shop':>8}{'DataCue':>9}{'missing at DataCue':>20}{'only at DataCue':>17}")
    for drift in drifts:
        click.echo(
            f"{drift.resource:<11}{len(drift.shop_ids):>8,}{len(drift.datacue_ids):>9,}"
            f"{len(drift.missing_at_datacue):>20,}{len(drift.only_at_datacue):>17,}"
        )
    to_create = sum(len(drift.missing_at_datacue) for drift in drifts)
    to_delete = sum(len(drift.only_at_datacue) for drift in drifts)
    if dry_run:
        click.echo("dry run: nothing was changed")
        return
    if not (to_create or to_delete or resend):
        click.echo("DataCue holds what the shop holds")
        return
    question = f"Create {to_create:,} and delete {to_delete:,} object(s) at DataCue"
    question += ", and send every record again?" if resend else "?"
    if not yes and not click.confirm(question):
        raise click.Abort()
    failed = 0
    with click.progressbar(length=to_create + to_delete, label="repairing", file=sys.stderr) as bar:
        for drift in drifts:
            created, deleted = reconcile.repair(client, drift, bar.update)
            failed += created.failed + deleted.failed
            summary = f"{drift.resource}: {created.accepted:,} sent, {deleted.accepted:,} deleted"
            click.echo(summary, err=True)
    if resend:
        for name in wanted:
            result = reconcile.resend(client, name, _shop_records(state, name))
            failed += result.failed
            click.echo(f"{name}: {result.accepted:,} sent again", err=True)
    if failed:
        click.echo(f"{failed:,} object(s) failed; run reconcile again to retry them", err=True)
        click.get_current_context().exit(1)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


@datacue_cli.command("status")
def status_command() -> None:
    """Show the outbox: pending, in flight, dead letters, oldest pending age, last error."""
    stats = _state().outbox.stats()
    click.echo(f"pending:         {stats.pending}")
    click.echo(f"in flight:       {stats.in_flight}")
    click.echo(f"delivered:       {stats.delivered} (kept until pruned)")
    click.echo(f"dead letters:    {stats.dead}")
    click.echo(f"refused (full):  {stats.refused}")
    click.echo(f"oldest pending:  {_age(stats.oldest_pending_age)}")
    click.echo(f"last error:      {stats.last_error or '-'}")


@datacue_cli.group("outbox")
def outbox_group() -> None:
    """Act on the durable outbox of events and queued store changes."""


@outbox_group.command("retry-dead")
def retry_dead_command() -> None:
    """Put every dead letter back in the queue, to be delivered again."""
    count = _state().outbox.retry_dead()
    click.echo(f"{count} dead letter(s) queued again")


@outbox_group.command("dead")
@click.option("--limit", default=20, show_default=True, help="How many to show, newest first.")
def dead_command(limit: int) -> None:
    """List dead letters with the reason DataCue gave."""
    for letter in _state().outbox.dead_letters(limit):
        target = letter.path or "events"
        click.echo(f"#{letter.id} {letter.method} {target} -> {letter.status or '-'}: {letter.error}")


@outbox_group.command("flush")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to keep trying.")
def flush_command(timeout: float) -> None:
    """Deliver everything that is due now, in this process; exit 1 if rows are left."""
    state = _state()
    emptied = state.delivery_worker.flush(timeout)  # here, not on a thread of its own
    stats = state.outbox.stats()
    click.echo(f"pending: {stats.pending}, dead letters: {stats.dead}")
    if not emptied:
        sys.exit(1)


@datacue_cli.command("worker")
def worker_command() -> None:
    """Deliver the outbox in the foreground until SIGTERM or Ctrl-C (a Procfile's or systemd's worker).

    Runs beside web processes that set DATACUE_DELIVERY_THREAD = False, and takes what they
    journal from the same instance folder. On SIGTERM or SIGINT it claims nothing more, hands
    back rows not yet sent, waits up to DATACUE_SHUTDOWN_GRACE seconds for the requests in
    flight, and exits 0; a second signal gives those up at once (their rows are sent again).
    """
    state = _state()
    if state.delivery_mode != "outbox":
        raise click.ClickException(
            f"DATACUE_DELIVERY is {state.delivery_mode!r}: nothing is queued, so there is nothing to"
            ' deliver (the worker needs DATACUE_DELIVERY = "outbox")'
        )
    _log_somewhere()
    worker = state.delivery_worker
    pending = _pending(state)
    logger.info(
        "datacue worker: delivering %s (%s pending) to %s, up to %d requests in flight (pid %d);"
        " SIGTERM or Ctrl-C stops it within %gs",
        _outbox_location(current_app.config),
        "?" if pending is None else pending,
        redacted(current_app.config["DATACUE_EVENTS_URL"]),
        worker.max_in_flight,
        os.getpid(),
        state.shutdown_grace,
    )
    _serve_until_signalled(state, worker)
    try:
        # What web processes journaled meanwhile goes into the queue (and is counted below).
        state.outbox.retire_journal(timeout=1.0)
        waiting = _pending(state, in_flight=True)
    finally:
        state.close()
    logger.info(
        "datacue worker: stopped; %s row(s) wait in the outbox for the next worker",
        "?" if waiting is None else waiting,
    )


def _pending(state: DataCueState, *, in_flight: bool = False) -> int | None:
    """Rows pending (and in flight) now; ``None`` while the outbox's store does not answer (a Redis
    that is down): the worker starts anyway, and delivers once it is back."""
    try:
        stats = state.outbox.stats()
    except OutboxUnavailableError as error:
        logger.warning("datacue worker: the outbox does not answer now (%s); waiting for it", error)
        return None
    return stats.pending + (stats.in_flight if in_flight else 0)


def _serve_until_signalled(state: DataCueState, worker: DeliveryWorker) -> None:
    """``worker.serve()`` in this thread; SIGTERM or SIGINT stops it gracefully, a second one at once."""
    signals_seen: list[int] = []

    def stop(signum: int, _: object) -> None:
        signals_seen.append(signum)
        name = signal.Signals(signum).name
        if len(signals_seen) == 1:
            grace = state.shutdown_grace
            logger.info("datacue worker: %s: stopping; waiting up to %gs for requests in flight", name, grace)
            worker.stop(grace=state.shutdown_grace)
        else:
            logger.info("datacue worker: %s again: handing back the requests in flight now", name)
            worker.stop()

    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, stop) for signum in handled}
    try:
        worker.serve()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _log_somewhere() -> None:
    """A worker in the foreground reports to standard error, unless the shop configured logging."""
    if logging.getLogger().handlers:
        return
    library = logging.getLogger("cue_front")
    if any(not isinstance(handler, logging.NullHandler) for handler in library.handlers):
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _outbox_location(config: Mapping[str, Any]) -> str:
    """Where the outbox is, for the start line: its URL without a password, else its file."""
    url = config.get("DATACUE_OUTBOX_URL")
    if url:
        return redacted(str(url))
    return str(config["DATACUE_OUTBOX_PATH"])
