"""The one registry of DataCue's REST resources: name, id fields, paths and specs.

Every room that needs to know what a resource is (the client, the queued client,
the importer, the CLI, the emulator) asks here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..errors import FieldError
from .engine import Object
from .objects import (
    CATEGORY,
    CATEGORY_CHANGES,
    CATEGORY_KEY,
    ORDER,
    ORDER_KEY,
    ORDER_STATUS_CHANGE,
    PRODUCT,
    PRODUCT_CHANGES,
    PRODUCT_KEY,
    USER,
    USER_CHANGES,
    USER_KEY,
)

__all__ = ["RESOURCES", "RESOURCE_NAMES", "Resource", "resource"]


@dataclass(frozen=True)
class Resource:
    """One REST collection: ``spec`` is its create body (and batch item), ``changes`` its
    update body, ``key`` the object that names one item (a batch delete's item)."""

    name: str
    spec: Object
    changes: Object
    key: Object

    @property
    def key_fields(self) -> tuple[str, ...]:
        """The members that name an item, in URL order: ``("product_id", "variant_id")``."""
        return tuple(self.key.fields)

    @property
    def id_field(self) -> str:
        """The member holding the item's own id (a product's, not its variant's)."""
        return self.key_fields[0]

    @property
    def path(self) -> str:
        """The collection's path under the API URL: ``/products``."""
        return f"/{self.name}"

    @property
    def batch_path(self) -> str:
        """The collection's batch endpoint: ``/batch/products``."""
        return f"/batch/{self.name}"

    def repeated_id_errors(self, key: Mapping[str, str], changes: Mapping[str, Any]) -> list[FieldError]:
        """Where a validated update body repeats an id of ``key`` (the path's) with another value.

        Guide: the Update User sample repeats user_id in the body (see ``USER_CHANGES``); that
        is taken when it names the path's item, and an error naming both when it does not,
        since an update cannot change an item's id.
        """
        return [
            FieldError(
                name,
                f"the body says {changes[name]!r} but the path says {value!r}; an id cannot change:"
                f" send the path's id, or leave {name} out of the body",
            )
            for name, value in key.items()
            if name in changes and changes[name] != value
        ]


#: DataCue's REST resources, in the guide's order.
RESOURCES: Final[Mapping[str, Resource]] = {
    each.name: each
    for each in (
        Resource("products", PRODUCT, PRODUCT_CHANGES, PRODUCT_KEY),
        Resource("categories", CATEGORY, CATEGORY_CHANGES, CATEGORY_KEY),
        Resource("users", USER, USER_CHANGES, USER_KEY),
        Resource("orders", ORDER, ORDER_STATUS_CHANGE, ORDER_KEY),
    )
}
RESOURCE_NAMES: Final = tuple(RESOURCES)


def resource(name: str) -> Resource:
    """The resource called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return RESOURCES[name]
    except KeyError:
        raise ValueError(
            f"no such resource {name!r}; expected one of {', '.join(RESOURCE_NAMES)}"
        ) from None
