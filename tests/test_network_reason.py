"""One wording for a DataCue that cannot be reached, in the transport and on the delivery loop:
the innermost reason, whether the chain links by ``reason``, ``__cause__`` or ``__context__``."""

from __future__ import annotations

import socket
import time

from cue_front.outbox.exchange import Exchange, Failure, Origin, Resolver
from cue_front.transport import network_reason, unreachable_message


def test_the_reason_is_the_innermost_cause_however_it_is_linked() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    by_cause = RuntimeError("wrapped")
    by_cause.__cause__ = refused
    by_context = OSError("while handling")
    by_context.__context__ = by_cause
    assert network_reason(by_cause) == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert network_reason(by_context) == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert network_reason(TimeoutError()) == "TimeoutError"
    assert unreachable_message("POST", "https://events.example/", by_cause) == (
        "POST https://events.example/: DataCue could not be reached"
        " (ConnectionRefusedError: [Errno 111] Connection refused)"
    )


def test_the_delivery_loop_words_a_refused_connection_as_the_transport_does() -> None:
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/events/"
    origin = Origin("http", "127.0.0.1", port)
    exchange = Exchange(
        origin, "POST", url, b"", connect_timeout=1.0, read_timeout=1.0, until=1e12, tls=None
    )
    exchange.start(0.0, None, Resolver())
    for _ in range(100):
        if isinstance(exchange.result, Failure):
            break
        time.sleep(0.01)
        exchange.ready(0.0)
    assert isinstance(exchange.result, Failure)
    assert exchange.result.message.startswith(f"POST {url}: DataCue could not be reached (")
    assert "Connection refused" in exchange.result.message
