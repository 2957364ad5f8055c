"""Declared sync of SQLAlchemy models: what a commit creates, changes or deletes reaches DataCue by itself.

A shop declares, per model, the function that turns an instance into DataCue's documented
object (``@datacue.syncs(Variant, "products")``). Session events then collect the flushed
changes, and a commit queues them through the durable outbox in commit order; a rollback
queues nothing. What the ORM's events cannot see, and the window between the shop's commit
and the outbox, are told in docs/architecture.md ("Declared model sync").
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_app_context

from .encoding import encode_json
from .errors import ConfigurationError, DataCueError, ValidationError
from .schema import Resource, resource, validate

try:  # the ``sqlalchemy`` extra
    import sqlalchemy
    from sqlalchemy import event, select
    from sqlalchemy.orm import MANYTOONE, Session
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    sqlalchemy = None  # type: ignore[assignment]

__all__ = ["Change", "Declaration", "ModelSync"]

logger = logging.getLogger(__name__)

ToDataCue = Callable[[Any], Mapping[str, Any]]
#: For a related model, the instances of the declared model whose DataCue object it feeds.
Dependents = Callable[[Any], Iterable[Any]]

_PENDING = "_datacue_changes"
_DELETED_KEYS = "_datacue_deleted"
_DELETED_DEPENDENTS = "_datacue_deleted_dependents"
_TO_READ = "_datacue_to_read"


@dataclass(frozen=True)
class Declaration:
    """One model synced as one DataCue resource through ``to_datacue``."""

    model: type
    resource: Resource
    to_datacue: ToDataCue
    depends_on: Mapping[type, Dependents] = field(default_factory=dict)

    def record(self, instance: Any) -> dict[str, Any]:
        """The instance as DataCue's documented object, validated (``ValidationError`` names the path)."""
        record: dict[str, Any] = validate(self.resource.spec, dict(self.to_datacue(instance)))
        return record

    def key(self, record: Mapping[str, Any]) -> str:
        """``products/p1/v1``: which DataCue object a record is."""
        return "/".join([self.resource.name, *(str(record[name]) for name in self.resource.key_fields)])


@dataclass(frozen=True)
class Change:
    """One change a commit sends: ``create`` or ``update`` a record, or ``delete`` what it names."""

    action: str
    declaration: Declaration
    record: dict[str, Any]


def _digest(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(encode_json(record)).hexdigest()


class ModelSync:
    """The model declarations of one extension, and the session hooks that queue their changes."""

    def __init__(self) -> None:
        self.declarations: list[Declaration] = []

    def declare(
        self,
        model: type,
        resource_name: str,
        to_datacue: ToDataCue,
        depends_on: Mapping[type, Dependents | str] | None = None,
    ) -> Declaration:
        if sqlalchemy is None:
            raise ConfigurationError(
                "@datacue.syncs needs SQLAlchemy: pip install cue-front[sqlalchemy]"
            )
        dependents = {
            related: (_attribute(how) if isinstance(how, str) else how)
            for related, how in (depends_on or {}).items()
        }
        declaration = Declaration(model, resource(resource_name), to_datacue, dependents)
        self.declarations.append(declaration)
        _install_hooks()
        return declaration

    def for_instance(self, instance: Any) -> list[Declaration]:
        return [each for each in self.declarations if isinstance(instance, each.model)]

    def for_resource(self, resource_name: str) -> list[Declaration]:
        return [each for each in self.declarations if each.resource.name == resource_name]

    def dependents_of(self, instance: Any) -> Iterator[tuple[Declaration, Any]]:
        """The declared instances whose DataCue object ``instance`` (a related model) feeds."""
        for declaration in self.declarations:
            for related, dependents in declaration.depends_on.items():
                if isinstance(instance, related):
                    for dependent in dependents(instance) or ():
                        yield declaration, dependent

    def rows(self, session: Any, declaration: Declaration) -> Iterator[dict[str, Any]]:
        """Every row of a declared model as its DataCue object, streamed (the import and reconcile)."""
        query: Any = select(declaration.model).execution_options(yield_per=500)
        for instance in session.execute(query).scalars():
            yield dict(declaration.to_datacue(instance))


def _attribute(name: str) -> Dependents:
    def dependents(instance: Any) -> Iterable[Any]:
        value = getattr(instance, name)
        if value is None:
            value = _by_foreign_key(instance, name)
        return value if isinstance(value, Iterable) else [value] if value is not None else []

    return dependents


def _by_foreign_key(instance: Any, name: str) -> Any:
    """The row a many-to-one ``name`` names by its foreign key alone: the ORM does not load it for a
    row just added that way (``Wish(customer_id="u1")``), so it is looked up (the identity map first)."""
    state = sqlalchemy.inspect(instance, raiseerr=False)
    relation = None if state is None else state.mapper.relationships.get(name)
    if state is None or state.session is None or relation is None or relation.direction is not MANYTOONE:
        return None
    ident = {}
    for local, remote in relation.local_remote_pairs:
        value = state.attrs[state.mapper.get_property_by_column(local).key].value
        if value is None:
            return None
        ident[relation.mapper.get_property_by_column(remote).key] = value
    return state.session.get(relation.mapper.class_, ident)


# -- the session hooks ------------------------------------------------------------------------
#
# after_flush sees what the flush wrote (new rows have their ids) while the session is still in
# the transaction, so the shop's function may load what it needs; the changes wait in
# session.info until after_commit queues them, and any rollback throws them away.

_installed = False


def _install_hooks() -> None:
    global _installed
    if _installed:
        return
    event.listen(Session, "before_flush", _before_flush)
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "after_flush_postexec", _after_flush_postexec)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_rollback", _after_rollback)
    _installed = True


def _model_sync() -> ModelSync | None:
    if not has_app_context():
        return None
    state = current_app.extensions.get("datacue")
    if state is None or not state.extension.model_sync.declarations:
        return None
    sync: ModelSync = state.extension.model_sync
    return sync


def _before_flush(session: Any, flush_context: Any, instances: Any) -> None:
    """Deleted instances, read while their rows (and their relations) still exist: the records of
    declared ones, and the declared instances that deleted related rows feed (``depends_on``)."""
    sync = _model_sync()
    if sync is None:
        return
    deleted = session.info.setdefault(_DELETED_KEYS, {})
    fed = session.info.setdefault(_DELETED_DEPENDENTS, {})
    for instance in session.deleted:
        for declaration in sync.for_instance(instance):
            record = _record_or_none(declaration, instance)
            if record is not None:
                deleted[id(instance), id(declaration)] = record
        fed[id(instance)] = list(sync.dependents_of(instance))


def _after_flush(session: Any, flush_context: Any) -> None:
    sync = _model_sync()
    if sync is None:
        return
    pending: list[Change] = session.info.setdefault(_PENDING, [])
    deleted_records = session.info.pop(_DELETED_KEYS, {})
    deleted_dependents = session.info.pop(_DELETED_DEPENDENTS, {})
    seen: set[tuple[int, int]] = set()
    for instance in session.deleted:
        for declaration in sync.for_instance(instance):
            record = deleted_records.get((id(instance), id(declaration)))
            if record is None:  # deleted by a cascade during the flush: read what is loaded
                record = _record_or_none(declaration, instance)
            if record is not None:
                pending.append(Change("delete", declaration, record))
            seen.add((id(instance), id(declaration)))
    new = session.new
    targets = list(_fed_by_deleted(sync, session, deleted_dependents))
    for instance in [*new, *session.dirty]:
        if instance in new or session.is_modified(instance):  # else touched, not changed
            targets.extend((declaration, instance) for declaration in sync.for_instance(instance))
        for declaration, dependent in sync.dependents_of(instance):
            if instance in new:
                _expire_missing(session, dependent, instance)
            targets.append((declaration, dependent))
    to_read: list[tuple[str, Declaration, Any]] = session.info.setdefault(_TO_READ, [])
    for declaration, target in targets:
        if (id(target), id(declaration)) in seen or target in session.deleted:
            continue
        seen.add((id(target), id(declaration)))
        to_read.append(("create" if target in new else "update", declaration, target))


def _after_flush_postexec(session: Any, flush_context: Any) -> None:
    """The records of what this flush created or changed, read once the flush is over: a row it
    added is in the identity map by then, so the shop's function may load collections that hold it
    (loading them during the flush would put a second copy of the row there)."""
    pending: list[Change] = session.info.setdefault(_PENDING, [])
    for action, declaration, target in session.info.pop(_TO_READ, ()):
        record = _record_or_none(declaration, target)
        if record is not None:
            pending.append(Change(action, declaration, record))


def _fed_by_deleted(
    sync: ModelSync, session: Any, found_before: Mapping[int, list[tuple[Declaration, Any]]]
) -> Iterator[tuple[Declaration, Any]]:
    """The declared instances that this flush's deleted related rows fed, found before the flush
    (a row deleted by a cascade during it: through what is loaded), each with its loaded
    relationships that still hold a deleted row expired, so that its record is made without it."""
    gone = session.deleted
    gone_ids = {id(each) for each in gone}
    for instance in gone:
        if id(instance) in found_before:
            dependents: Iterable[tuple[Declaration, Any]] = found_before[id(instance)]
        else:
            dependents = sync.dependents_of(instance)
        for declaration, dependent in dependents:
            if dependent not in gone:
                _expire_held(session, dependent, gone_ids)
                yield declaration, dependent


def _expire_held(session: Any, instance: Any, gone_ids: set[int]) -> None:
    """Expire ``instance``'s loaded relationships that hold a row just deleted: the ORM leaves a
    deleted row in loaded collections (and many-to-ones) until the commit expires everything."""
    state = sqlalchemy.inspect(instance, raiseerr=False)
    if state is None or not state.persistent:
        return
    stale = [
        relation.key
        for relation in state.mapper.relationships
        if relation.key in state.dict
        and any(id(each) in gone_ids for each in _held(relation.uselist, state.dict[relation.key]))
    ]
    if stale:
        session.expire(instance, stale)


def _expire_missing(session: Any, instance: Any, added: Any) -> None:
    """Expire ``instance``'s loaded relationships to ``added``'s model that do not hold it: a row
    added by its foreign key joins a loaded collection only when it is loaded again."""
    state = sqlalchemy.inspect(instance, raiseerr=False)
    if state is None or not state.persistent:
        return
    stale = [
        relation.key
        for relation in state.mapper.relationships
        if relation.key in state.dict
        and isinstance(added, relation.mapper.class_)
        and not any(each is added for each in _held(relation.uselist, state.dict[relation.key]))
    ]
    if stale:
        session.expire(instance, stale)


def _held(uselist: bool | None, value: Any) -> Iterable[Any]:
    """What a loaded relationship's value holds: a collection's members (a dict's values), or the one."""
    if not uselist:
        return () if value is None else (value,)
    return value.values() if isinstance(value, Mapping) else value


def _record_or_none(declaration: Declaration, instance: Any) -> dict[str, Any] | None:
    """The instance's DataCue object; a bad mapping raises in strict mode (the flush, and so the
    shop's commit, fails), otherwise it is logged and that instance skipped."""
    try:
        return declaration.record(instance)
    except ValidationError as error:
        if current_app.extensions["datacue"].strict:
            raise
        logger.error(
            "datacue: %s.%s gave an invalid %s object, not sent: %s",
            declaration.to_datacue.__module__,
            declaration.to_datacue.__qualname__,
            declaration.resource.name,
            error,
        )
        return None


def _after_rollback(session: Any) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_DELETED_KEYS, None)
    session.info.pop(_DELETED_DEPENDENTS, None)
    session.info.pop(_TO_READ, None)


def _after_commit(session: Any) -> None:
    changes: list[Change] = session.info.pop(_PENDING, [])
    if changes and has_app_context():
        send(changes)


def send(changes: Iterable[Change], *, force: bool = False) -> int:
    """Queue ``changes`` through the outbox, in order; a create or update whose record is what
    was last sent for its key is skipped (unless ``force``). Returns how many were queued."""
    state = current_app.extensions["datacue"]
    outbox = state.outbox if state.delivery_mode == "outbox" else None
    changes = list(changes)
    keys = [change.declaration.key(change.record) for change in changes]
    last_sent = outbox.sent_digests(keys) if outbox is not None else {}
    digests: dict[str, str | None] = {}
    queued = 0
    for change, key in zip(changes, keys, strict=True):
        if change.action == "resync":  # an update of what was sent from here, else a create
            change = Change("update" if key in last_sent else "create", change.declaration, change.record)
        digest = None if change.action == "delete" else _digest(change.record)
        if digest is not None and not force and last_sent.get(key) == digest and key not in digests:
            continue  # DataCue has this very object already
        try:
            _queue(state, change)
        except DataCueError as error:
            logger.error("datacue: %s %s not queued: %s", change.action, key, error)
            continue
        digests[key] = digest
        queued += 1
    if outbox is not None and digests:
        outbox.remember_digests(digests)
    return queued


def _queue(state: Any, change: Change) -> None:
    """The queued client call for one change (see docs/architecture.md for the mapping)."""
    record = change.record
    name = change.declaration.resource.name
    client = state.queued
    key_fields = change.declaration.resource.key_fields
    keys = [record[field_name] for field_name in key_fields]
    if change.action == "delete":
        getattr(client, name).delete(*keys)
        return
    if name == "orders":
        if change.action == "update" and record.get("order_status") == "cancelled":
            client.orders.cancel(record["order_id"])
        else:
            client.orders.create(record)  # DataCue's orders have no update: a create replaces
        return
    if change.action == "create":
        getattr(client, name).create(record)
        return
    changes = {field_name: value for field_name, value in record.items() if field_name not in key_fields}
    getattr(client, name).update(*keys, changes)


def resync(sync: ModelSync, target: Any, *, force: bool = False) -> int:
    """Queue the DataCue objects of ``target`` (an instance, instances, or a declared model, for
    all its rows): what bulk updates and raw SQL wrote without the ORM's events. An object is
    sent only if it differs from what was last sent from here, unless ``force``."""
    changes = [
        Change("resync", declaration, declaration.record(instance))
        for instance in _instances(sync, target)
        for declaration in sync.for_instance(instance)
    ]
    return send(changes, force=force)


def _instances(sync: ModelSync, target: Any) -> Iterator[Any]:
    if isinstance(target, type):
        session = flask_sqlalchemy_session()
        yield from session.execute(select(target).execution_options(yield_per=500)).scalars()
    elif sqlalchemy is not None and sqlalchemy.inspect(target, raiseerr=False) is not None:
        yield target  # one mapped instance
    else:
        yield from target


def flask_sqlalchemy_session() -> Any:
    """The current app's Flask-SQLAlchemy session (``db.session``)."""
    extension = current_app.extensions.get("sqlalchemy")
    if extension is None:
        raise ConfigurationError(
            "reading a declared model's rows needs Flask-SQLAlchemy's db on this app"
            " (pip install cue-front[sqlalchemy]); or pass the instances themselves"
        )
    return extension.session
