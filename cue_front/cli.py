"""The ``flask datacue ...`` commands a shop runs from its own app."""

from __future__ import annotations

from flask.cli import AppGroup

datacue_cli = AppGroup("datacue", help="Talk to DataCue: import history, inspect what it holds.")
