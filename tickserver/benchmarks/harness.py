"""Shared benchmark harness: repeated timing with medians, side-by-side tables, JSON output."""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Report:
    """What a benchmark measured.

    ``results`` maps ``"<system>/<case>"`` to a number in ``unit``; ``baseline`` names, per
    case, the system the ratios are taken against (``{"ema": "tickserver-batch"}``);
    ``extra`` holds anything else worth printing (RSS, counts, checks).
    """

    bench: str
    unit: str
    results: dict[str, float] = field(default_factory=dict)
    lower_is_better: bool = True
    baseline: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, system: str, case: str, value: float) -> None:
        """Record one figure."""
        self.results[f"{system}/{case}"] = value

    def to_json(self) -> dict[str, Any]:
        """The object printed as the last line with ``--json``."""
        out: dict[str, Any] = {"bench": self.bench, "unit": self.unit, "results": self.results}
        if self.extra:
            out["extra"] = self.extra
        return out


def measure(
    fn: Callable[[], Any],
    *,
    ops: int,
    repeat: int = 5,
    warmup: int = 1,
    setup: Callable[[], Any] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> float:
    """Run ``fn`` ``repeat`` times (after ``warmup`` runs) and return the median ns per op.

    ``setup`` (not timed) runs before every call, e.g. to build fresh state. ``clock`` returns
    nanoseconds; ``time.thread_time_ns`` measures CPU time, which time spent descheduled on a
    busy machine does not inflate.
    """
    samples: list[float] = []
    for i in range(warmup + repeat):
        if setup is not None:
            setup()
        gc.collect()
        gc.disable()
        try:
            t0 = clock()
            fn()
            dt = clock() - t0
        finally:
            gc.enable()
        if i >= warmup:
            samples.append(dt / ops)
    return statistics.median(samples)


def print_report(report: Report, *, as_json: bool, out: TextIO = sys.stdout) -> None:
    """Print a table per case with every system's figure and its ratio to the baseline.

    With ``as_json`` the last line printed is one JSON object (``Report.to_json``).
    """
    cases: dict[str, dict[str, float]] = {}
    for key, value in report.results.items():
        system, _, case = key.partition("/")
        cases.setdefault(case, {})[system] = value
    width = max((len(s) for c in cases.values() for s in c), default=10) + 2
    print(f"tickserver bench {report.bench}  ({report.unit}, median of repeats)", file=out)
    for case, systems in cases.items():
        print(f"\n  {case}", file=out)
        base = systems.get(report.baseline or "", None)
        for system, value in systems.items():
            ratio = ""
            if base and system != report.baseline and value > 0:
                r = value / base if report.lower_is_better else base / value
                # r > 1: the baseline is r times faster (cheaper per op, or more per second).
                ratio = (
                    f"  ({report.baseline} {r:,.1f}x faster)"
                    if r >= 1
                    else f"  ({system} {1 / r:,.1f}x faster than {report.baseline})"
                )
            print(f"    {system:<{width}} {value:>14,.1f}{ratio}", file=out)
    for k, v in report.extra.items():
        print(f"  {k}: {v}", file=out)
    for note in report.notes:
        print(f"  note: {note}", file=out)
    if as_json:
        print(json.dumps(report.to_json(), sort_keys=True), file=out)
