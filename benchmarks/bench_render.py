"""A product page with 10 variants, validated and rendered, against the floor measured in the same run.

Floor: the same dict through ``jinja2.utils.htmlsafe_json_dumps`` into a script tag,
no validation, no loader scripts. Goal: ``render_datacue`` at most 1.0x the floor, judged on
the median of the ratios of several interleaved rounds (ratios near 1.0x flip between runs).
"""

from __future__ import annotations

import statistics
import timeit
from typing import Any

from flask import Flask
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from benchmarks.report import Result
from cue_front import DataCue, render_datacue

GOAL = 1.0
ROUNDS = 5


def product_update() -> list[dict[str, Any]]:
    return [
        {
            "variant_id": f"v{index}",
            "name": f"Blue Regular Fit Jeans, size {30 + index}",
            "price": 99.5,
            "full_price": 120,
            "photo_url": f"https://mycoolstore.com/images/p1-{index}.jpg",
            "available": True,
            "stock": 15 - index,
            "category_ids": ["jeans", "summer"],
            "brand": "Zayra",
        }
        for index in range(10)
    ]


def best_of(function: Any, number: int = 5000, repeat: int = 7) -> float:
    """Microseconds per call, the best of several runs (the least disturbed by the machine)."""
    return min(timeit.repeat(function, number=number, repeat=repeat)) / number * 1e6


def run() -> list[Result]:
    app = Flask("bench")
    app.config.update(DATACUE_API_KEY="bench-key", DATACUE_STRICT=True)
    DataCue(app)
    variants = product_update()
    config = {
        "api_key": "bench-key",
        "user_id": None,
        "page_type": "product",
        "product_id": "p1",
        "product_update": variants,
    }

    def floor() -> Markup:
        # The cheapest correct way: no validation, one string, marked safe once.
        return Markup(f"<script>window.datacueConfig = {htmlsafe_json_dumps(config)};</script>")

    def ours() -> Markup:
        return render_datacue("product", product_id="p1", product_update=variants)

    with app.test_request_context():
        ours()  # compile the spec's fast check once, as the first request of an app does
        baselines, figures = [], []
        # Interleave the two so that both see the same machine conditions.
        for _ in range(ROUNDS):
            baselines.append(best_of(floor))
            figures.append(best_of(ours))
    ratio = statistics.median(f / b for f, b in zip(figures, baselines, strict=True))
    baseline, figure = statistics.median(baselines), statistics.median(figures)
    return [
        Result(
            measure="render_datacue: product page, 10 variants",
            baseline=baseline,
            figure=figure,
            unit="us",
            goal=f"<= {GOAL}x htmlsafe_json_dumps floor (median of {ROUNDS} rounds' ratios: {ratio:.2f}x)",
            passed=ratio <= GOAL,
        )
    ]


if __name__ == "__main__":
    from benchmarks.report import format_table

    print(format_table(run()))
