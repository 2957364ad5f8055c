"""The transport against a real loopback server: signing, retries, typed errors, no secret leaks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.loopback import free_port
from benchmarks.sink import API_KEY, API_SECRET, Answer, Sink, answers
from cue_front import signing
from cue_front.encoding import MAX_BODY_BYTES, encode_json
from cue_front.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NetworkError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
)
from cue_front.transport import Transport, user_agent


def make_transport(sink: Sink, **options: object) -> Transport:
    settings: dict[str, object] = {
        "api_url": sink.url,
        "events_url": sink.events_url,
        "retries": 2,
        "backoff_factor": 0.0,
        "backoff_jitter": 0.0,
    }
    settings.update(options)
    return Transport(API_KEY, API_SECRET, **settings)  # type: ignore[arg-type]


@pytest.fixture
def transport(sink: Sink) -> Iterator[Transport]:
    with make_transport(sink) as made:
        yield made


def test_encode_json_is_compact_utf8() -> None:
    assert encode_json({"name": "Jeans ñ", "price": 9.5}) == '{"name":"Jeans ñ","price":9.5}'.encode()


def test_encode_json_still_names_a_reference_cycle() -> None:
    looped: dict[str, Any] = {"name": "Jeans"}
    looped["self"] = [looped]
    with pytest.raises(ValueError, match="Circular reference detected") as caught:
        encode_json({"batch": [looped]})
    assert caught.value.__context__ is None  # not reported as "during handling of a RecursionError"
    shared = {"product_id": "p1"}  # the same object twice is no cycle
    assert encode_json([shared, shared]) == b'[{"product_id":"p1"},{"product_id":"p1"}]'


def test_exact_bytes_are_signed_and_sent(sink: Sink, transport: Transport) -> None:
    body = encode_json({"user_id": "u1", "first_name": "Spongebob"})
    reply = transport.send("POST", "/users", body)

    assert reply.status == 201
    (request,) = sink.received()
    assert (request.method, request.path, request.body) == ("POST", "/v1/users", body)
    assert request.signature_ok
    credentials = signing.parse_basic(request.headers["Authorization"])
    assert credentials == (API_KEY, signing.sign(body, API_SECRET))
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == user_agent()
    assert user_agent().startswith("cue-front/")


def test_get_signs_the_empty_body(sink: Sink, transport: Transport) -> None:
    transport.send("GET", "/overview")
    (request,) = sink.received()
    assert request.body == b""
    assert request.signature_ok
    assert "Content-Type" not in request.headers


def test_events_use_the_key_only(sink: Sink, transport: Transport) -> None:
    body = encode_json({"user": {"user_id": "u1"}, "event": {"type": "login"}})
    transport.send_event(body)
    (request,) = sink.received()
    assert request.path == "/events/"
    assert request.signature_ok
    assert signing.parse_basic(request.headers["Authorization"]) == (API_KEY, "")


def test_503_503_200_is_one_success_with_the_same_signed_bytes(sink: Sink, transport: Transport) -> None:
    sink.script("POST", "/v1/batch/products", *answers(503, 2), Answer(201))
    body = encode_json({"batch": [{"product_id": "p1"}]})

    reply = transport.send("POST", "/batch/products", body)

    assert reply.status == 201
    attempts = sink.received()
    assert len(attempts) == 3
    assert {a.body for a in attempts} == {body}
    assert len({a.headers["Authorization"] for a in attempts}) == 1
    assert all(a.signature_ok for a in attempts)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (413, PayloadTooLargeError),
    ],
)
def test_client_errors_are_never_retried(
    sink: Sink, transport: Transport, status: int, error_class: type[Exception]
) -> None:
    # A Retry-After must not tempt the transport either (urllib3 alone retries a 413 with one).
    sink.script("PUT", "/v1/users/u1", Answer(status, {"error": "nope"}, headers={"Retry-After": "0"}))
    with pytest.raises(error_class) as caught:
        transport.send("PUT", "/users/u1", b'{"first_name":"x"}')
    assert caught.value.status == status  # type: ignore[attr-defined]
    assert len(sink.received()) == 1


def test_bad_request_carries_the_servers_message(sink: Sink, transport: Transport) -> None:
    sink.script("POST", "/v1/orders", Answer(400, {"error": "cart[0].quantity must be > 0"}))
    with pytest.raises(BadRequestError) as caught:
        transport.send("POST", "/orders", b"{}")
    assert "cart[0].quantity must be > 0" in str(caught.value)
    assert caught.value.body == '{"error": "cart[0].quantity must be > 0"}'


def test_a_wrong_secret_is_an_authentication_error(sink: Sink) -> None:
    wrong = Transport(API_KEY, "not-the-secret", api_url=sink.url, retries=0)
    with wrong, pytest.raises(AuthenticationError):
        wrong.send("POST", "/users", b"{}")
    assert not sink.received()[0].signature_ok


def test_retry_after_is_honoured(sink: Sink, transport: Transport) -> None:
    sink.script("POST", "/v1/products", Answer(429, headers={"Retry-After": "1"}), Answer(201))
    transport.send("POST", "/products", b"{}")
    first, second = sink.received()
    assert second.received_at - first.received_at >= 0.9


def test_a_retry_after_longer_than_allowed_raises_at_once(sink: Sink) -> None:
    sink.script("POST", "/v1/products", Answer(429, headers={"Retry-After": "3600"}))
    with make_transport(sink, max_retry_after=5) as transport, pytest.raises(RateLimitError) as caught:
        transport.send("POST", "/products", b"{}")
    assert caught.value.retry_after == 3600
    assert caught.value.status == 429
    assert len(sink.received()) == 1


def test_rate_limit_after_retries(sink: Sink, transport: Transport) -> None:
    sink.fallback("POST", "/v1/products", Answer(429, headers={"Retry-After": "0"}))
    with pytest.raises(RateLimitError) as caught:
        transport.send("POST", "/products", b"{}")
    assert caught.value.retry_after == 0
    assert len(sink.received()) == 3  # the first attempt and two retries


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_after_retries(sink: Sink, transport: Transport, status: int) -> None:
    sink.fallback("DELETE", "/v1/orders/o1", Answer(status, "upstream trouble"))
    with pytest.raises(ServerError) as caught:
        transport.send("DELETE", "/orders/o1")
    assert caught.value.status == status
    assert "upstream trouble" in str(caught.value)
    assert len(sink.received()) == 3


def test_retry_false_makes_one_attempt(sink: Sink, transport: Transport) -> None:
    sink.fallback("POST", "/events/", Answer(503))
    with pytest.raises(ServerError):
        transport.send_event(b"{}", retry=False)
    assert len(sink.received()) == 1
    # ... and the retrying path is still there for the same transport.
    sink.fallback("POST", "/events/", None)
    sink.script("POST", "/events/", Answer(503))
    assert transport.send_event(b"{}").status == 201
    assert len(sink.received()) == 3


def test_connection_refused_is_a_network_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    transport = Transport(API_KEY, API_SECRET, api_url=url, retries=1, backoff_factor=0)
    with transport, pytest.raises(NetworkError) as caught:
        transport.send("GET", "/overview")
    assert "could not be reached" in str(caught.value)


def test_read_timeout_is_a_network_error(sink: Sink) -> None:
    sink.script("GET", "/v1/overview", Answer(200, {}, delay=5), Answer(200, {}, delay=5))
    with make_transport(sink, timeout=(1.0, 0.2), retries=1) as transport, pytest.raises(NetworkError):
        transport.send("GET", "/overview")
    assert len(sink.received()) == 2  # read errors are retried too: the API upserts


def test_a_body_over_5_mib_is_refused_before_sending(sink: Sink, transport: Transport) -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        transport.send("POST", "/batch/products", b"x" * (MAX_BODY_BYTES + 1))
    assert caught.value.status is None
    assert sink.received() == []
    transport.send("POST", "/batch/products", b"x" * MAX_BODY_BYTES)  # the limit itself is fine
    assert len(sink.received()) == 1


def test_rest_calls_need_the_secret(sink: Sink) -> None:
    with Transport(API_KEY, None, api_url=sink.url, events_url=sink.events_url) as keyless:
        keyless.send_event(b"{}")  # events need the key only
        with pytest.raises(ConfigurationError, match="DATACUE_API_SECRET"):
            keyless.send("GET", "/overview")


def test_the_secret_never_shows(sink: Sink, transport: Transport, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink.fallback("POST", "/v1/products", Answer(401, {"error": "bad signature"}))
    seen = [repr(transport), str(vars(transport).get("api_key"))]
    too_large = b"x" * (MAX_BODY_BYTES + 1)
    for call, error, message in (
        (lambda: transport.send("POST", "/products", b"{}"), AuthenticationError, r"credentials .*\(401\)"),
        (lambda: transport.send("POST", "/products", too_large), PayloadTooLargeError, "accepts at most"),
    ):
        with pytest.raises(error, match=message) as caught:
            call()
        seen += [str(caught.value), repr(caught.value), str(caught.value.args)]
    with Transport(API_KEY, API_SECRET, api_url=f"http://127.0.0.1:{free_port()}/v1", retries=0) as t:
        with pytest.raises(NetworkError) as refused:
            t.send("GET", "/overview")
        seen += [str(refused.value), repr(t)]
    seen += [record.getMessage() for record in caplog.records]
    assert not [text for text in seen if API_SECRET in text]


def test_a_forked_child_opens_connections_of_its_own() -> None:
    """gunicorn forks workers after the app (and its transport) exists: no socket may be shared."""
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    client_ports: list[int] = []

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            client_ports.append(self.client_address[1])
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    transport = Transport("k", "s", api_url=f"http://127.0.0.1:{server.server_address[1]}/v1")
    try:
        transport.send("GET", "/overview")
        pid = os.fork()
        if pid == 0:  # the child: one request, then out without the parent's cleanup
            try:
                transport.send("GET", "/overview")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        transport.send("GET", "/overview")
    finally:
        transport.close()
        server.shutdown()
        server.server_close()
    parent_first, child, parent_again = client_ports
    assert child != parent_first  # the child connected anew...
    assert parent_again == parent_first  # ...and the parent's kept-alive connection is still its own
