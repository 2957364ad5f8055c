"""The intake journal behind ``Outbox.put_event``: durable on return, in order, moved exactly once.

Each test uses real files and real processes (``tests/support/outbox_process.py`` run as a
script); the only attribute set from outside is a writer's segment size, to make
segment creation fail.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import pytest

from cue_front.outbox import Droppable, Outbox, OutboxFullError, OutboxRow
from cue_front.outbox.journal import JournalWriter, collect, journal_folder
from tests.support.draining import drain, drain_batches
from tests.support.outbox_process import HELPER, event_body, journaled_body


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "instance" / "outbox.sqlite3"


def start_helper(command: str, **settings: Any) -> subprocess.Popen[str]:
    """``tests/support/outbox_process.py COMMAND`` in a new process, talking in lines on stdin and stdout."""
    return subprocess.Popen(
        [sys.executable, str(HELPER), command, json.dumps(settings)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def say(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdin is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()


def hear(child: subprocess.Popen[str]) -> str:
    """The child's next line; fails (with its stderr) if it died instead."""
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        child.wait()
        stderr: IO[str] | None = child.stderr
        pytest.fail(f"the helper process exited ({child.returncode}): {stderr.read() if stderr else ''}")
    return line.strip()


def seq_of(row: OutboxRow) -> int:
    return int(json.loads(row.body)["user"]["profile"]["seq"])


def seqs_by_key(rows: list[OutboxRow]) -> dict[str | None, list[int]]:
    found: dict[str | None, list[int]] = {}
    for row in rows:
        found.setdefault(row.ordering_key, []).append(seq_of(row))
    return found


def segments(path: Path) -> list[Path]:
    """The journal segment files of the outbox at ``path``."""
    return sorted(journal_folder(path).glob("*.journal*"))


def record_starts(segment: Path) -> list[int]:
    """Where each whole-sized record of a segment starts (u32 size first, 8-byte aligned; see journal.py)."""
    data = segment.read_bytes()
    starts, position = [], 0
    while position + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, position)
        if size in (0, 0xFFFFFFFF):  # where the writer will write next, or its seal
            break
        starts.append(position)
        position = (position + size + 7) & ~7
    return starts


def test_an_event_is_durable_once_put_event_returns_even_if_the_process_is_killed(path: Path) -> None:
    with start_helper("journal_forever", outbox=str(path)) as child:
        try:
            # Every number printed was returned by put_event before the print: killed right after.
            acknowledged = [int(hear(child)) for _ in range(500)]
        finally:
            child.send_signal(signal.SIGKILL)
            _, errors = child.communicate()
    assert child.returncode == -signal.SIGKILL, errors
    assert acknowledged == list(range(500))

    with Outbox(path) as reopened:
        assert segments(path) != []  # the dead writer's, nothing moved yet
        moved = reopened.ingest()
        assert segments(path) == []  # read to its end, its writer gone: deleted by that ingest
        rows = drain(reopened)

    assert len(rows) == moved
    found = sorted(seq_of(row) for row in rows)
    # Each event exactly once; nothing missing before the last one (a put only began once the
    # previous one had returned), and every acknowledged one among them.
    assert found == list(range(len(found)))
    assert len(found) >= len(acknowledged)
    for key, seqs in seqs_by_key(rows).items():
        assert seqs == sorted(seqs), key
        assert all(f"v{seq % 10}" == key for seq in seqs)


def test_one_visitors_events_keep_their_order_across_processes(path: Path) -> None:
    events = 200
    with (
        start_helper("journal_on_cue", outbox=str(path), visitor="visitor-1") as first,
        start_helper("journal_on_cue", outbox=str(path), visitor="visitor-1") as second,
    ):
        for seq in range(events):
            # Alternating processes, each put only once the previous one has returned.
            writer = (first, second)[seq % 2]
            say(writer, str(seq))
            assert hear(writer) == str(seq)
        with Outbox(path) as outbox:
            batches = list(drain_batches(outbox))  # while both writers are still alive
        for writer in (first, second):
            writer.communicate()
            assert writer.returncode == 0

    assert {len(batch) for batch in batches} == {1}
    assert [seq_of(row) for batch in batches for row in batch] == list(range(events))


def test_concurrent_ingests_move_every_event_exactly_once(path: Path) -> None:
    events, large_every, large_bytes = 3000, 100, 512 * 1024  # 30 big ones: a few segments
    with (
        start_helper("ingest", outbox=str(path)) as ingester,
        start_helper(
            "journal_many", outbox=str(path), count=events, large_every=large_every, large_bytes=large_bytes
        ) as writer,
        Outbox(path) as outbox,
    ):
        assert (hear(ingester), hear(writer)) == ("ready", "ready")
        say(writer, "go")
        moved_here = 0
        while writer.poll() is None:
            moved_here += outbox.ingest()
        writer_output, writer_errors = writer.communicate()
        assert (writer.returncode, writer_output.strip()) == (0, "done"), writer_errors
        say(ingester, "stop")
        moved_there = int(hear(ingester))
        _, ingester_errors = ingester.communicate()
        assert ingester.returncode == 0, ingester_errors
        moved_here += outbox.ingest()

        assert outbox.ingest() == 0
        assert segments(path) == []  # every segment read to its end, its writer gone
        assert moved_here + moved_there == events
        assert outbox.stats().pending == events
        rows = drain(outbox)

    bodies = Counter(row.body for row in rows)
    expected = [
        journaled_body(seq, f"v{seq % 7}", large_bytes if seq % large_every == large_every - 1 else 0)
        for seq in range(events)
    ]
    assert bodies == Counter(expected)
    for key, seqs in seqs_by_key(rows).items():
        assert seqs == sorted(seqs), key


def test_a_live_writers_unfinished_record_waits_and_a_dead_writers_torn_one_is_dropped(path: Path) -> None:
    folder = journal_folder(path)
    writer = JournalWriter(folder)
    bodies = [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    for body in bodies:
        writer.append("visitor-1", body, time.time())
    (segment,) = segments(path)
    last = record_starts(segment)[-1]
    # The last record's CRC no longer matches: to a reader, it is still being copied.
    with open(segment, "r+b") as file:
        file.seek(last + 4)
        crc = file.read(4)
        file.seek(last + 4)
        file.write(bytes(byte ^ 0xFF for byte in crc))

    found = collect(folder, {}, time.monotonic_ns())
    assert [record.body for record in found.records] == bodies[:2]
    assert found.offsets == {segment.name: last}
    assert found.finished == []

    with Outbox(path) as outbox:
        assert outbox.ingest() == 2
        assert outbox.ingest() == 0  # the live writer's last record still waits
        assert segment.exists()

        writer.close()  # the writer is gone: the record will never be finished

        assert outbox.ingest() == 0
        assert segments(path) == []
        assert [row.body for row in drain(outbox)] == bodies[:2]


def test_a_forked_child_never_writes_into_its_parents_segment(path: Path) -> None:
    count = 2000
    with start_helper("journal_fork", outbox=str(path), count=count) as parent:
        output, errors = parent.communicate(timeout=60)
    assert (parent.returncode, output.strip()) == (0, "0"), errors

    with Outbox(path) as outbox:
        rows = drain(outbox)
        assert outbox.ingest() == 0
    assert segments(path) == []

    for row in rows:
        json.loads(row.body)  # every body intact
    assert Counter(row.body for row in rows) == Counter(
        [event_body(seq, "parent") for seq in range(2 * count)]
        + [event_body(seq, "child") for seq in range(count)]
    )
    assert seqs_by_key(rows) == {"parent": list(range(2 * count)), "child": list(range(count))}


def test_put_event_keeps_the_cap_and_accepts_again_once_rows_are_delivered(path: Path) -> None:
    with Outbox(path, max_rows=50) as outbox:
        assert [outbox.put_event(b'{"n":%d}' % n) for n in range(50)] == [None] * 50

        with pytest.raises(OutboxFullError, match="full"):
            outbox.put_event(b'{"n":50}')
        stats = outbox.stats()
        assert (stats.pending, stats.refused) == (50, 1)

        delivered = outbox.claim("w", limit=10)
        outbox.ack(row.id for row in delivered)
        assert outbox.prune() == 10

        assert outbox.put_event(b'{"n":51}') is None
        assert outbox.stats().pending == 41
    assert [row.body for row in delivered] == [b'{"n":%d}' % n for n in range(10)]


@pytest.mark.parametrize("options", [{"synchronous": "FULL"}, {"journal": False}])
def test_without_the_journal_put_event_writes_a_row_at_once(path: Path, options: dict[str, Any]) -> None:
    with Outbox(path, **options) as outbox:
        row_id = outbox.put_event(b'{"n":1}', "visitor-1")
        assert isinstance(row_id, int)
        assert [row.id for row in outbox.claim("w")] == [row_id]
    assert not journal_folder(path).exists()


def test_when_no_segment_can_be_made_put_event_falls_back_to_sqlite_in_order(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Outbox(path) as outbox:
        writer = outbox._intake._journal
        assert writer is not None
        normal_size = writer.segment_bytes
        fallback_ids = []
        with caplog.at_level(logging.WARNING, logger="cue_front.outbox"):
            for first, fallback in ((0, 3), (4, 6)):
                writer.segment_bytes = normal_size
                for seq in range(first, fallback):
                    assert outbox.put_event(event_body(seq, "v"), "v") is None
                # The segment in hand is let go and no new one can be made (posix_fallocate fails).
                writer.close()
                writer.segment_bytes = 2**60
                fallback_ids.append(outbox.put_event(event_body(fallback, "v"), "v"))

        assert all(isinstance(row_id, int) for row_id in fallback_ids)
        assert "cannot take events" in caplog.text
        assert list(journal_folder(path).glob("*.tmp")) == []
        batches = list(drain_batches(outbox))
    assert {len(batch) for batch in batches} == {1}
    assert [seq_of(row) for batch in batches for row in batch] == list(range(7))
    assert [batch[0].id for batch in batches if seq_of(batch[0]) in (3, 6)] == fallback_ids


def test_store_changes_count_toward_the_cap_that_put_event_keeps(path: Path) -> None:
    # Store changes are accepted past the cap; events must then be refused, not slip in on
    # an estimate that only counted other events.
    with Outbox(path, max_rows=100) as outbox:
        assert outbox.put_event(event_body(0, "v"), "v") is None
        for n in range(100):
            outbox.put("rest", "PUT", f"/products/p{n}/v1", b'{"price":9.5}', f"product:p{n}")
        with pytest.raises(OutboxFullError):
            outbox.put_event(event_body(1, "v"), "v")
        assert outbox.stats().pending == 101  # the one event and the 100 changes


def test_an_append_cut_short_after_its_record_is_whole_is_never_written_over(path: Path) -> None:
    # An exception from a signal handler can land between an append writing its record's size
    # and moving on. The record is whole, so an ingest may move it; the next append must not
    # reuse its place. (The interruption is simulated by putting the write position back.)
    writer = JournalWriter(journal_folder(path))
    with Outbox(path) as outbox:
        writer.append("v", event_body(0, "v"), time.time())
        interrupted_at = writer._position
        writer.append("v", event_body(1, "v"), time.time())
        writer._position = interrupted_at  # as if the second append had stopped before moving on
        assert outbox.ingest() == 2
        writer.append("v", event_body(2, "v"), time.time())
        assert outbox.ingest() == 1
        assert [seq_of(row) for batch in drain_batches(outbox) for row in batch] == [0, 1, 2]
    writer.close()


def test_a_record_keeps_its_droppable_class_and_shared_key_and_older_segments_are_still_read(
    path: Path,
) -> None:
    folder = journal_folder(path)
    writer = JournalWriter(folder)
    writer.append("visitor:u1", b'{"n":1}', time.time(), int(Droppable.SUPERSEDED), "visitor:a1")
    writer.append("visitor:u1", b'{"n":2}', time.time(), int(Droppable.YES))
    writer.close()
    (segment,) = segments(path)
    found = collect(folder, {}, time.monotonic_ns())
    assert [(r.ordering_key, r.shared_key, r.droppable) for r in found.records] == [
        ("visitor:u1", "visitor:a1", Droppable.SUPERSEDED),
        ("visitor:u1", None, Droppable.YES),
    ]
    # A segment the previous version left (named .journal3, records without a shared key) is
    # still moved into the outbox after an upgrade: nothing accepted before it is lost.
    older = JournalWriter(folder)
    older.append("visitor:u2", b'{"n":3}', time.time(), int(Droppable.YES))
    older.close()
    (newest,) = set(segments(path)) - {segment}
    newest.rename(newest.with_suffix(".journal3"))
    with Outbox(path) as outbox:
        assert outbox.ingest() == 3
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT ordering_key, shared_key, droppable, body FROM outbox").fetchall()
    connection.close()
    assert sorted(rows, key=lambda row: bytes(row[3])) == [
        ("visitor:u1", "visitor:a1", Droppable.SUPERSEDED, b'{"n":1}'),
        ("visitor:u1", None, Droppable.YES, b'{"n":2}'),
        ("visitor:u2", None, Droppable.YES, b'{"n":3}'),
    ]
