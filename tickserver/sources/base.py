"""The Source protocol: what a market-data provider module implements.

A source is a component (``start``/``stop``/``health``) that publishes batches on the bus:
``Topic.RAW_TRADES`` (:class:`~tickserver.events.TradeBatch`), ``Topic.RAW_QUOTES``
(:class:`~tickserver.events.QuoteBatch`) and/or ``Topic.RAW_BOOK``
(:class:`~tickserver.events.BookDeltaBatch`). Sources know events and the bus, never the API
or the sinks.

Adding a provider is one module that defines a pydantic config model (its ``[sources.<name>]``
section), a :class:`Source` subclass and a module-level ``PLUGIN = SourcePlugin(...)``,
registered by name in :mod:`tickserver.sources.registry` or by a third-party package under
the ``tickserver.sources`` entry-point group (docs/sources.md, "Adding a provider", and the
example package in ``examples/tickserver-example-source``).

What the base class does for every source:

- **validation** (:mod:`tickserver.sources.validation`): ``publish_trades``/``publish_quotes``/
  ``publish_book`` drop or flag bad events before they reach the bus, with counters;
- **sequence numbers**: trades and quotes are numbered *after* validation, so ``seq`` is
  gap-free per source over what the engine actually receives (a block reserved with
  :meth:`Source.next_seq` for a batch is given back and re-issued for the rows that pass);
  book deltas keep the source's own per-symbol book sequence;
- **health**: connected, last event time and age, lag, errors by kind, backoff state and
  request budgets, reported in ``/readyz``, GraphQL ``status`` and ``/metrics``
  (``tickserver_source_*``).
"""

from __future__ import annotations

import collections
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from tickserver.bus import Topic
from tickserver.component import BaseComponent, Health, Kind
from tickserver.events import BookDeltaBatch, Flag, QuoteBatch, TradeBatch
from tickserver.metrics import Family, Sample
from tickserver.sources.validation import Validator

if TYPE_CHECKING:
    from tickserver.bus import Bus
    from tickserver.config import Config
    from tickserver.metrics import Metrics
    from tickserver.symbols import Symbols


@dataclass(frozen=True)
class SourceContext:
    """What a source gets from the app: the bus, the symbol table, metrics and the config."""

    config: Config
    bus: Bus
    symbols: Symbols
    metrics: Metrics
    symbols_override: tuple[str, ...] | None = None
    """Symbols given on the command line (``--symbols``), replacing the configured ones."""

    def symbols_for(self, configured: list[str] | None) -> list[str]:
        """Pick a source's symbols: command line, else its section, else ``market.symbols``."""
        if self.symbols_override:
            return list(self.symbols_override)
        if configured:
            return list(configured)
        return list(self.config.market.symbols)


class SourceMetrics:
    """The ``tickserver_source_*`` metrics, one set per metrics registry, shared by sources."""

    _by_registry: weakref.WeakKeyDictionary[Metrics, SourceMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.errors = metrics.counter(
            "source_errors_total", "Source errors by kind", ["source", "kind"]
        )
        self.reconnects = metrics.counter(
            "source_reconnects_total", "Stream reconnects by reason", ["source", "reason"]
        )
        self.validation = metrics.counter(
            "source_validation_total",
            "Events dropped, rejected or flagged at the source boundary",
            ["source", "type", "check", "action"],
        )
        self.requests = metrics.counter(
            "source_requests_total",
            "Provider requests by outcome",
            ["source", "endpoint", "outcome"],
        )
        self.backfilled = metrics.counter(
            "source_backfill_bars_total", "Bars filled in from history after a gap", ["source"]
        )
        self.sources: weakref.WeakSet[Source] = weakref.WeakSet()
        metrics.register_collector(self._collect)

    @classmethod
    def of(cls, metrics: Metrics) -> SourceMetrics:
        """Return the source metrics of ``metrics`` (created on first use)."""
        sm = cls._by_registry.get(metrics)
        if sm is None:
            sm = cls._by_registry[metrics] = cls(metrics)
        return sm

    def _collect(self) -> Iterable[Family]:
        m = self.metrics
        fams = {
            "connected": m.family(
                "source_connected", "gauge", "1 while the source's stream/API is reachable"
            ),
            "age": m.family(
                "source_last_event_age_seconds",
                "gauge",
                "Seconds since the source last published an event",
            ),
            "lag": m.family(
                "source_lag_seconds", "gauge", "Receive time minus event time of the last event"
            ),
            "backoff": m.family(
                "source_backoff_seconds", "gauge", "Seconds left before the source retries"
            ),
            "budget": m.family(
                "source_budget_remaining", "gauge", "Provider requests left in each quota window"
            ),
        }
        now = time.time_ns()
        for src in sorted(self.sources, key=lambda s: s.name):
            lab = (("source", src.name),)
            if src.connected is not None:
                fams["connected"].samples.append(
                    Sample(fams["connected"].name, lab, float(src.connected))
                )
            if src.last_recv_ns:
                fams["age"].samples.append(
                    Sample(fams["age"].name, lab, (now - src.last_recv_ns) / 1e9)
                )
                fams["lag"].samples.append(Sample(fams["lag"].name, lab, src.lag_ns / 1e9))
            fams["backoff"].samples.append(
                Sample(fams["backoff"].name, lab, src.backoff_remaining_s())
            )
            for window, left in src.budget_remaining().items():
                fams["budget"].samples.append(
                    Sample(fams["budget"].name, (*lab, ("window", window)), float(left))
                )
        return list(fams.values())


class Source(BaseComponent):
    """Base class of sources: validation, sequence numbering, publishing and health."""

    kind: Kind = "source"
    live: bool = True
    """Live sources stamp ``ts_event`` near the wall clock, so the engine closes bars on the
    wall clock; replay sources set this False and bars close on event time."""
    validation_overrides: ClassVar[dict[str, Any]] = {}
    """Policies of ``[sources.validation]`` this kind of source always overrides."""

    def __init__(self, name: str, ctx: SourceContext) -> None:
        super().__init__(name)
        self.ctx = ctx
        self._seq = 0
        self.events_out = 0
        self.symbols: list[str] = []
        """The symbols this source serves (two sources may not serve the same symbol)."""
        self.source_metrics = SourceMetrics.of(ctx.metrics)
        self.source_metrics.sources.add(self)
        vcfg = ctx.config.sources.validation
        if self.validation_overrides:
            vcfg = vcfg.model_copy(update=self.validation_overrides)
        self.validator = Validator(name, vcfg, self.source_metrics.validation)
        self.connected: bool | None = None
        """True/False for sources with a connection or remote API; None when meaningless."""
        self.last_event_ns = 0
        self.last_recv_ns = 0
        self.lag_ns = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.last_error = ""
        self._backoff_until_ns = 0
        self._backoff_reason = ""
        self._backoff_attempt = 0

    # ------------------------------------------------------------------ sequence
    def next_seq(self, n: int) -> NDArray[np.uint64]:
        """Reserve ``n`` sequence numbers (1-based, gap-free per source) and return them."""
        start = self._seq + 1
        self._seq += n
        return np.arange(start, start + n, dtype=np.uint64)

    @property
    def last_seq(self) -> int:
        """The last sequence number handed out."""
        return self._seq

    def _renumber(self, seq_in: NDArray[np.uint64], n_out: int) -> NDArray[np.uint64]:
        n_in = len(seq_in)
        first = int(seq_in[0]) if n_in else 0
        if n_in and first >= 1 and first == self._seq - n_in + 1 and int(seq_in[-1]) == self._seq:
            self._seq -= n_in  # the caller reserved exactly this block: give it back
        return self.next_seq(n_out)

    # ------------------------------------------------------------------ publishing
    def publish_trades(self, batch: TradeBatch) -> TradeBatch:
        """Validate a trade batch, number it, and hand it to the engine (via the bus).

        Returns the batch as published (possibly empty).
        """
        return self._publish_numbered(batch, self.validator.trades, Topic.RAW_TRADES)

    def publish_quotes(self, batch: QuoteBatch) -> QuoteBatch:
        """Validate a quote batch, number it, and hand it to the engine (via the bus)."""
        return self._publish_numbered(batch, self.validator.quotes, Topic.RAW_QUOTES)

    def _publish_numbered(self, batch: _B, check: Callable[[_B], _B], topic: str) -> _B:
        if not len(batch):
            return batch
        checked = check(batch)
        seq = self._renumber(batch.seq, len(checked))
        if not len(checked):
            return checked
        checked = _replace_seq(checked, seq)
        self._note(checked.ts_event, checked.ts_init, checked.flags)
        self.ctx.bus.publish(topic, checked)
        return checked

    def publish_book(self, batch: BookDeltaBatch) -> BookDeltaBatch:
        """Validate an L2 delta batch and hand it to the engine (via the bus)."""
        if not len(batch):
            return batch
        checked = self.validator.book(batch)
        if len(checked):
            self._note(checked.ts_event, checked.ts_init, checked.flags)
            self.ctx.bus.publish(Topic.RAW_BOOK, checked)
        return checked

    def _note(
        self, ts_event: NDArray[np.int64], ts_init: NDArray[np.int64], flags: NDArray[np.uint8]
    ) -> None:
        self.events_out += len(ts_event)
        self.last_event_ns = max(self.last_event_ns, int(ts_event.max()))
        self.last_recv_ns = time.time_ns()
        live = np.flatnonzero((flags & np.uint8(Flag.BACKFILL)) == 0)
        if len(live):
            i = live[-1]
            self.lag_ns = int(ts_init[i]) - int(ts_event[i])

    # ------------------------------------------------------------------ health
    def record_error(self, kind: str, message: str = "", *, level: int = logging.WARNING) -> None:
        """Count an error of ``kind`` (``rate_limited``, ``http_5xx``, ``decode`` …) and log it."""
        self.errors[kind] += 1
        self.source_metrics.errors.inc(source=self.name, kind=kind)
        if message:
            self.last_error = f"{kind}: {message}"
            self.log.log(level, "%s (%s)", message, kind)

    def record_request(self, endpoint: str, outcome: str) -> None:
        """Count one provider request by outcome (``ok``, ``error``, ``quota`` …)."""
        self.source_metrics.requests.inc(source=self.name, endpoint=endpoint, outcome=outcome)

    def record_reconnect(self, reason: str) -> None:
        """Count a reconnect (``disconnect``, ``stale``, ``error``)."""
        self.source_metrics.reconnects.inc(source=self.name, reason=reason)

    def set_connected(self, connected: bool) -> None:
        """Record whether the provider is reachable right now."""
        self.connected = connected

    def set_backoff(self, seconds: float, reason: str, attempt: int = 0) -> None:
        """Record that the source waits ``seconds`` before retrying (0 clears it)."""
        self._backoff_until_ns = time.time_ns() + int(seconds * 1e9) if seconds > 0 else 0
        self._backoff_reason = reason if seconds > 0 else ""
        self._backoff_attempt = attempt

    def backoff_remaining_s(self) -> float:
        """Seconds left in the current backoff (0 when not backing off)."""
        return max(0.0, (self._backoff_until_ns - time.time_ns()) / 1e9)

    def budget_remaining(self) -> dict[str, int]:
        """Requests left per quota window (override in sources with quotas)."""
        return {}

    def health_details(self) -> dict[str, Any]:
        """Source-specific facts added to the health report (override to extend)."""
        return {}

    def health(self) -> Health:
        """Report state plus connected, last event, lag, errors, backoff, budget, validation."""
        h = self._health
        now = time.time_ns()
        remaining = self.backoff_remaining_s()
        h.details.update(
            connected=self.connected,
            symbols=list(self.symbols),
            events=self.events_out,
            last_event=_iso(self.last_event_ns) if self.last_event_ns else None,
            last_event_age_s=round((now - self.last_recv_ns) / 1e9, 3)
            if self.last_recv_ns
            else None,
            lag_s=round(self.lag_ns / 1e9, 3) if self.last_recv_ns else None,
            errors=dict(self.errors),
            last_error=self.last_error or None,
            backoff={
                "active": remaining > 0,
                "remaining_s": round(remaining, 3),
                "attempt": self._backoff_attempt,
                "reason": self._backoff_reason or None,
            },
            validation=self.validator.summary(),
        )
        budget = self.budget_remaining()
        if budget:
            h.details["budget_remaining"] = budget
        h.details.update(self.health_details())
        return h


def _iso(ts: int) -> str:
    import datetime as dt

    sec, ns = divmod(int(ts), 1_000_000_000)
    return dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


_B = TypeVar("_B", TradeBatch, QuoteBatch)


def _replace_seq(batch: _B, seq: NDArray[np.uint64]) -> _B:
    cols = {name: getattr(batch, name) for name in batch._dtypes}
    cols["seq"] = seq
    return type(batch)(**batch._scalars(), **cols)


@dataclass(frozen=True)
class SourcePlugin:
    """How the registry knows a provider: its name, config model and factory.

    ``factory(ctx, cfg)`` receives the :class:`SourceContext` and the validated
    ``[sources.<name>]`` section (an instance of ``config_model``) and returns a :class:`Source`.
    """

    name: str
    config_model: type[BaseModel]
    factory: Callable[[SourceContext, Any], Source]
    description: str = ""
