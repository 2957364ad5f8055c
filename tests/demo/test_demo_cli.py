"""``flask --app demo_store ...`` out of the box: every ``--help`` needs no settings, and beside a
running demo the commands find its emulator (and its secret) in the instance folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import requests

from cue_front.cli import datacue_cli
from cue_front.emulator import RunningEmulator
from demo_store import create_app, settings
from demo_store.admin import shop_cli
from demo_store.testing import DATABASE_NAME, rows
from tests.demo.test_demo_store import demo_process, read_until, stop
from tests.support.waiting import wait_for

FLASK = str(Path(sys.executable).with_name("flask"))
REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal where nothing DataCue is set."""
    for name in [*settings.ENVIRONMENT_SETTINGS, "DEMO_STORE_INSTANCE"]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def instance(tmp_path: Path, demo_template: Path) -> Path:
    folder = tmp_path / "instance"
    folder.mkdir()
    (folder / DATABASE_NAME).write_bytes(demo_template.read_bytes())
    return folder


def every_help(group: click.Group, path: tuple[str, ...]) -> Iterator[list[str]]:
    """The arguments of every ``--help`` of a command group, its own first."""
    yield [*path, "--help"]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from every_help(command, (*path, name))
        else:
            yield [*path, name, "--help"]


def helps() -> list[list[str]]:
    return [*every_help(datacue_cli, ("datacue",)), *every_help(shop_cli, ("shop",))]


@pytest.mark.usefixtures("no_settings")
def test_every_help_works_with_no_settings(instance: Path) -> None:
    runner = create_app(instance_path=str(instance)).test_cli_runner()
    arguments = helps()
    assert ["datacue", "outbox", "retry-dead", "--help"] in arguments and len(arguments) >= 10
    assert ["datacue", "worker", "--help"] in arguments
    for args in arguments:
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
        assert result.output.startswith("Usage: ") and args[-2] in result.output, args


@pytest.mark.usefixtures("no_settings")
def test_with_no_settings_commands_and_pages_say_how_to_start(instance: Path) -> None:
    app = create_app(instance_path=str(instance))
    runner = app.test_cli_runner()
    stock = rows(app, "SELECT stock FROM variants WHERE product_id = 'p144'")[0][0]
    for args in (
        ["datacue", "overview"],
        ["datacue", "outbox", "dead"],
        ["shop", "restock", "p144", "no-variants", "3"],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 1, (args, result.output)
        assert "start it with `make demo`" in result.output and "DATACUE_API_KEY" in result.output
    assert rows(app, "SELECT stock FROM variants WHERE product_id = 'p144'")[0][0] == stock  # unchanged
    page = app.test_client().get("/")
    assert page.status_code == 503 and "make demo" in page.get_data(as_text=True)


def note(instance: Path, emulator: RunningEmulator, pid: int | None = None) -> None:
    """The note a running demo leaves: written by this process, as python -m demo_store does."""
    settings.record_emulator(instance, {**emulator.config, "DATACUE_SHOP_URL": "http://127.0.0.1:5999"})
    if pid is not None:  # ...or left by one that is gone
        path = instance / settings.RECORD_NAME
        path.write_text(json.dumps({**json.loads(path.read_text()), "pid": pid}))


@pytest.mark.usefixtures("no_settings")
def test_beside_a_running_demo_the_commands_find_its_emulator(
    instance: Path, emulator: RunningEmulator
) -> None:
    note(instance, emulator)
    assert (instance / settings.RECORD_NAME).stat().st_mode & 0o777 == 0o600  # it holds the secret
    app = create_app(instance_path=str(instance))
    assert app.config["DATACUE_API_SECRET"] == emulator.api_secret
    assert app.config["DATACUE_SHOP_URL"] == "http://127.0.0.1:5999"
    runner = app.test_cli_runner()
    stock = rows(app, "SELECT stock FROM variants WHERE product_id = 'p144'")[0][0]
    imported = runner.invoke(args=["datacue", "import", "categories"])
    assert imported.exit_code == 0 and "categories: 6 sent" in imported.output, imported.output
    overview = runner.invoke(args=["datacue", "overview"])
    assert overview.exit_code == 0 and re.search(r"categories +6\n", overview.output), overview.output
    restocked = runner.invoke(args=["shop", "restock", "p144", "no-variants", "3"])
    assert restocked.exit_code == 0 and f"stock {stock} -> {stock + 3}" in restocked.output, restocked.output
    app.extensions["datacue"].delivery.stop()
    (update,) = emulator.requests(type="products.update")
    assert update["path"] == "/v1/products/p144/no-variants" and update["body"]["stock"] == stock + 3
    # The demo stops: its note goes, and the next command says how to start it.
    settings.forget_emulator(instance)
    assert not (instance / settings.RECORD_NAME).exists()
    assert "DATACUE_API_KEY" not in create_app(instance_path=str(instance)).config


@pytest.mark.usefixtures("no_settings")
def test_the_note_of_a_demo_that_is_gone_is_ignored(instance: Path, emulator: RunningEmulator) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    note(instance, emulator, pid=int(gone.stdout))
    assert "DATACUE_API_KEY" not in create_app(instance_path=str(instance)).config


def clean_environment(instance: Path) -> dict[str, str]:
    """No DataCue settings, no Flask settings: the PATH, a home, and where the instance folder is."""
    return {"PATH": os.environ["PATH"], "HOME": str(instance.parent), "DEMO_STORE_INSTANCE": str(instance)}


def test_flask_datacue_help_in_a_clean_environment(instance: Path) -> None:
    result = subprocess.run(
        [FLASK, "--app", "demo_store", "datacue", "--help"],
        cwd=instance.parent,
        env=clean_environment(instance),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("Usage: flask datacue")
    for command in ("import", "overview", "reconcile", "status", "outbox", "worker"):
        assert re.search(rf"^  {command} ", result.stdout, re.MULTILINE), command


def flask(instance: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLASK, "--app", "demo_store", *arguments],
        cwd=REPOSITORY,
        env=clean_environment(instance),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_flask_commands_beside_python_m_demo_store(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    process = demo_process(instance)
    seen: list[str] = []
    try:
        read_until(process.stdout, "Press Ctrl-C", seen)  # type: ignore[arg-type]
        output = "".join(seen)
        assert f"DEMO_STORE_INSTANCE={instance} " in output and "--app demo_store --help" in output
        debugger = re.search(r"Events debugger: +(http://\S+)", output)
        assert debugger is not None
        overview = flask(instance, "datacue", "overview")
        assert overview.returncode == 0, overview.stderr
        assert re.search(r"products +48\n", overview.stdout) and re.search(r"users +39\n", overview.stdout)
        restock = flask(instance, "shop", "restock", "p144", "no-variants", "3")
        assert restock.returncode == 0, restock.stderr
        assert "DataCue was sent the change" in restock.stdout
        updates = f"{debugger.group(1)}/_emulator/requests?type=products.update"
        wait_for(lambda: bool(requests.get(updates, timeout=10).json()))
        (update,) = requests.get(updates, timeout=10).json()
        assert update["path"] == "/v1/products/p144/no-variants" and update["body"]["stock"] > 3
    finally:
        output = stop(process, seen)
    assert process.returncode == 0, output
    assert not (instance / settings.RECORD_NAME).exists()  # the note goes with the demo
