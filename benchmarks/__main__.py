"""``make bench``: run every ``benchmarks/bench_*.py`` and print one table.

Each module exposes ``run() -> list[Result]``. Figures are ratios against a
baseline measured in the same run, so they mean the same on any machine.
Exit status 1 when any goal is missed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks.report import Result, format_table


def main(selected: list[str]) -> int:
    folder = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if m.name.startswith("bench_"))
    if selected:
        names = [name for name in names if any(s in name for s in selected)]
    results: list[Result] = []
    for name in names:
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        results.extend(module.run())
        print(f"  {name} took {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    print(format_table(results))
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
