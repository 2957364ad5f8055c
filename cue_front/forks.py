"""Fork awareness in one place: a generation number that each forked child bumps, and fork hooks.

A process forked from another (a gunicorn worker) must not use its parent's threads,
sockets, SQLite connections or journal segments. Rooms holding such things record
``forks.generation`` when they make them and compare it before use: a plain attribute
read, cheap enough for the request path (``os.getpid()`` is a system call).
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["at_fork", "generation"]

#: Bumped in every forked child, before any other hook registered through :func:`at_fork` runs.
generation = 0


def at_fork(
    *,
    before: Callable[[], None] | None = None,
    after_in_parent: Callable[[], None] | None = None,
    after_in_child: Callable[[], None] | None = None,
) -> None:
    """Register hooks around ``os.fork()`` where the platform forks (POSIX; Windows has no fork)."""
    if not hasattr(os, "register_at_fork"):
        return
    hooks = {"before": before, "after_in_parent": after_in_parent, "after_in_child": after_in_child}
    os.register_at_fork(**{name: hook for name, hook in hooks.items() if hook is not None})


def _bump_generation() -> None:
    global generation
    generation += 1


# Registered when this module is first imported, which is before any room that uses it
# registers its own hooks: children run their hooks in registration order.
at_fork(after_in_child=_bump_generation)
