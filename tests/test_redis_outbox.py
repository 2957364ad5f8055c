"""The Redis outbox beyond the contract: several hosts on one Redis, workers sharing partitions and
taking over a dead one's, exactly-once forwarding from the journal, erasure across hosts, the
shared pause, and a Redis outage. Real redis-server, real DeliveryWorkers, the loopback sink."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.redis_server import RedisServer
from benchmarks.sink import Answer, Sink
from cue_front.outbox import DeliveryWorker, OutboxFullError
from cue_front.outbox.redis import OutboxUnavailableError, RedisOutbox
from cue_front.redis_store import connect
from tests.support.draining import drain
from tests.support.waiting import wait_for

#: The ``make_redis_outbox`` fixture (tests/conftest.py): a host of the shop, its journal in
#: ``tmp_path/<name>/intake``.
MakeHost = Callable[..., RedisOutbox]


@pytest.fixture
def deliver(
    make_worker: Callable[..., DeliveryWorker], sink: Sink
) -> Callable[[RedisOutbox], DeliveryWorker]:
    """A running DeliveryWorker on an outbox, sending to the sink (stopped after the test by
    ``make_worker``)."""

    def start(outbox: RedisOutbox) -> DeliveryWorker:
        worker = make_worker(sink, outbox=outbox, backoff_base=0.05)
        worker.ensure_running()
        return worker

    return start


def body(visitor: str, seq: int) -> bytes:
    return json.dumps({"visitor": visitor, "seq": seq}).encode()


def events_by_visitor(sink: Sink) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = defaultdict(list)
    for request in sink.received("POST", "/events/"):
        seen[request.json()["visitor"]].append(request.json()["seq"])
    return seen


def test_two_hosts_and_two_workers_keep_each_visitors_and_each_entitys_order(
    make_redis_outbox: MakeHost, deliver: Callable[[RedisOutbox], DeliveryWorker], sink: Sink
) -> None:
    sink.fallback("POST", "/events/", Answer(201, delay=0.005))
    host_a, host_b = make_redis_outbox("a"), make_redis_outbox("b")
    # Each visitor's requests land on both hosts in turn (no sticky sessions); each event is
    # forwarded by its host before the visitor's next request, as a host's worker does.
    for seq in range(30):
        for visitor in range(8):
            host = (host_a, host_b)[(seq + visitor) % 2]
            host.put_event(body(f"v{visitor}", seq), f"visitor:v{visitor}")
            host.ingest()
        change = json.dumps({"n": seq}).encode()
        (host_a, host_b)[seq % 2].put("rest", "PUT", "/products/p1", change, "products/p1")
    deliver(host_a), deliver(host_b)

    wait_for(lambda: len(sink.received()) == 30 * 8 + 30)
    assert events_by_visitor(sink) == {f"v{visitor}": list(range(30)) for visitor in range(8)}
    assert [r.json()["n"] for r in sink.received("PUT")] == list(range(30))
    # Acknowledged too (a worker writes its acknowledgements a few milliseconds after the answers).
    wait_for(lambda: host_a.stats().delivered == 30 * 8 + 30)


def meet(*outboxes: RedisOutbox) -> None:
    """Workers start: each claims twice, so every one knows the others and has let go of their share."""
    for _ in range(2):
        for outbox in outboxes:
            assert outbox.claim("warming up") == []


def test_workers_split_the_partitions_and_a_dead_ones_rows_are_taken_over(
    make_redis_outbox: MakeHost,
) -> None:
    dying, survivor = make_redis_outbox("a", lease_seconds=0.5), make_redis_outbox("b")
    meet(dying, survivor)
    ids = {dying.put("event", "POST", "", body(f"v{n}", 0), f"visitor:v{n}") for n in range(64)}
    first = dying.claim("dying", limit=500)
    second = survivor.claim("survivor", limit=500)
    # Two live workers: each drains its own share of the partitions, never the same row.
    assert first and second
    assert {row.id for row in first} | {row.id for row in second} <= ids
    assert not {row.id for row in first} & {row.id for row in second}
    survivor.ack(row.id for row in second)

    time.sleep(0.7)  # the dying worker never acks nor comes back: its leases run out

    taken_over = survivor.claim("survivor", limit=500)
    assert {row.id for row in taken_over} == ids - {row.id for row in second}
    assert all(row.attempts == 2 for row in taken_over)
    survivor.ack(row.id for row in taken_over)
    assert survivor.stats().delivered == 64 and survivor.unfinished() == 0


def test_a_closed_worker_hands_its_partitions_over_at_once(make_redis_outbox: MakeHost) -> None:
    leaving, staying = make_redis_outbox("a"), make_redis_outbox("b")
    meet(leaving, staying)
    ids = {staying.put("event", "POST", "", b"{}", f"visitor:v{n}") for n in range(32)}
    share = {row.id for row in staying.claim("staying", limit=500)}
    assert share and share < ids  # its share of the partitions only
    leaving.close()

    assert {row.id for row in staying.claim("staying", limit=500)} == ids - share


FORWARD_FOREVER = """
import sys
from pathlib import Path
from cue_front.outbox.redis import RedisOutbox
from cue_front.redis_store import connect
outbox = RedisOutbox(connect(sys.argv[1], timeout=5.0), journal=Path(sys.argv[2]))
print("ready", flush=True)
while True:
    outbox.ingest()
"""


def test_a_forward_killed_at_any_moment_moves_each_event_exactly_once(
    make_redis_outbox: MakeHost, redis_url: str, tmp_path: Path
) -> None:
    writer = make_redis_outbox("a")
    count = 5000
    for seq in range(count):
        writer.put_event(body(f"v{seq % 50}", seq), f"visitor:v{seq % 50}")
    for delay in (0.05, 0.2, 0.4):  # three forwarders killed mid-pass, wherever they are
        child = subprocess.Popen(
            [sys.executable, "-c", FORWARD_FOREVER, redis_url, str(tmp_path / "a" / "intake")],
            stdout=subprocess.PIPE,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    writer.ingest()  # what is left, from where the last one got

    seen = [json.loads(row.body)["seq"] for row in drain(writer)]
    assert sorted(seen) == list(range(count))


def test_a_forwarded_event_and_a_claimed_row_keep_every_byte_they_were_given(
    make_redis_outbox: MakeHost,
) -> None:
    """The forward's batches travel packed in one argument and a claim's rows come back packed in
    one string: keys, bodies and times survive both, whatever their bytes."""
    host = make_redis_outbox("a")
    body_bytes = bytes(range(256)) * 3  # every byte value, NUL and 0xff included
    before = time.time()
    host.put_event(body_bytes, "visitor:zoë 🛒", shared_key="visitor:anonyme-é")
    # Keyed by the first row's shared key: it waits while that row is unfinished (docs/delivery.md,
    # "Ordering"), which it does only if the shared key came through whole.
    host.put_event(b"after the login", "visitor:anonyme-é")
    host.put_event(b"", None)
    host.put_event(b'{"x":1}', "visitor:plain", droppable=2)
    change_body = '{"name":"Café"}'.encode()
    host.put("rest", "PUT", "/products/café-ü", change_body, "products/café", shared_key="products")
    host.ingest()

    first = host.claim("w", limit=500)
    assert body_bytes in {row.body for row in first}
    assert b"after the login" not in {row.body for row in first}  # held back by the shared key
    host.ack(row.id for row in first)
    rows = first + drain(host, owner="w")
    by_body = {row.body: row for row in rows}
    assert len(rows) == 5
    assert by_body[body_bytes].ordering_key == "visitor:zoë 🛒"
    assert by_body[b"after the login"].ordering_key == "visitor:anonyme-é"
    assert before <= by_body[body_bytes].created_at <= time.time()
    assert by_body[b""].ordering_key is None
    assert by_body[b'{"x":1}'].ordering_key == "visitor:plain"
    change = by_body[change_body]
    assert (change.kind, change.method, change.path, change.ordering_key) == (
        "rest", "PUT", "/products/café-ü", "products/café"
    )
    assert all(row.attempts == 1 for row in rows)


def test_an_erasure_on_one_host_drops_what_another_host_still_journals(make_redis_outbox: MakeHost) -> None:
    host_a, host_b = make_redis_outbox("a"), make_redis_outbox("b")
    host_b.put_event(body("u1", 0), "visitor:u1")  # journaled on b, not forwarded yet
    host_a.put("event", "POST", "", body("u1", 1), "visitor:u1")
    host_a.put("event", "POST", "", body("u2", 0), "visitor:u2")

    assert host_a.drop_unsent(["visitor:u1"]) == 1
    host_b.ingest()

    assert [json.loads(row.body) for row in host_a.claim("w")] == [{"visitor": "u2", "seq": 0}]
    assert host_a.stats().dropped == 2


def test_a_visitor_over_their_share_loses_their_own_oldest_droppable_events(
    make_redis_outbox: MakeHost,
) -> None:
    host = make_redis_outbox("a", visitor_max=20)
    for seq in range(50):
        host.put_event(body("flood", seq), "visitor:flood", droppable=2)
    host.put_event(body("calm", 0), "visitor:calm", droppable=2)
    host.ingest()

    kept = defaultdict(list)
    for row in drain(host, owner="w"):
        kept[json.loads(row.body)["visitor"]].append(json.loads(row.body)["seq"])
    assert kept == {"flood": list(range(30, 50)), "calm": [0]}
    assert host.stats().dropped == 30


def test_put_event_keeps_the_cap_across_forwards(make_redis_outbox: MakeHost) -> None:
    host = make_redis_outbox("a", max_rows=10)
    for seq in range(10):
        host.put_event(body("v", seq), f"visitor:v{seq}")
    with pytest.raises(OutboxFullError):
        host.put_event(body("v", 10), "visitor:v10")
    host.ack(row.id for row in host.claim("w", limit=4))
    host.put_event(body("v", 11), "visitor:v11")  # room again once rows are delivered
    assert host.unfinished() == 7
    assert host.stats().refused == 1


def test_a_pause_one_worker_takes_pauses_every_host(make_redis_outbox: MakeHost) -> None:
    host_a, host_b = make_redis_outbox("a"), make_redis_outbox("b")
    assert host_b.paused_for() == 0
    host_a.pause_all(5.0)
    time.sleep(0.3)  # past the reader's cache
    assert 3.0 < host_b.paused_for() <= 5.0


@pytest.mark.usefixtures("redis_installed")
def test_while_redis_is_down_events_are_accepted_changes_refuse_clearly_and_all_flows_after(
    deliver: Callable[[RedisOutbox], DeliveryWorker], sink: Sink, tmp_path: Path
) -> None:
    redis_server = RedisServer(append_only=True).start()  # appendfsync always: a restart loses nothing
    host = RedisOutbox(connect(redis_server.url, timeout=5.0), journal=tmp_path / "intake")
    try:
        outage(host, redis_server, deliver, sink)
    finally:
        host.close()
        redis_server.close()


def outage(
    host: RedisOutbox, redis_server: RedisServer, deliver: Callable[[RedisOutbox], DeliveryWorker], sink: Sink
) -> None:
    host.put("rest", "PUT", "/products/p1", b'{"n":0}', "products/p1")
    redis_server.stop()

    started = time.monotonic()
    for seq in range(200):
        assert host.put_event(body("v1", seq), "visitor:v1") is None
    assert time.monotonic() - started < 10  # never waits on Redis (a generous bound)
    with pytest.raises(OutboxUnavailableError, match="DATACUE_OUTBOX_URL"):
        host.put("rest", "PUT", "/products/p1", b'{"n":1}', "products/p1")
    assert host.ingest() == 0  # quietly: the events wait in the journal
    worker = deliver(host)
    time.sleep(0.3)  # the worker meets the outage and keeps going

    redis_server.start()
    wait_for(lambda: len(sink.received()) == 201)
    assert events_by_visitor(sink) == {"v1": list(range(200))}
    assert [r.body for r in sink.received("PUT")] == [b'{"n":0}']  # the refused change never went
    assert worker.running
