"""Redis passwords never reach a log: ``redis_store.redacted`` masks both places redis-py reads one
from (the user part and a ``password`` query parameter), and ``flask datacue worker``'s start line
shows the outbox's URL through it, against a real redis-server that requires a password."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.redis_server import RedisServer
from cue_front.emulator import RunningEmulator
from cue_front.redis_store import redacted

FLASK = str(Path(sys.executable).with_name("flask"))
ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "hunter2-never-logged"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://default:hunter2@cache:6379/0", "redis://default:***@cache:6379/0"),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("unix:///run/redis.sock?db=0&password=hunter2", "unix:///run/redis.sock?db=0&password=***"),
        ("redis://cache:6379/0?PassWord=hunter2&db=1", "redis://cache:6379/0?PassWord=***&db=1"),
        ("rediss://u:hunter2@cache/0?password=hunter2", "rediss://u:***@cache/0?password=***"),
        ("redis://cache:6379/0?pass%77ord=hunter2", "redis://cache:6379/0?pass%77ord=***"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("http://127.0.0.1:5001/events?a=1", "http://127.0.0.1:5001/events?a=1"),
    ],
)
def test_redacted_masks_every_password_redis_py_reads(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert "hunter2" not in redacted(url)


def test_an_unparseable_url_is_shown_without_its_rest() -> None:
    assert "hunter2" not in redacted("redis://:hunter2@[::1/0")


@pytest.fixture
def guarded_redis(redis_installed: None) -> Iterator[RedisServer]:
    """A redis-server of its own that requires ``PASSWORD``."""
    with RedisServer() as server:
        assert server.command("CONFIG", "SET", "requirepass", PASSWORD) == b"+OK"
        yield server


@pytest.mark.parametrize("where", ["query", "user part"])
def test_the_worker_start_line_masks_the_outbox_password(
    tmp_path: Path, emulator: RunningEmulator, guarded_redis: RedisServer, where: str
) -> None:
    if where == "query":
        url = f"unix://{guarded_redis.unix_socket}?db=0&password={PASSWORD}"
    else:
        url = f"redis://default:{PASSWORD}@127.0.0.1:{guarded_redis.port}/0"
    config = {**emulator.config, "DATACUE_OUTBOX_URL": url, "DATACUE_DELIVERY_THREAD": False}
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WORKER_SHOP": json.dumps({"instance": str(tmp_path / "instance"), "config": config}),
    }
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [FLASK, "--app", "tests.support.worker_shop", "datacue", "worker"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "datacue worker: delivering" not in log.read_text() and worker.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    text = log.read_text()
    start_line = next(line for line in text.splitlines() if "datacue worker: delivering" in line)
    assert "(0 pending)" in start_line, start_line  # Redis answered it
    assert ("password=***" if where == "query" else "default:***@") in start_line
    assert PASSWORD not in text
