"""Fault injection: a seeded plan of errors, latency and dropped connections, per route family.

A plan is JSON, given to ``create_emulator(faults=...)``, ``--faults`` or
``POST /_emulator/faults``::

    {"seed": 7,
     "error_503": 0.5,                       # top level: both families
     "rest": {"error_429": 0.2, "retry_after": 3, "max_faults": 2},
     "events": {"latency": 2.0, "drop": 0.1}}

Per family (``events``: ``POST /`` and ``/events``; ``rest``: ``/v1/...``):
``error_500``, ``error_503``, ``error_429`` and ``drop`` are probabilities (their
sum at most 1) of answering 500, 503, 429 (with ``Retry-After: retry_after``
seconds, default 1) or closing the connection without an answer; ``latency``
seconds are added to a request with probability ``latency_probability``
(default 1); after ``max_faults`` faulty answers (latency counts) the family
behaves again. Each family draws from its own ``random.Random(seed)``, two
numbers per request, so the same plan and the same requests give the same
faults. A faulted request changes no state. Under the Flask test client there
is no connection to drop: a drop raises ``ConnectionAbortedError`` there.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from ..errors import FieldError, ValidationError
from ..schema import Integer, Number, Object, optional, validate

__all__ = ["FAMILIES", "FamilyFaults", "Fault", "FaultInjector", "FaultPlan"]

#: The route families faults apply to.
FAMILIES: Final = ("events", "rest")

#: The outcomes a request can be given instead of its answer, in the order they are drawn.
OUTCOMES: Final = ("error_500", "error_503", "error_429", "drop")

_PROBABILITY = Number(minimum=0)
_FAMILY_FIELDS = {
    **{outcome: optional(_PROBABILITY) for outcome in OUTCOMES},
    "latency": optional(Number(minimum=0)),
    "latency_probability": optional(_PROBABILITY),
    "retry_after": optional(Integer(minimum=0)),
    "max_faults": optional(Integer(minimum=0)),
}
#: The emulator's own object (not DataCue's), built from the shared schema's parts.
FAMILY_FAULTS_SPEC = Object(_FAMILY_FIELDS)
FAULT_PLAN_SPEC = FAMILY_FAULTS_SPEC.extend(
    seed=optional(Integer()),
    events=optional(FAMILY_FAULTS_SPEC),
    rest=optional(FAMILY_FAULTS_SPEC),
)


@dataclass(frozen=True)
class FamilyFaults:
    """What can go wrong for one route family."""

    error_500: float = 0.0
    error_503: float = 0.0
    error_429: float = 0.0
    drop: float = 0.0
    latency: float = 0.0
    latency_probability: float = 1.0
    retry_after: int = 1
    max_faults: int | None = None

    def settings(self) -> dict[str, Any]:
        """The settings that differ from no faults at all."""
        defaults = FamilyFaults()
        return {name: value for name, value in asdict(self).items() if value != getattr(defaults, name)}

    @property
    def quiet(self) -> bool:
        return not (self.error_500 or self.error_503 or self.error_429 or self.drop or self.latency)


@dataclass(frozen=True)
class FaultPlan:
    seed: int = 0
    events: FamilyFaults = FamilyFaults()
    rest: FamilyFaults = FamilyFaults()

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan:
        """Validate and read a plan; raises :class:`ValidationError` naming the bad paths."""
        plan = validate(FAULT_PLAN_SPEC, {} if data is None else data)
        shared = {key: value for key, value in plan.items() if key in _FAMILY_FIELDS}
        families = {}
        for family in FAMILIES:
            settings = {**shared, **plan.get(family, {})}
            _check_probabilities(settings, family)
            families[family] = FamilyFaults(**settings)
        return cls(seed=plan.get("seed", 0), **families)

    def as_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "events": asdict(self.events), "rest": asdict(self.rest)}

    def family(self, name: str) -> FamilyFaults:
        faults: FamilyFaults = getattr(self, name)
        return faults


def _check_probabilities(settings: Mapping[str, Any], family: str) -> None:
    errors = [
        FieldError(f"{family}.{name}", f"a probability is at most 1, got {settings[name]!r}")
        for name in (*OUTCOMES, "latency_probability")
        if settings.get(name, 0) > 1
    ]
    total = sum(settings.get(outcome, 0) for outcome in OUTCOMES)
    if total > 1 and not errors:
        errors.append(FieldError(family, f"error and drop probabilities add up to {total:g}, over 1"))
    if errors:
        raise ValidationError(errors)


@dataclass(frozen=True)
class Fault:
    """What happens to one request instead of (or before) its answer."""

    status: int | None = None  # 500, 503 or 429
    drop: bool = False
    latency: float = 0.0
    retry_after: int = 1


class FaultInjector:
    """Draws the fault, if any, of each request from the plan; thread-safe."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self.set_plan(plan or FaultPlan())

    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self.plan = plan
            self._random = {family: random.Random(plan.seed) for family in FAMILIES}
            self._injected = dict.fromkeys(FAMILIES, 0)

    def draw(self, family: str) -> Fault | None:
        with self._lock:
            faults = self.plan.family(family)
            if faults.quiet:
                return None
            if faults.max_faults is not None and self._injected[family] >= faults.max_faults:
                return None
            outcome_draw, latency_draw = self._random[family].random(), self._random[family].random()
            latency = faults.latency if latency_draw < faults.latency_probability else 0.0
            outcome = _outcome(faults, outcome_draw)
            if outcome is None and not latency:
                return None
            self._injected[family] += 1
        if outcome == "drop":
            return Fault(drop=True, latency=latency)
        status = int(outcome.removeprefix("error_")) if outcome else None
        return Fault(status=status, latency=latency, retry_after=faults.retry_after)


def _outcome(faults: FamilyFaults, draw: float) -> str | None:
    threshold = 0.0
    for outcome in OUTCOMES:
        threshold += getattr(faults, outcome)
        if draw < threshold:
            return outcome
    return None
