"""The pause is kept by the outbox alone: a worker holds back while any worker sharing the outbox
paused delivery (another host, with Redis), starts again as that pause ends, and logs only the
pauses it takes itself."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from benchmarks.sink import API_KEY, API_SECRET, Sink
from cue_front.outbox import DeliveryWorker
from cue_front.outbox.redis import RedisOutbox
from cue_front.redis_store import connect
from cue_front.transport import Transport
from tests.support.outbox_process import event_body
from tests.support.waiting import wait_for


def test_a_pause_another_host_took_holds_this_worker_back_until_it_ends(
    redis_url: str, tmp_path: Path, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    host_a = RedisOutbox(connect(redis_url, timeout=5.0), journal=tmp_path / "a" / "intake")
    host_b = RedisOutbox(connect(redis_url, timeout=5.0), journal=tmp_path / "b" / "intake")
    transport = Transport(API_KEY, API_SECRET, api_url=sink.url, events_url=sink.events_url)
    worker = DeliveryWorker(host_b, transport, idle_interval=0.05)
    try:
        host_a.pause_all(1.5)  # host a saw DataCue fail
        paused_at = time.monotonic()
        for seq in range(5):
            host_b.put("event", "POST", "", event_body(seq, f"v{seq}"), f"visitor:v{seq}")
        with caplog.at_level(logging.INFO, logger="cue_front.outbox"):
            worker.ensure_running()
            time.sleep(1.0)
            assert sink.received() == []  # held back by host a's pause
            wait_for(lambda: len(sink.received("POST", "/events/")) == 5, seconds=10)
            assert time.monotonic() - paused_at >= 1.4
            time.sleep(0.5)
        assert [r.message for r in caplog.records if "pausing delivery" in r.getMessage()] == []
    finally:
        worker.stop()
        transport.close()
        host_a.close()
        host_b.close()
