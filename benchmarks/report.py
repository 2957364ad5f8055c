"""The one table every benchmark reports into: measure, baseline, figure, ratio, goal, pass/fail."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """One measured figure against its baseline, measured in the same run.

    ``ratio`` is figure / baseline. ``goal`` is a human-readable statement and
    ``passed`` whether the figure meets it. ``unit`` names what both numbers count.
    """

    measure: str
    baseline: float | None
    figure: float
    unit: str
    goal: str
    passed: bool

    @property
    def ratio(self) -> float | None:
        if not self.baseline:
            return None
        return self.figure / self.baseline


def format_table(results: list[Result]) -> str:
    rows = [("measure", "baseline", "figure", "ratio", "goal", "result")]
    for result in results:
        rows.append(
            (
                result.measure,
                "-" if result.baseline is None else f"{result.baseline:,.2f} {result.unit}",
                f"{result.figure:,.2f} {result.unit}",
                "-" if result.ratio is None else f"{result.ratio:.2f}x",
                result.goal,
                "pass" if result.passed else "FAIL",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
