"""Every ``DATACUE_*`` configuration name with its default, in one place (``init_app`` copies them in).

Values of ``None`` marked "derived" are filled in by ``init_app`` from the app itself.
"""

from __future__ import annotations

from typing import Any, Final

#: DataCue's REST API and events endpoint.
DEFAULT_API_URL: Final = "https://api.datacue.co/v1"
DEFAULT_EVENTS_URL: Final = "https://events.datacue.co/"
#: HTTP timeouts in seconds, (connect, read), and how many times a failed request is retried.
DEFAULT_TIMEOUT: Final = (3.05, 10.0)
DEFAULT_RETRIES: Final = 3
#: Seconds a stopping process may spend delivering (``DATACUE_SHUTDOWN_GRACE``): well under the
#: 30 s that Heroku and Kubernetes wait between SIGTERM and SIGKILL.
DEFAULT_SHUTDOWN_GRACE: Final = 10.0
#: Parts of a Redis outbox's queue (``DATACUE_OUTBOX_PARTITIONS``): the most workers that share the work.
DEFAULT_PARTITIONS: Final = 16

#: DataCue's two loader scripts, in the documented order (the config first).
DATACUE_CDN_SCRIPTS = (
    "https://cdn.datacue.co/js/datacue.js",
    "https://cdn.datacue.co/js/datacue-storefront.js",
)

DEFAULTS: dict[str, Any] = {
    # Public key: goes into pages and events. Required; init_app refuses to start without it.
    "DATACUE_API_KEY": None,
    # Signs REST calls. Never rendered, logged or put in an exception message.
    "DATACUE_API_SECRET": None,
    "DATACUE_API_URL": DEFAULT_API_URL,
    "DATACUE_EVENTS_URL": DEFAULT_EVENTS_URL,
    "DATACUE_SCRIPT_URLS": DATACUE_CDN_SCRIPTS,
    # Where the blueprint (first-party events endpoint, static files) mounts.
    "DATACUE_URL_PREFIX": "/datacue",
    # Raise on invalid page data instead of logging and omitting it. Derived: app.debug or app.testing.
    "DATACUE_STRICT": None,
    # "inline": the config is an inline script. "json": a data island plus a static loader
    # script, for a Content-Security-Policy without 'unsafe-inline'.
    "DATACUE_CONFIG_MODE": "inline",
    # "outbox" (durable, background), "sync" (inline, raises) or "off" (validate and discard).
    "DATACUE_DELIVERY": "outbox",
    # Derived: <instance_path>/datacue-outbox.sqlite3 (and its event journal beside it, in a
    # folder named like the file plus ".intake"; see docs/delivery.md). Keep it on a local disk.
    "DATACUE_OUTBOX_PATH": None,
    # A Redis (or Valkey) shared by every host of the shop: redis://[:password@]host:6379/0,
    # rediss://... (TLS) or unix:///path/redis.sock (needs cue-front[redis]). None: one SQLite
    # outbox per host (DATACUE_OUTBOX_PATH). With it, the outbox lives in that Redis too (every
    # host's events and store changes in one queue, workers on any host share it); each host's
    # events still go through its own intake journal first (beside DATACUE_OUTBOX_PATH).
    # Besides, the rate limits' counts and the SSR recommendation cache are shared there
    # (docs/redis.md). Its maxmemory-policy must be noeviction or volatile-*: init_app refuses
    # one that evicts any key.
    # sqlite:///path names the SQLite outbox's file instead (what DATACUE_OUTBOX_PATH names).
    "DATACUE_OUTBOX_URL": None,
    # With a Redis outbox: the parts its queue is split into, each drained by one worker at a time
    # (the most delivery workers that share the work). Every host must agree on it.
    "DATACUE_OUTBOX_PARTITIONS": DEFAULT_PARTITIONS,
    "DATACUE_OUTBOX_MAX_ROWS": 100_000,
    # The most unsent events one visitor may hold; past it their oldest page views, searches,
    # clicks and wishlist changes go first, then cart updates a newer one supersedes (all
    # counted); never a login, a checkout or another visitor's events.
    # Derived: 1% of DATACUE_OUTBOX_MAX_ROWS, at least 20.
    "DATACUE_OUTBOX_VISITOR_MAX": None,
    # Store changes (queued REST writes) held beyond DATACUE_OUTBOX_MAX_ROWS before a new one
    # is refused at the call, loudly (OutboxFullError, signals.outbox_full, a log line).
    "DATACUE_OUTBOX_STORE_MAX": 1_000_000,
    # How long a process may hold claimed rows before another may send them again. The delivery
    # worker listens for an answer that comes after the read timeout until a second before then.
    "DATACUE_OUTBOX_LEASE_SECONDS": 30.0,
    # Requests the delivery worker of each process keeps in flight at once (never two of one
    # visitor or one entity): at 50 ms from DataCue, 64 deliver about 1,200 events/s. Steady
    # traffic uses few (events/s times the round trip); all of them only while a backlog drains.
    "DATACUE_DELIVERY_IN_FLIGHT": 64,
    # Whether each web process delivers on a thread of its own, started on first use (and again
    # in each forked child). False: what is queued waits in the outbox (and the journal) for
    # `flask datacue worker`, a process of its own (see README, "Deploying"). True or False.
    "DATACUE_DELIVERY_THREAD": True,
    # Seconds a stopping process may spend on delivery: the flush at a web process's exit
    # (SIGTERM included), and `flask datacue worker` waiting for its requests in flight.
    "DATACUE_SHUTDOWN_GRACE": DEFAULT_SHUTDOWN_GRACE,
    # The delivery worker's retry backoff in seconds: (first wait, longest wait).
    "DATACUE_DELIVERY_BACKOFF": (0.5, 300.0),
    # REST and events HTTP timeouts in seconds: (connect, read).
    "DATACUE_TIMEOUT": DEFAULT_TIMEOUT,
    # How many times a failed request is retried (5xx, 429, connection errors).
    "DATACUE_RETRIES": DEFAULT_RETRIES,
    # Server-side rendered recommendations (see recommendations.py).
    "DATACUE_SSR": False,
    "DATACUE_SSR_TIMEOUT": 0.3,
    # In SSR mode, send an order confirmation's order_details as a queued orders.create (the
    # guide's "frontend" way, which DataCue's script would do). False when the shop's backend
    # creates its orders itself (the guide's recommended way), so they are not sent twice.
    "DATACUE_SSR_ORDERS": True,
    # The first-party events endpoint (see proxy.py).
    "DATACUE_PROXY_ENABLED": True,
    "DATACUE_PROXY_MAX_BYTES": 16 * 1024,
    "DATACUE_PROXY_TIMEOUT": 1.0,
    # Per visitor, and per client IP (many shoppers can share one IP behind a carrier's NAT).
    "DATACUE_PROXY_RATE_LIMIT": "120/minute",
    # Derived: five times the visitor's limit.
    "DATACUE_PROXY_IP_RATE_LIMIT": None,
    # Page events the server sends for render_datacue (DATACUE_SSR), per visitor.
    "DATACUE_PAGE_EVENT_RATE_LIMIT": "60/minute",
    # Storage of those limits when the shop has no Flask-Limiter of its own (with one, its
    # storage is used): a Flask-Limiter storage URI; "memory://" counts per process.
    # Derived: the Redis of DATACUE_OUTBOX_URL when it is one (every host counts together), else
    # "memory://". While a storage fails, limits are counted in the process.
    "DATACUE_PROXY_RATE_LIMIT_STORAGE": None,
    # Name of the signed cookie that carries an anonymous visitor's id.
    "DATACUE_ANONYMOUS_COOKIE": "datacue_anonymous_id",
    # The shop's own address (https://shop.example), for the links sent to DataCue (a cart's
    # cart_link) and the only site a browser's links may point to. Derived: from SERVER_NAME
    # and PREFERRED_URL_SCHEME when set; else each request's own address.
    "DATACUE_SHOP_URL": None,
    # Treat a browser's Sec-GPC: 1 (Global Privacy Control) as no consent to be tracked.
    "DATACUE_HONOUR_GPC": False,
    # With Flask-Login: a login sends DataCue's login event, a logout starts a new visitor.
    "DATACUE_FLASK_LOGIN": True,
}

#: How ``DATACUE_OUTBOX_URL`` names a SQLite outbox (then ``sqlite:///relative`` or ``sqlite:////absolute``).
SQLITE_URL = "sqlite:///"

#: Values that ``DATACUE_CONFIG_MODE`` and ``DATACUE_DELIVERY`` accept.
CONFIG_MODES = ("inline", "json")
DELIVERY_MODES = ("outbox", "sync", "off")
