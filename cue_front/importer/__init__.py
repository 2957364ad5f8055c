"""Historical import: records streamed from a file or a shop's generator into DataCue's batch endpoints.

``readers`` parse files one record at a time, ``sources`` say where records come from,
``run`` sends them in concurrent batches with rejects and a checkpoint. The behaviour a
shop sees (formats, rejects, ``--resume``, ``--skip-existing``) is in docs/architecture.md.
"""

from . import readers, run, sources
from .readers import *  # noqa: F403
from .run import *  # noqa: F403
from .sources import *  # noqa: F403

__all__ = readers.__all__ + run.__all__ + sources.__all__
