"""The SQL of the SQLite outbox: its tables and every statement the queue runs.

Why the statements are shaped as they are (no AUTOINCREMENT, the row count as
``max(id) - deleted``, pruning in chunks) is in docs/delivery.md ("The SQLite outbox").
"""

from __future__ import annotations

from pathlib import Path
from sqlite3 import Connection
from typing import Final

from ..errors import DataCueError
from .connections import when_unlocked

#: 2: outbox_intake (the journal's read offsets); 3: droppable, 'dropped'; 4: outbox_sent, erased;
#: 5: shared_key.
SCHEMA_VERSION: Final = 5


# ``id`` is an alias of the rowid, not AUTOINCREMENT (which costs a page write per put).
# Ids are never reused all the same: SQLite gives a new row max(id) + 1, and nothing
# ever deletes the row holding max(id) (see PRUNE_CHUNK). That also makes the row
# count O(1): max(id) - (rows deleted so far), which is how put() enforces the cap
# without a COUNT(*) scan or a counter row to update.
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body BLOB NOT NULL,
    ordering_key TEXT,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    lease_owner TEXT,
    last_status INTEGER,
    last_error TEXT,
    response_body TEXT,
    failed_at REAL,
    done_at REAL,
    droppable INTEGER NOT NULL DEFAULT 0,
    erased INTEGER NOT NULL DEFAULT 0,
    shared_key TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unfinished_by_key ON outbox (ordering_key, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS outbox_unfinished_by_shared_key ON outbox (shared_key, id)
    WHERE state = 0 AND shared_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS outbox_meta (name TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS outbox_intake (name TEXT PRIMARY KEY, offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_sent (key TEXT PRIMARY KEY, digest TEXT NOT NULL);
INSERT OR IGNORE INTO outbox_meta (name, value) VALUES
    ('deleted', 0), ('refused', 0), ('dropped', 0), ('last_error', NULL);
"""
#: What each version since schema 2 changed, run before SCHEMA (whose statements are all "if not
#: exists") to bring an older file up to date. 5: the shared key, and the unsent store changes of
#: older files keyed as the queued client keys them now (a batch by its collection, an entity
#: sharing its collection's key).
UPGRADES: Final = {
    3: ("ALTER TABLE outbox ADD COLUMN droppable INTEGER NOT NULL DEFAULT 0",),
    4: ("ALTER TABLE outbox ADD COLUMN erased INTEGER NOT NULL DEFAULT 0",),
    5: (
        "ALTER TABLE outbox ADD COLUMN shared_key TEXT",
        "UPDATE outbox SET ordering_key = substr(ordering_key, 7)"
        " WHERE state = 0 AND kind = 'rest' AND ordering_key LIKE 'batch/%'",
        "UPDATE outbox SET shared_key = substr(ordering_key, 1, instr(ordering_key, '/') - 1)"
        " WHERE state = 0 AND kind = 'rest' AND instr(ordering_key, '/') > 1",
    ),
}
# Columns, in short: ``state`` 0 pending, 1 done (delivered, or dropped and counted in
# 'dropped'), 2 dead. ``due_at`` is when a pending row may be sent; a claim moves it to the
# lease's end, so one comparison says "free to claim" both for a row waiting out its
# backoff and for a row whose owner died. ``lease_owner`` is set while a claim holds the
# row. ``droppable`` says how far an event may go when its visitor holds too many (``Droppable``).
# ``shared_key`` is a second key the row holds in common with others (see CLAIMABLE_KEYED).

# One statement, so a put is one round trip into SQLite and one commit. Rows are
# counted as max(id) - deleted (see SCHEMA). Events stop at the cap (?7); REST writes
# have room beyond it (?8, the store changes' own bound): see the policy.
INSERT: Final = """
INSERT INTO outbox (kind, method, path, body, ordering_key, created_at, due_at, droppable, shared_key)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?9, ?10
WHERE (SELECT COALESCE(MAX(id), 0) FROM outbox)
      - (SELECT value FROM outbox_meta WHERE name = 'deleted') < ?7 + CASE WHEN ?1 = 'rest' THEN ?8 ELSE 0 END
"""

# Journaled events were accepted already: they skip the cap (put_event enforced it).
INGEST: Final = """
INSERT INTO outbox (kind, method, path, body, ordering_key, created_at, due_at, droppable, shared_key)
VALUES ('event', 'POST', '', ?, ?, ?, ?, ?, ?)
"""

# The keys among ?-marks (filled in) holding more than ?1 unfinished rows, and how many.
CROWDED_KEYS: Final = """
SELECT ordering_key, COUNT(*) FROM outbox INDEXED BY outbox_unfinished_by_key
WHERE state = 0 AND ordering_key IN ({marks}) GROUP BY ordering_key HAVING COUNT(*) > ?
"""
# A crowded key's droppable rows not held by a live lease, dropped, most droppable and oldest
# first: marked done, the body erased, counted in 'dropped' (the caller adds the count). Of the
# SUPERSEDED kind (cart updates) the newest is kept: it carries the whole cart.
DROP_OLDEST: Final = """
UPDATE outbox SET state = 1, body = x'', done_at = ?3 WHERE id IN (
    SELECT id FROM outbox INDEXED BY outbox_unfinished_by_key
    WHERE state = 0 AND ordering_key = ?1 AND droppable > 0 AND (lease_owner IS NULL OR due_at <= ?3)
      AND NOT (droppable = 1 AND id = (
          SELECT MAX(id) FROM outbox WHERE state = 0 AND ordering_key = ?1 AND droppable = 1))
    ORDER BY droppable DESC, id LIMIT ?2
)
"""
# Every unsent row of some keys (?-marks filled in), pending or dead, dropped the same way (an
# erasure). A row a worker is sending now keeps its key's place in line (the erasure's delete
# waits behind it): it is marked ``erased`` instead and settled by SETTLE_ERASED.
DROP_UNSENT: Final = """
UPDATE outbox SET state = 1, body = x'', done_at = ?1
WHERE (state = 2 OR (state = 0 AND (lease_owner IS NULL OR due_at <= ?1))) AND ordering_key IN ({marks})
"""
MARK_ERASED: Final = """
UPDATE outbox SET erased = 1
WHERE state = 0 AND lease_owner IS NOT NULL AND due_at > ?1 AND ordering_key IN ({marks})
"""
# An erased row just settled by its worker: delivered (?2 = 1), it keeps state done and loses its
# body; failed or handed back, it is dropped (the caller counts those in 'dropped').
SETTLE_ERASED: Final = """
UPDATE outbox SET state = 1, body = x'', done_at = ?1, lease_owner = NULL
WHERE erased = 1 AND (?2 = 1 OR (state IN (0, 2) AND lease_owner IS NULL)) AND id IN ({marks})
"""
# (The numbered parameters stand before the ?-marks: SQLite numbers a bare ? after the largest
# number seen so far in the text.)
COUNT_DROPPED: Final = "UPDATE outbox_meta SET value = value + ? WHERE name = 'dropped'"

ROW_COUNT: Final = """
SELECT (SELECT COALESCE(MAX(id), 0) FROM outbox) - (SELECT value FROM outbox_meta WHERE name = 'deleted')
"""

ROW_COLUMNS: Final = "id, kind, method, path, body, ordering_key, attempts, created_at"

# The first unfinished row of every key is the only one of its key that may be
# claimed; the partial index holds exactly the unfinished rows, grouped by key.
#
# A row may also hold a shared key: an entity's change shares its collection's key
# (``products/p1`` shares ``products``, the key of a batch of products), and a logged-in
# visitor's event shares the key of the anonymous id it came with (``visitor:u1`` shares
# ``visitor:a1``). Rows holding the same shared key do not wait for each other, but a row
# waits for every earlier unfinished row whose own key is its shared key, and for every
# earlier unfinished row that shares its own key: so a batch never overtakes (nor is
# overtaken by) a change to an entity in its collection, and a visitor's events keep their
# order across the login that adds the user id.
WAITS_FOR_NOTHING_EARLIER: Final = """
(r.shared_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM outbox AS s INDEXED BY outbox_unfinished_by_key
    WHERE s.state = 0 AND s.ordering_key = r.shared_key AND s.id < r.id))
AND NOT EXISTS (
    SELECT 1 FROM outbox AS s INDEXED BY outbox_unfinished_by_shared_key
    WHERE s.state = 0 AND s.shared_key = r.ordering_key AND s.id < r.id)
"""
FIRST_OF_EVERY_KEY: Final = (
    "SELECT MIN(id) FROM outbox WHERE state = 0 AND ordering_key IS NOT NULL GROUP BY ordering_key"
)
CLAIMABLE_KEYED: Final = f"""
SELECT {ROW_COLUMNS} FROM outbox AS r
WHERE r.id IN ({FIRST_OF_EVERY_KEY}) AND r.due_at <= ?1 AND {WAITS_FOR_NOTHING_EARLIER}
ORDER BY r.id LIMIT ?2
"""
NEXT_DUE: Final = f"""
SELECT MIN(due_at) FROM outbox AS r
WHERE (r.id IN ({FIRST_OF_EVERY_KEY}) AND {WAITS_FOR_NOTHING_EARLIER})
   OR (r.state = 0 AND r.ordering_key IS NULL)
"""
CLAIMABLE_UNKEYED: Final = f"""
SELECT {ROW_COLUMNS} FROM outbox
WHERE state = 0 AND ordering_key IS NULL AND due_at <= ?1
ORDER BY id LIMIT ?2
"""

# Delivered rows go in small chunks so that no put waits long for the write lock.
# The row holding max(id) is always kept: ids are never reused, and the row count
# stays max(id) - deleted.
PRUNE_CHUNK_ROWS: Final = 100
PRUNE_CHUNK: Final = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE state = 1 AND id < (SELECT MAX(id) FROM outbox) LIMIT ?
)
"""

#: SQLite's default limit on bound variables is 999 in older builds.
IDS_PER_STATEMENT: Final = 500


def create_schema(connection: Connection, path: Path) -> None:
    """Make the outbox's tables in a new file, or bring an older file's up to date."""
    # WAL is a property of the file: set once, seen by every later connection.
    mode = when_unlocked(lambda: connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    if str(mode).lower() != "wal":
        raise DataCueError(
            f"the outbox at {path} cannot use SQLite's WAL mode (got {mode!r});"
            " put DATACUE_OUTBOX_PATH on a local disk"
        )
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version not in (0, 2, 3, 4) and version < SCHEMA_VERSION:
        raise DataCueError(
            f"the outbox at {path} has schema {version}, which this cue-front cannot upgrade;"
            " drain it with the cue-front that wrote it, or set DATACUE_OUTBOX_PATH elsewhere"
        )
    if version > SCHEMA_VERSION:
        raise DataCueError(
            f"the outbox at {path} was written by a newer cue-front (schema {version});"
            " upgrade cue-front or point DATACUE_OUTBOX_PATH elsewhere"
        )
    connection.execute("BEGIN IMMEDIATE")
    try:
        upgrading = connection.execute("PRAGMA user_version").fetchone()[0]  # another process?
        for added_in, statements in UPGRADES.items():
            if 0 < upgrading < added_in:
                for statement in statements:
                    connection.execute(statement)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.rollback()
        raise
    connection.execute("COMMIT")
