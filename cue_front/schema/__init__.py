"""DataCue's documented objects and the one validator every room uses: a field rule is written here once.

``engine`` validates (and ``values`` holds the field types), ``objects`` holds the guide's
tables, ``resources`` the registry of REST resources. ``validate(spec, data)`` returns data
in normal form or raises a ValidationError naming every bad field path; docs/architecture.md
("The schema") tells how.
"""

from . import engine, objects, resources, values
from .engine import *  # noqa: F403
from .objects import *  # noqa: F403
from .resources import *  # noqa: F403
from .values import *  # noqa: F403

__all__ = engine.__all__ + objects.__all__ + resources.__all__ + values.__all__
