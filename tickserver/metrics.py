"""Prometheus-style metrics without a dependency: counters, gauges, histograms, collectors.

Components create their metrics from the app's :class:`Metrics` registry (names prefixed
``tickserver_``) or register a collector that reports current values at scrape time. The
``/metrics`` route renders the Prometheus text format; CloudWatch export reads ``samples()``.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    """One value of one metric with its labels."""

    name: str
    labels: Labels
    value: float


@dataclass
class Family:
    """A metric family as rendered: name, kind, help text and samples."""

    name: str
    kind: Kind
    help: str
    samples: list[Sample] = field(default_factory=list)


def _labels(names: Sequence[str], values: dict[str, str]) -> Labels:
    if set(values) != set(names):
        raise ValueError(f"expected labels {sorted(names)}, got {sorted(values)}")
    return tuple((n, str(values[n])) for n in names)


class _Metric:
    kind: Kind

    def __init__(self, name: str, help: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)


class Counter(_Metric):
    """A monotonically increasing count."""

    kind: Kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (≥ 0) to the series selected by ``labels``."""
        key = _labels(self.labelnames, labels) if labels or self.labelnames else ()
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """Return the current value of one series (0 if never incremented)."""
        return self._values.get(_labels(self.labelnames, labels) if labels else (), 0.0)

    def collect(self) -> Family:
        return Family(
            self.name,
            "counter",
            self.help,
            [Sample(self.name, k, v) for k, v in self._values.items()],
        )


class Gauge(Counter):
    """A value that goes up and down."""

    kind: Kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        """Set the series selected by ``labels``."""
        key = _labels(self.labelnames, labels) if labels or self.labelnames else ()
        self._values[key] = value

    def collect(self) -> Family:
        fam = super().collect()
        fam.kind = "gauge"
        return fam


class Histogram(_Metric):
    """Counts of observations per bucket (cumulative on render), with sum and count."""

    kind: Kind = "histogram"

    def __init__(
        self, name: str, help: str, buckets: Sequence[float], labelnames: Sequence[str] = ()
    ) -> None:
        super().__init__(name, help, labelnames)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[Labels, list[float]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, **labels: str) -> None:
        """Record one observation."""
        key = _labels(self.labelnames, labels) if labels or self.labelnames else ()
        with self._lock:
            s = self._series.get(key)
            if s is None:
                s = self._series[key] = [0.0] * (len(self.buckets) + 3)
            s[bisect.bisect_left(self.buckets, value)] += 1
            s[-2] += value
            s[-1] += 1

    def collect(self) -> Family:
        fam = Family(self.name, "histogram", self.help)
        with self._lock:
            for key, s in self._series.items():
                cum = 0.0
                for i, b in enumerate((*self.buckets, math.inf)):
                    cum += s[i]
                    le = "+Inf" if b == math.inf else repr(b)
                    fam.samples.append(Sample(self.name + "_bucket", (*key, ("le", le)), cum))
                fam.samples.append(Sample(self.name + "_sum", key, s[-2]))
                fam.samples.append(Sample(self.name + "_count", key, s[-1]))
        return fam


Collector = Callable[[], Iterable[Family]]


class Metrics:
    """The process's metric registry."""

    def __init__(self, prefix: str = "tickserver_") -> None:
        self.prefix = prefix
        self._metrics: dict[str, _Metric] = {}
        self._collectors: list[Collector] = []

    def _add(self, m: _Metric) -> None:
        if m.name in self._metrics:
            raise ValueError(f"metric {m.name} registered twice")
        self._metrics[m.name] = m

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        """Create and register a counter named ``<prefix><name>``."""
        c = Counter(self.prefix + name, help, labelnames)
        self._add(c)
        return c

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        """Create and register a gauge named ``<prefix><name>``."""
        g = Gauge(self.prefix + name, help, labelnames)
        self._add(g)
        return g

    def histogram(
        self, name: str, help: str, buckets: Sequence[float], labelnames: Sequence[str] = ()
    ) -> Histogram:
        """Create and register a histogram named ``<prefix><name>``."""
        h = Histogram(self.prefix + name, help, buckets, labelnames)
        self._add(h)
        return h

    def register_collector(self, fn: Collector) -> None:
        """Call ``fn`` at every scrape; it returns families of current values."""
        self._collectors.append(fn)

    def family(self, name: str, kind: Kind, help: str) -> Family:
        """Start a family for a collector (name gets the prefix)."""
        return Family(self.prefix + name, kind, help)

    def collect(self) -> list[Family]:
        """Return every family: registered metrics then collectors."""
        fams = [m.collect() for m in self._metrics.values()]  # type: ignore[attr-defined]
        for fn in self._collectors:
            fams.extend(fn())
        return fams

    def render(self) -> str:
        """Render the Prometheus text exposition format (version 0.0.4)."""
        out: list[str] = []
        for fam in self.collect():
            out.append(f"# HELP {fam.name} {_escape_help(fam.help)}")
            out.append(f"# TYPE {fam.name} {fam.kind}")
            for s in fam.samples:
                out.append(f"{s.name}{_render_labels(s.labels)} {_num(s.value)}")
        return "\n".join(out) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _render_labels(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
    return "{" + body + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))
