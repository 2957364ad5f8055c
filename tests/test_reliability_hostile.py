"""Hostile requests to the first-party endpoint: never a 5xx, never an invalid or spoofed event forwarded.

Over 5,000 generated requests (hypothesis, through the Flask test client):
malformed JSON, wrong types, huge bodies, deep nesting, unicode edge cases,
spoofed identities and cross-origin posts. The shop forwards synchronously
(``DATACUE_DELIVERY="sync"``) to the emulator, which validates every envelope
with the shared schema; after each request the test looks at what reached it.
An event that reaches DataCue must be the valid event that was posted,
carried by the identity the server decided (the signed anonymous cookie, the
logged-in user from the loader), with the server's context and time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cue_front import ValidationError, schema, track
from cue_front.emulator import RunningEmulator
from cue_front.identity import current_anonymous_id
from tests.support.samples import DOCUMENTED_EVENTS
from tests.support.shops import session_login_shop

SITE = "http://localhost"
COOKIE = "datacue_anonymous_id"
MAX_BYTES = 16 * 1024

#: The examples each property runs; together at least 5,000 requests.
EXAMPLES = {
    "malformed": 1100,
    "types": 1300,
    "identities": 1000,
    "origins": 900,
    "huge": 150,
    "unicode": 800,
}
assert sum(EXAMPLES.values()) >= 5000

HYPOTHESIS = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
    "database": None,  # the same generated requests on every run, wherever it runs
    "derandomize": True,
}


# -- the shop and what reaches DataCue ----------------------------------------------------------


@pytest.fixture
def shop(make_app: Callable[..., Flask], emulator: RunningEmulator) -> Flask:
    app = session_login_shop(make_app, emulator, DATACUE_PROXY_RATE_LIMIT="1000000/minute")

    @app.get("/whoami")
    def whoami() -> str:
        return current_anonymous_id() or ""

    return app


@dataclass
class Visitor:
    """A browser as the server knows it: its cookies, and the identity the server gave it."""

    client: FlaskClient
    anonymous_id: str
    user_id: str | None = None

    @property
    def user(self) -> dict[str, str]:
        user = {"anonymous_id": self.anonymous_id}
        if self.user_id is not None:
            user["user_id"] = self.user_id
        return user


def new_visitor(shop: Flask, user_id: str | None = None) -> Visitor:
    client = shop.test_client()
    anonymous_id = client.get("/whoami").get_data(as_text=True)
    if user_id is not None:
        with client.session_transaction() as browser_session:
            browser_session["user_id"] = user_id
    return Visitor(client, anonymous_id, user_id)


@dataclass
class Sent:
    """One hostile request: the raw body and headers, and the event as posted if it was JSON."""

    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=lambda: {"Origin": SITE})
    event: Any = None  # the posted "event" member, when the body is a JSON object that has one


class Watch:
    """Sends hostile requests and checks, after each, what the emulator received."""

    def __init__(self, shop: Flask, emulator: RunningEmulator) -> None:
        self.shop = shop
        self.emulator = emulator
        self.requests = 0
        self.forwarded = 0
        self.statuses: dict[int, int] = {}
        self._last_seen = self._newest()

    def _newest(self) -> int:
        newest = self.emulator.state.journal_items("event", limit=1)
        return int(newest[0]["id"]) if newest else 0

    def send(self, visitor: Visitor, sent: Sent) -> int:
        response = visitor.client.post(
            "/datacue/events", data=sent.body, content_type=sent.content_type, headers=sent.headers
        )
        self.requests += 1
        status = response.status_code
        self.statuses[status] = self.statuses.get(status, 0) + 1
        assert status < 500, (status, response.get_data(as_text=True)[:500], sent)
        if status < 400:
            assert response.status_code in (200, 204)
        else:
            assert "error" in (response.get_json(silent=True) or {}), response.get_data()[:300]
        arrived = self._arrived()
        if status >= 400:
            assert arrived == [], (status, sent, arrived)
            return status
        (item,) = arrived  # exactly one event per accepted request
        self.forwarded += 1
        self.check_forwarded(visitor, sent, item)
        return status

    def _arrived(self) -> list[dict[str, Any]]:
        items = [
            item
            for item in self.emulator.state.journal_items("event", limit=5)
            if item["id"] > self._last_seen
        ]
        if items:
            self._last_seen = max(item["id"] for item in items)
        return items

    def check_forwarded(self, visitor: Visitor, sent: Sent, item: dict[str, Any]) -> None:
        # The emulator validated it with the shared schema: a 2xx says it was valid.
        assert item["status"] in (200, 204), item
        envelope = item["body"]
        schema.validate(schema.EVENT_ENVELOPE, envelope)
        # The event is the one posted (normalized), nothing added, nothing lost.
        assert envelope["event"] == schema.validate(schema.EVENT, sent.event)
        # Identity, context and time are the server's, whatever the body claimed.
        if visitor.anonymous_id == "":  # a forged cookie was replaced during this request
            visitor.anonymous_id = visitor.client.get("/whoami").get_data(as_text=True)
        assert envelope["user"] == visitor.user, (envelope["user"], visitor.user, sent)
        assert envelope["context"]["ip"] == "127.0.0.1"
        if sent.headers.get("User-Agent"):
            assert envelope["context"]["user_agent"] == sent.headers["User-Agent"]
        sent_at = datetime.strptime(envelope["timestamp"], "%Y-%m-%d %H:%M:%S.%fZ").replace(
            tzinfo=timezone.utc
        )
        assert abs(datetime.now(timezone.utc) - sent_at) < timedelta(minutes=5)


@pytest.fixture
def watch(shop: Flask, emulator: RunningEmulator) -> Iterator[Watch]:
    yield Watch(shop, emulator)


# -- strategies ---------------------------------------------------------------------------------

#: The guide's events as this shop's own pages post them: the endpoint takes cart links to this
#: site only (the guide's sample links to https://myshop.com).
SITE_EVENTS = [
    {**event, "cart_link": f"{SITE}/cart/123"} if "://" in event.get("cart_link", "") else event
    for event in DOCUMENTED_EVENTS
]
valid_events = st.sampled_from(SITE_EVENTS)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "0", "-1", "1e999", "null", "true", "p1", "home", "pageview", "\x00", "\u2028"]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def dumps(value: Any) -> bytes:
    """JSON as a careless (or hostile) client writes it: NaN and Infinity included, non-ASCII raw."""
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def event_body(event: Any, **members: Any) -> Sent:
    return Sent(dumps({"event": event, **members}), event=event)


# -- the properties -----------------------------------------------------------------------------


def test_malformed_bodies_get_a_4xx_and_forward_nothing_invalid(shop: Flask, watch: Watch) -> None:
    visitor = new_visitor(shop)
    edits = st.tuples(st.integers(0, 400), st.integers(0, 3), st.text(max_size=3))
    content_types = st.sampled_from(
        ["application/json"] * 6
        + [
            "application/json; charset=utf-16",
            "text/plain",
            "",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json-patch+json",
            "APPLICATION/JSON",
        ]
    )
    bodies = st.one_of(
        st.binary(max_size=300),
        st.sampled_from(
            [
                b"",
                b"{",
                b"}",
                b"[]",
                b"null",
                b"0",
                b'"event"',
                b"{}",
                b'{"event": null}',
                b"\xef\xbb\xbf{}",
                b'{"event": {"type": "login"}',
                b'{"event": {"type": "login"}}}',
                b'{"event": {"type": "log\\in"}}',
                b'{"event": {"type": "login", }}',
                b"{'event': {'type': 'login'}}",
                b'{"event": NaN}',
                b'{"event": {"type": "search", "term": "\\ud800"}}',
                b'{"event": {"type": "search", "term": "\\u12"}}',
                b'{"event": {"type": "login"}, "event": 5}',
                b'\x00{"event": {"type": "login"}}',
            ]
        ),
    )

    @settings(max_examples=EXAMPLES["malformed"], **HYPOTHESIS)
    @given(
        data=st.data(),
        event=valid_events,
        raw=bodies,
        content_type=content_types,
        mode=st.sampled_from(["raw", "edited", "truncated"]),
    )
    def run(data: st.DataObject, event: dict[str, Any], raw: bytes, content_type: str, mode: str) -> None:
        text = dumps({"event": event}).decode()
        if mode == "raw":
            body = raw
        elif mode == "truncated":
            body = text[: data.draw(st.integers(0, max(0, len(text) - 1)))].encode()
        else:
            for position, cut, insert in data.draw(st.lists(edits, min_size=1, max_size=4)):
                position %= len(text) + 1
                text = text[:position] + insert + text[position + cut :]
            body = text.encode("utf-8", "surrogatepass")
        sent = Sent(body, content_type)
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            sent.event = parsed.get("event")
        watch.send(visitor, sent)

    run()
    assert watch.requests >= EXAMPLES["malformed"]


def test_wrong_types_anywhere_in_an_event_are_refused_or_valid(shop: Flask, watch: Watch) -> None:
    visitor = new_visitor(shop, user_id="u-types")
    visitor_anonymous = new_visitor(shop)

    @settings(max_examples=EXAMPLES["types"], **HYPOTHESIS)
    @given(data=st.data(), event=valid_events, logged_in=st.booleans())
    def run(data: st.DataObject, event: dict[str, Any], logged_in: bool) -> None:
        mutated = json.loads(json.dumps(event))
        for _ in range(data.draw(st.integers(1, 3))):
            mutate(data, mutated)
        body = data.draw(st.sampled_from(["event", "bare", "array"]))
        if body == "event":
            sent = event_body(mutated)
        elif body == "bare":  # the event without its wrapper
            sent = Sent(dumps(mutated), event=None)
        else:
            sent = Sent(dumps([{"event": mutated}]), event=None)
        watch.send(visitor if logged_in else visitor_anonymous, sent)

    def mutate(data: st.DataObject, event: Any) -> None:
        """Replace, drop or add a member somewhere in the event (cart lines included)."""
        targets = [event]
        for line in (
            event.get("cart", []) if isinstance(event, dict) and isinstance(event.get("cart"), list) else []
        ):
            if isinstance(line, dict):
                targets.append(line)
        if isinstance(event, dict) and isinstance(event.get("cart"), list):
            targets.append(event["cart"])
        target = data.draw(st.sampled_from(targets))
        if isinstance(target, list):
            target.append(data.draw(json_values))
            return
        action = data.draw(st.sampled_from(["replace", "drop", "add"]))
        keys = sorted(target)
        if action == "add" or not keys:
            target[data.draw(st.text(max_size=12))] = data.draw(json_values)
        elif action == "drop":
            del target[data.draw(st.sampled_from(keys))]
        else:
            target[data.draw(st.sampled_from(keys))] = data.draw(json_values)

    run()
    assert watch.requests >= EXAMPLES["types"]


spoofed_users = st.one_of(
    st.fixed_dictionaries(
        {"user_id": st.sampled_from(["victim", "admin", "1", "u-other"]) | json_values},
        optional={"anonymous_id": json_values, "profile": json_values},
    ),
    json_values,
)
#: What a real server can hand a WSGI app as a header value: latin-1, no line breaks.
header_text = st.text(st.characters(max_codepoint=255, blacklist_characters="\r\n"), max_size=40)
hostile_cookies = st.one_of(
    header_text,
    st.sampled_from(["", "victim", "victim.forged-signature", "a" * 4000, "\u2028", "x.y.z", "=;,"]),
)


def test_spoofed_identities_are_replaced_by_the_servers(shop: Flask, watch: Watch) -> None:
    @settings(max_examples=EXAMPLES["identities"], **HYPOTHESIS)
    @given(
        event=valid_events,
        user=st.none() | spoofed_users,
        context=st.none() | json_values | st.fixed_dictionaries({"ip": st.just("6.6.6.6")}),
        timestamp=st.none() | st.just("2001-01-01 00:00:00Z") | json_values,
        who=st.sampled_from(["anonymous", "logged in", "forged cookie", "no cookie"]),
        cookie=hostile_cookies,
        user_agent=header_text,
    )
    def run(
        event: dict[str, Any],
        user: Any,
        context: Any,
        timestamp: Any,
        who: str,
        cookie: str,
        user_agent: str,
    ) -> None:
        visitor = new_visitor(shop, user_id="u-real" if who == "logged in" else None)
        if who in ("forged cookie", "no cookie"):
            visitor.client.delete_cookie(COOKIE)
            if who == "forged cookie":
                visitor.client.set_cookie(COOKIE, cookie)
            visitor.anonymous_id = ""  # the server will decide; looked up after the request
        members = {
            name: value
            for name, value in (("user", user), ("context", context), ("timestamp", timestamp))
            if value is not None
        }
        sent = event_body(event, **members)
        sent.headers["User-Agent"] = user_agent
        status = watch.send(visitor, sent)
        assert status in (200, 204)  # a valid event from this site: accepted, identity replaced

    run()
    assert watch.requests >= EXAMPLES["identities"]


SAME_ORIGIN = ["http://localhost", "http://LOCALHOST", "HTTP://localhost", "http://localhost/"]
SAME_ORIGIN_REFERERS = ["http://localhost/", "http://localhost/cart?x=1", "http://localhost/p/1#top"]


def same_origin(value: str) -> bool:
    """A same-site Origin or Referer, by construction: the spellings of http://localhost above."""
    return value in SAME_ORIGIN or value in SAME_ORIGIN_REFERERS


hostile_origins = st.one_of(
    st.sampled_from(
        [
            "null",
            "",
            " ",
            "https://localhost",
            "http://localhost:80",
            "http://localhost:5000",
            "http://localhost.evil.example",
            "http://evil.example",
            "http://evil.example/http://localhost",
            "http://localhost@evil.example",
            "http://evil.example#@localhost",
            "//localhost",
            "localhost",
            "http:/localhost",
            "http://[::1",
            "http://[localhost]",
            "http://127.0.0.1",
            "ftp://localhost",
            "javascript:alert(1)",
            "http://localhost\x00.evil.example",
            "http://locaIhost",
            "http://xn--lcalhost",
            "file:///etc/passwd",
            "data:text/html,<script>",
            "http://localhost%2eevil.example",
        ]
    ),
    st.builds(
        lambda scheme, host, port: f"{scheme}://{host}{port}",
        st.sampled_from(["http", "https", "ws", "HTTPS", ""]),
        st.sampled_from(["localhost", "evil.example", "localhost.evil", "127.0.0.1", "LOCALHOST", "[::1]"]),
        st.sampled_from(["", ":80", ":443", ":8080", ":0", ":99999", ":x"]),
    ).filter(lambda origin: origin.lower() not in ("http://localhost",)),
    header_text.filter(lambda text: not same_origin(text)),
)


def test_cross_origin_posts_are_refused(shop: Flask, watch: Watch) -> None:
    visitor = new_visitor(shop)

    @settings(max_examples=EXAMPLES["origins"], **HYPOTHESIS)
    @given(
        event=valid_events,
        origin=st.none() | hostile_origins | st.sampled_from(SAME_ORIGIN),
        referer=st.none() | hostile_origins | st.sampled_from(SAME_ORIGIN_REFERERS),
    )
    def run(event: dict[str, Any], origin: str | None, referer: str | None) -> None:
        headers = {}
        if origin is not None:
            headers["Origin"] = origin
        if referer is not None:
            headers["Referer"] = referer
        sent = event_body(event)
        sent.headers = headers
        # Origin decides when the browser sent one; Referer only without it.
        claimed = origin or referer
        status = watch.send(visitor, sent)
        if claimed is not None and same_origin(claimed):
            assert status in (200, 204)
        else:
            assert status == 403

    run()
    assert watch.requests >= EXAMPLES["origins"]


def nested(depth: int, kind: str) -> str:
    opening, closing = {"list": ("[", "]"), "object": ('{"a":', "}")}[kind]
    return opening * depth + ("1" if kind == "object" else "") + closing * depth


def test_huge_bodies_and_deep_nesting_are_refused(shop: Flask, watch: Watch) -> None:
    visitor = new_visitor(shop)
    # Where the nesting goes; the members the server ignores ("user") leave a valid login event.
    places = [
        ('{"event": %s}', None),
        ('{"event": {"type": "login", "extra": %s}}', None),
        ('{"event": {"type": "cart", "subtype": "update", "cart_link": "/c", "cart": [%s]}}', None),
        ("%s", None),
        ('{"event": {"type": "login"}, "user": %s}', {"type": "login"}),
        ('{"event": {"type": "login"}, "user": {"anonymous_id": "a", "profile": %s}}', {"type": "login"}),
    ]

    @settings(max_examples=EXAMPLES["huge"], **HYPOTHESIS)
    @given(
        kind=st.sampled_from(["huge", "deep list", "deep object", "wide"]),
        size=st.integers(MAX_BYTES + 1, 4 * MAX_BYTES) | st.sampled_from([1024 * 1024, 5 * 1024 * 1024 + 1]),
        depth=st.integers(1, 8000),
        place=st.sampled_from(places),
    )
    def run(kind: str, size: int, depth: int, place: tuple[str, dict[str, str] | None]) -> None:
        template, event = place
        if kind == "huge":
            body = json.dumps({"event": {"type": "search", "term": "x" * size}}).encode()
        elif kind == "wide":  # many members, as many as fit in the body
            keys = min(size, 4 * MAX_BYTES) // 12
            body = json.dumps({"event": {"type": "login", **{f"k{n}": n for n in range(keys)}}}).encode()
        else:
            body = (template % nested(depth, kind.split()[1])).encode()
        status = watch.send(visitor, Sent(body, event=event if kind.startswith("deep") else None))
        if len(body) > MAX_BYTES:
            assert status == 413
        elif event is None or kind not in ("deep list", "deep object"):
            assert status == 400

    run()
    assert watch.requests >= EXAMPLES["huge"]


UNICODE_EDGES = [
    "\ud800",
    "\udfff",
    "\ud83d",
    "\ufffe",
    "\uffff",
    "\ufeff",
    "\u202e",
    "\u200d",
    "\u2028",
    "\u2029",
    "\x00",
    "\x7f",
    "\u0301",
    "e\u0301",
    "\U0001f600",
    "\U0010ffff",
    "\u00e9",
    "\uff1c\uff1e",
    "</script>",
    "\r\n",
    "\t",
    "\\",
    '"',
    "A" * 1000,
    "\u0000\u0000",
    "\U000e0001",
    "\u115f",
    "\ud83d\ude00",
]
edge_text = st.lists(
    st.one_of(st.sampled_from(UNICODE_EDGES), st.text(max_size=5)), min_size=1, max_size=5
).map("".join)


def test_unicode_edge_cases_are_forwarded_intact_or_refused(shop: Flask, watch: Watch) -> None:
    visitor = new_visitor(shop, user_id="u-unicode")

    @settings(max_examples=EXAMPLES["unicode"], **HYPOTHESIS)
    @given(
        event=valid_events,
        text=edge_text,
        where=st.sampled_from(["string field", "id field", "cart line"]),
        raw_bytes=st.sampled_from([None, b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff\xfe"]),
    )
    def run(event: dict[str, Any], text: str, where: str, raw_bytes: bytes | None) -> None:
        posted = json.loads(json.dumps(event))
        fields = [
            name
            for name, value in posted.items()
            if isinstance(value, str)
            and name not in ("type", "subtype")
            and (where == "string field") == (name in ("term", "category_name", "cart_link"))
        ]
        if where == "cart line" and posted.get("cart"):
            posted["cart"][0]["product_id"] = text
        elif fields:
            posted[fields[0]] = text
        else:
            posted["term"] = text  # an unknown field on this event: refused
        body = dumps({"event": posted})
        if raw_bytes is not None:  # invalid UTF-8 (overlong, surrogate, past U+10FFFF, UTF-16) in a string
            body = body.replace(b'"type": "', b'"type": "' + raw_bytes, 1)
        sent = Sent(body, event=posted)
        status = watch.send(visitor, sent)
        if raw_bytes is not None or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            assert status == 400  # not valid UTF-8 / not valid Unicode: nothing to forward

    run()
    assert watch.requests >= EXAMPLES["unicode"]


def test_nothing_but_nan_or_infinity_slips_through_numbers(shop: Flask, watch: Watch) -> None:
    """A number DataCue would refuse (NaN, Infinity, 1e999) is refused here, with the field named."""
    visitor = new_visitor(shop)
    for number in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = (
            '{"event": {"type": "cart", "subtype": "update", "cart_link": "/c", "cart": [{"product_id": "p1",'
            f' "variant_id": "v1", "quantity": 1, "unit_price": {number}}}]}}}}'
        ).encode()
        status = watch.send(visitor, Sent(body))
        assert status == 400


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_a_lone_surrogate_from_a_json_api_is_refused_as_invalid_data(
    make_app: Callable[..., Flask], emulator: RunningEmulator, strict: bool
) -> None:
    """Shop code gets lone surrogates from any JSON body (``"\\ud800"``); track() must treat them as bad
    data (strict: ValidationError naming the field; lenient: logged, refused), never break the page."""
    app = make_app(DATACUE_DELIVERY="outbox", DATACUE_STRICT=strict, **emulator.config)
    outcomes: list[Any] = []

    @app.post("/search")
    def search() -> str:
        term = (request.get_json() or {})["term"]  # what a JSON search API hands the view
        try:
            outcomes.append(track({"type": "search", "term": term}))
        except Exception as error:  # the test looks at what track() raised
            outcomes.append(error)
        return "results"

    response = app.test_client().post(
        "/search", data='{"term": "sofa\\ud800"}', content_type="application/json"
    )
    assert response.status_code == 200
    (outcome,) = outcomes
    if strict:
        assert isinstance(outcome, ValidationError) and "event.term" in str(outcome)
    else:
        assert outcome is False
    assert app.extensions["datacue"].outbox.unfinished() == 0  # nothing unsendable was queued


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"event": {"type": "login"}}', {"Origin": "http://[::1"}, 403),
        (b'{"event": {"type": "login"}}', {"Referer": "http://[localhost/cart"}, 403),
        (b'{"event": ' + b"[" * 5000 + b"]" * 5000 + b"}", {"Origin": SITE}, 400),
        (
            b'{"event": {"type": "login", "x": ' + b'{"a":' * 2000 + b"1" + b"}" * 2000 + b"}}",
            {"Origin": SITE},
            400,
        ),
        (b'{"event": {"type": "search", "term": "sofa\\ud800"}}', {"Origin": SITE}, 400),
        (
            b'{"event": {"type": "wishlist", "subtype": "add", "product_id": "\\udfff"}}',
            {"Origin": SITE},
            400,
        ),
    ],
    ids=[
        "origin-not-a-url",
        "referer-not-a-url",
        "deep-list",
        "deep-object",
        "lone-surrogate",
        "lone-surrogate-id",
    ],
)
def test_requests_that_made_the_endpoint_fail_get_a_4xx(
    shop: Flask, watch: Watch, body: bytes, headers: dict[str, str], status: int
) -> None:
    """The generated requests above found these: each was answered 500 (an uncaught exception)."""
    assert watch.send(new_visitor(shop), Sent(body, headers=headers)) == status
