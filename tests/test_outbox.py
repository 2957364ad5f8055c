"""The outbox on its own: durability, claims and leases, per-key order, dead letters, the overflow policy."""

from __future__ import annotations

import json
import logging
import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cue_front.errors import DataCueError
from cue_front.outbox import Outbox, OutboxBackend, OutboxFullError
from tests.support.draining import drain
from tests.support.outbox_process import HELPER

MakeOutbox = Callable[..., OutboxBackend]


@pytest.fixture
def outbox(any_outbox: OutboxBackend) -> OutboxBackend:
    """The tests taking ``outbox`` are the contract: each runs on SQLite and on Redis."""
    return any_outbox


def put_event(outbox: OutboxBackend, body: bytes = b'{"event":1}', key: str | None = None) -> int:
    return outbox.put("event", "POST", "", body, key)


def test_put_keeps_the_exact_request_and_claim_hands_it_out(outbox: OutboxBackend) -> None:
    body = '{"user":{"anonymous_id":"a1"},"event":{"type":"login"},"name":"Zoë"}'.encode()
    event_id = outbox.put("event", "POST", "", body, "a1")
    rest_id = outbox.put("rest", "PUT", "/products/p1/v1", b'{"price":9.5}', "product:p1")

    rows = outbox.claim("worker-1")

    assert [(r.id, r.kind, r.method, r.path, r.body, r.ordering_key, r.attempts) for r in rows] == [
        (event_id, "event", "POST", "", body, "a1", 1),
        (rest_id, "rest", "PUT", "/products/p1/v1", b'{"price":9.5}', "product:p1", 1),
    ]
    assert outbox.stats().in_flight == 2


def test_the_file_and_its_folders_are_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "outbox.sqlite3"
    with Outbox(path):
        pass
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def open_new_outboxes_together(folder: str, rounds: int, start: Any, errors: Any) -> None:
    """In a child process: in each round, open the round's brand-new outbox with the others and put."""
    for n in range(rounds):
        start.wait()
        try:
            with Outbox(Path(folder) / f"outbox-{n}.sqlite3") as outbox:
                put_event(outbox)
        except Exception as error:  # reported to the test, which fails on it
            errors.put(f"round {n}: {error!r}")


def test_workers_starting_together_all_open_a_new_outbox(tmp_path: Path) -> None:
    # gunicorn's workers meet a fresh outbox file at their first request, often in the
    # same millisecond; SQLite refuses a second switch to WAL at once ("database is locked").
    processes, rounds = 4, 40
    context = multiprocessing.get_context("spawn")
    start, errors = context.Barrier(processes), context.Queue()
    children = [
        context.Process(target=open_new_outboxes_together, args=(str(tmp_path), rounds, start, errors))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert [child.exitcode for child in children] == [0] * processes
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == []
    for n in range(rounds):
        with Outbox(tmp_path / f"outbox-{n}.sqlite3") as outbox:
            assert outbox.stats().pending == processes


def test_a_row_is_durable_once_put_returns_even_if_the_process_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    settings = json.dumps({"outbox": str(path)})
    child = subprocess.Popen(
        [sys.executable, str(HELPER), "put", settings], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None
    acknowledged = []
    try:
        # Every id printed was returned by put() before the print: killed right after.
        for line in child.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) == 300:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        _, errors = child.communicate()
    assert child.returncode == -signal.SIGKILL, errors.decode()

    with Outbox(path) as reopened:
        rows = {row.id: row for row in drain(reopened, limit=1000)}
    for seq, row_id in enumerate(acknowledged):
        assert json.loads(rows[row_id].body)["user"]["profile"]["seq"] == seq


def test_rows_with_one_ordering_key_go_out_one_at_a_time_in_order(outbox: OutboxBackend) -> None:
    a1, b1, a2, free, a3 = (put_event(outbox, key=key) for key in ("a", "b", "a", None, "a"))

    assert [row.id for row in outbox.claim("w")] == [a1, b1, free]
    assert outbox.claim("w") == []  # a2 waits for a1, which is in flight

    outbox.ack([a1])
    assert [row.id for row in outbox.claim("w")] == [a2]
    outbox.retry_later(a2, delay=60, error="503")
    assert outbox.claim("w") == []  # a3 waits behind a2's backoff, even though a3 itself is due

    outbox.retry_later(a2, delay=0, error="503 again")
    (retried,) = outbox.claim("w")
    assert (retried.id, retried.attempts) == (a2, 2)
    outbox.ack([a2])
    assert [row.id for row in outbox.claim("w")] == [a3]


def test_retry_now_ends_every_backoff_but_leaves_rows_in_flight(outbox: OutboxBackend) -> None:
    waiting = put_event(outbox, key="a")
    put_event(outbox, key="b")
    outbox.claim("w")
    outbox.retry_later(waiting, delay=600, error="503")

    assert outbox.retry_now() == 1
    assert [row.id for row in outbox.claim("w")] == [waiting]
    assert outbox.stats().in_flight == 2  # the "b" row was never handed back


def test_claims_are_oldest_first_and_limited(outbox: OutboxBackend) -> None:
    ids = [put_event(outbox, key=f"visitor-{n}") for n in range(10)]

    assert [row.id for row in outbox.claim("w", limit=4)] == ids[:4]
    assert [row.id for row in outbox.claim("w", limit=100)] == ids[4:]


def test_a_dead_workers_lease_expires_and_its_rows_are_claimed_again(make_any_outbox: MakeOutbox) -> None:
    crashed, survivor = make_any_outbox(lease_seconds=0.2), make_any_outbox()
    row_id = put_event(crashed, key="a")
    follower = put_event(crashed, key="a")
    assert [row.id for row in crashed.claim("worker-that-dies")] == [row_id]
    assert survivor.claim("survivor") == []  # leased

    time.sleep(0.3)  # the lease runs out; nobody acked

    (reclaimed,) = survivor.claim("survivor")
    assert (reclaimed.id, reclaimed.attempts) == (row_id, 2)
    # The late owner cannot push the row back into the queue: the survivor holds it now.
    crashed.retry_later(row_id, delay=0, error="too late", owner="worker-that-dies")
    assert survivor.claim("survivor") == []
    survivor.ack([row_id])
    assert [row.id for row in survivor.claim("survivor")] == [follower]


def test_released_rows_are_due_again_without_counting_an_attempt(outbox: OutboxBackend) -> None:
    row_id = put_event(outbox)
    outbox.claim("w")
    outbox.release([row_id], owner="w")

    (row,) = outbox.claim("w")
    assert (row.id, row.attempts) == (row_id, 1)


def test_dead_letters_are_kept_with_the_answer_and_can_be_retried(outbox: OutboxBackend) -> None:
    refused = put_event(outbox, b'{"bad":true}', key="a")
    follower = put_event(outbox, key="a")
    outbox.claim("w")
    error = "DataCue refused POST /: bad: unknown field"
    outbox.dead_letter(refused, status=400, error=error, response_body='{"status":400}')

    (letter,) = outbox.dead_letters()
    assert (letter.id, letter.body, letter.status, letter.response_body, letter.attempts) == (
        refused,
        b'{"bad":true}',
        400,
        '{"status":400}',
        1,
    )
    assert "unknown field" in letter.error
    stats = outbox.stats()
    assert (stats.dead, stats.last_error) == (1, "DataCue refused POST /: bad: unknown field")
    # A dead letter does not hold its key back.
    assert [row.id for row in outbox.claim("w")] == [follower]

    outbox.ack([follower])
    assert outbox.retry_dead() == 1
    assert outbox.dead_letters() == []
    (again,) = outbox.claim("w")
    assert (again.id, again.attempts) == (refused, 1)


def test_retry_dead_can_pick_rows(outbox: OutboxBackend) -> None:
    first, second = put_event(outbox), put_event(outbox)
    outbox.claim("w")
    for row_id in (first, second):
        outbox.dead_letter(row_id, status=422, error="refused", response_body=None)

    assert outbox.retry_dead([second]) == 1
    assert [letter.id for letter in outbox.dead_letters()] == [first]


def test_stats_tell_what_waits_what_flies_and_what_was_delivered(outbox: OutboxBackend) -> None:
    assert outbox.stats().oldest_pending_age is None
    started = time.time()
    ids = [put_event(outbox, key=f"k{n}") for n in range(3)]
    time.sleep(0.2)
    ids += [put_event(outbox, key=f"k{n}") for n in range(3, 5)]
    outbox.claim("w", limit=3)
    outbox.ack(ids[:2])

    stats = outbox.stats()
    assert (stats.pending, stats.in_flight, stats.delivered, stats.dead, stats.refused) == (2, 1, 2, 0, 0)
    # The oldest undelivered row is the third (in flight), put before the pause.
    assert stats.oldest_pending_age is not None
    assert 0.2 <= stats.oldest_pending_age <= time.time() - started
    assert outbox.unfinished() == 3

    pruned = outbox.prune()
    assert pruned == (2 if isinstance(outbox, Outbox) else 0)  # Redis: gone when acknowledged
    assert outbox.stats().delivered == 2  # pruned rows still count as delivered


def test_a_full_outbox_refuses_events_but_keeps_store_changes(
    make_any_outbox: MakeOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = make_any_outbox(max_rows=5)
    ids = [put_event(outbox, key=f"k{n}") for n in range(5)]

    with pytest.raises(OutboxFullError, match="full"):
        put_event(outbox)
    with caplog.at_level(logging.WARNING, logger="cue_front.outbox"):
        change = outbox.put("rest", "PUT", "/products/p1/v1", b'{"stock":0}', "product:p1")

    assert change > ids[-1]
    assert "over its cap" in caplog.text
    stats = outbox.stats()
    assert (stats.pending, stats.refused) == (6, 1)

    # Two rows are delivered: they are pruned to make room before an event is refused.
    outbox.ack(row.id for row in outbox.claim("w", limit=2))
    accepted = put_event(outbox, key="after-pruning")
    assert accepted > change
    assert (outbox.stats().pending, outbox.stats().delivered) == (5, 2)

    with pytest.raises(OutboxFullError):
        put_event(outbox)
    assert outbox.stats().refused == 2


def test_dead_letters_count_toward_the_cap_and_are_never_dropped_for_room(
    make_any_outbox: MakeOutbox,
) -> None:
    outbox = make_any_outbox(max_rows=2)
    put_event(outbox)
    put_event(outbox)
    for row in outbox.claim("w"):
        outbox.dead_letter(row.id, status=400, error="refused", response_body=None)

    with pytest.raises(OutboxFullError):
        put_event(outbox)
    assert len(outbox.dead_letters()) == 2


def test_ids_are_never_reused_after_pruning(outbox: OutboxBackend) -> None:
    ids = [put_event(outbox) for _ in range(3)]
    outbox.ack(row.id for row in outbox.claim("w"))
    outbox.prune()

    assert put_event(outbox) > ids[-1]


def test_unknown_kind_is_refused(outbox: OutboxBackend) -> None:
    with pytest.raises(ValueError, match="kind"):
        outbox.put("email", "POST", "", b"{}")


def test_synchronous_full_is_offered_and_nonsense_is_refused(tmp_path: Path) -> None:
    with Outbox(tmp_path / "full.sqlite3", synchronous="full") as outbox:
        assert outbox.synchronous == "FULL"
        put_event(outbox)
    with pytest.raises(ValueError, match="synchronous"):
        Outbox(tmp_path / "off.sqlite3", synchronous="OFF")


def test_a_closed_outbox_says_so(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.close()
    with pytest.raises(DataCueError, match="closed"):
        put_event(outbox)


FORKED_WRITER = """
import os, sys, time
from cue_front.outbox import Outbox
path, report = sys.argv[1], sys.argv[2]
outbox = Outbox(path)  # opened before the fork, as a gunicorn --preload master may
outbox.put("rest", "POST", "/products", b"{}")
if os.fork() == 0:  # the worker goes on queueing after its parent is gone
    puts, errors, end = 0, [], time.monotonic() + 2.0
    while time.monotonic() < end:
        try:
            outbox.put("rest", "POST", "/products", b'{"n":%d}' % puts)
            puts += 1
        except Exception as error:
            errors.append(repr(error))
        time.sleep(0.001)
    with open(report, "w") as out:
        out.write(f"{puts} {len(errors)}")
    os._exit(0)
os._exit(0)
"""


def test_a_child_that_outlives_the_parent_it_forked_from_loses_nothing(tmp_path: Path) -> None:
    # The child must own its SQLite state: were it sharing what it inherited, a process opening
    # the outbox after the parent's exit would take the WAL index for unused and reset it.
    path, report = tmp_path / "outbox.sqlite3", tmp_path / "child.txt"
    subprocess.run([sys.executable, "-c", FORKED_WRITER, str(path), str(report)], check=True, timeout=30)
    time.sleep(0.3)
    with Outbox(path) as newcomer:  # a CLI command, a new worker: opens and writes meanwhile
        newcomer.put("rest", "POST", "/x", b"{}")
    deadline = time.monotonic() + 30
    while not report.exists() or not report.read_text():
        assert time.monotonic() < deadline, "the forked child never finished"
        time.sleep(0.05)
    puts, errors = map(int, report.read_text().split())
    assert errors == 0 and puts > 100
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == puts + 2
    connection.close()
