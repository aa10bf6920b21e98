"""The engine: raw batches from sources in, through the C++ core, results out on the bus.

It attaches lossless callbacks to ``raw.trades``, ``raw.quotes`` and ``raw.book``, hands each
batch to :class:`tickserver._core.Engine` in one call, and publishes what came back: accepted
trades, top-of-book quotes of symbols whose book changed, closed (and forming) bars,
indicator values at bar close, and signals. A clock task closes bars on time even when no
trade arrives. Read-side snapshots (``quote``, ``ticks``, ``bars``, …) serve the API.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tickserver import _core
from tickserver.bus import Bus, Topic
from tickserver.calendar import get_calendar
from tickserver.component import BaseComponent, Kind
from tickserver.config import INTERVALS, Config
from tickserver.events import (
    BarBatch,
    BookDeltaBatch,
    IndicatorBatch,
    QuoteBatch,
    SignalBatch,
    TradeBatch,
)
from tickserver.metrics import Family, Metrics, Sample
from tickserver.symbols import Symbols

log = logging.getLogger(__name__)

NS_TO_INTERVAL = {ns: name for name, ns in INTERVALS.items()}


@dataclass(frozen=True)
class SignalRecord:
    """One fired signal as kept for queries."""

    ts_event: int
    symbol: str
    rule: str
    interval: str
    direction: int
    value: float


def _build_specs(cfg: Config) -> tuple[list[Any], list[Any]]:
    """Core specs of the configured indicators and rules (the config validated references)."""
    specs = [
        _core.IndicatorSpec(
            ind.name,
            ind.kind,
            INTERVALS[iv],
            period=ind.period,
            fast=ind.fast,
            slow=ind.slow,
            signal=ind.signal,
            k=ind.k,
        )
        for ind in cfg.indicators
        for iv in ind.intervals
    ]
    rules = []
    for r in cfg.signals:
        a, b = {
            "crossover": (r.fast or "", r.slow or ""),
            "threshold": (r.indicator or "", ""),
            "breakout": (r.band or "", ""),
        }[r.kind]
        rules.append(
            _core.RuleSpec(
                r.name,
                r.kind,
                INTERVALS[r.interval],
                a=a,
                b=b,
                above=math.nan if r.above is None else r.above,
                below=math.nan if r.below is None else r.below,
            )
        )
    return specs, rules


class Engine(BaseComponent):
    """Drive the C++ core from the bus and answer snapshot queries."""

    kind: Kind = "engine"

    def __init__(
        self,
        cfg: Config,
        bus: Bus,
        symbols: Symbols,
        metrics: Metrics,
        *,
        live_clock: bool = True,
    ) -> None:
        super().__init__("engine")
        self.cfg = cfg
        self.bus = bus
        self.symbols = symbols
        self.metrics = metrics
        self.live_clock = live_clock
        specs, rules = _build_specs(cfg)
        self.intervals = [INTERVALS[i] for i in cfg.market.intervals]
        self.core = _core.Engine(
            symbols.registry,
            ring_capacity=cfg.market.ring_capacity,
            bar_capacity=cfg.market.bar_capacity,
            intervals=self.intervals,
            indicators=specs,
            rules=rules,
            tick_size=cfg.market.tick_size,
        )
        # 1d bars and session VWAP follow the exchange's sessions, not UTC midnight.
        self.calendar = get_calendar(cfg.market.calendar, cfg.market.timezone)
        if hasattr(self.core, "set_day_boundaries"):
            self.core.set_day_boundaries(self.calendar.day_boundaries())
        self.rule_names: tuple[str, ...] = tuple(self.core.rule_names())
        self.rule_interval = {r.name: r.interval for r in cfg.signals}
        self._output_names: dict[int, tuple[str, ...]] = {}
        self._tick_sizes_set = 0
        self.event_clock = 0
        self._dirty: set[int] = set()
        self.recent_signals: collections.deque[SignalRecord] = collections.deque(maxlen=10_000)
        self.signals_by_symbol: dict[str, collections.deque[SignalRecord]] = {}
        self.last_event_ns = 0
        self._detach: list[Any] = []

        m = metrics
        self.m_in = m.counter("events_in_total", "Events received from sources", ["source", "type"])
        self.m_rejects = m.counter(
            "rejects_total", "Events rejected by the engine", ["source", "type", "reason"]
        )
        self.m_late = m.counter("late_trades_total", "Trades older than their forming bar")
        self.m_bars = m.counter("bars_closed_total", "Bars closed", ["interval"])
        self.m_signals = m.counter("signals_total", "Signals fired", ["rule"])
        self.m_latency = m.histogram(
            "core_batch_seconds",
            "Time the core spent on one batch",
            [1e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2],
            ["type"],
        )
        self.m_per_event = m.gauge(
            "core_ns_per_event", "Core cost per event of the last batch", ["type"]
        )
        m.register_collector(self._collect)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Attach to the raw topics and start the bar clock."""
        self._detach = [
            self.bus.attach(Topic.RAW_TRADES, self.on_trades, name="engine.trades"),
            self.bus.attach(Topic.RAW_QUOTES, self.on_quotes, name="engine.quotes"),
            self.bus.attach(Topic.RAW_BOOK, self.on_book, name="engine.book"),
        ]
        self.spawn(self._clock(), name="clock")
        self.set_health("ok")

    async def stop(self) -> None:
        """Detach from the bus and stop the clock.

        Forming bars are left open: publishing them as closed would give a restarted server
        a second, partial bar for the same interval. The trades themselves reach the sinks.
        """
        if self._stopped:
            return
        for d in self._detach:
            d()
        await super().stop()

    def flush_forming(self) -> None:
        """Close every forming bar (at shutdown or the end of a replay)."""
        res = self.core.advance(2**62)
        self._publish_result(res)

    # ------------------------------------------------------------------ ingest
    def _sync_symbols(self) -> None:
        n = len(self.symbols)
        if n == self._tick_sizes_set:
            return
        sizes = self.cfg.market.tick_sizes
        for sid in range(self._tick_sizes_set, n):
            ts = sizes.get(self.symbols.name(sid))
            if ts is not None:
                self.core.set_tick_size(sid, ts)
        self._tick_sizes_set = n

    def on_trades(self, batch: TradeBatch) -> None:
        """Feed a trade batch to the core and publish the results."""
        self._sync_symbols()
        n = len(batch)
        self.m_in.inc(n, source=batch.source, type="trade")
        t0 = time.perf_counter_ns()
        res = self.core.on_trades(
            batch.symbol_id, batch.ts_event, batch.price, batch.size, batch.seq, batch.flags
        )
        dt = time.perf_counter_ns() - t0
        self.m_latency.observe(dt / 1e9, type="trade")
        self.m_per_event.set(dt / max(n, 1), type="trade")
        accepted = self._accepted(
            batch, res.rejected, res.reject_reason, "trade", _core.reject_reason_name
        )
        if res.late:
            self.m_late.inc(res.late)
        if len(accepted):
            top = int(accepted.ts_event.max())
            if top > self.event_clock:
                self.event_clock = top
            self.last_event_ns = time.time_ns()
            self._dirty.update(np.unique(accepted.symbol_id).tolist())
            self.bus.publish(Topic.TRADES, accepted)
        self._publish_result(res)

    def on_quotes(self, batch: QuoteBatch) -> None:
        """Feed top-of-book quotes (L1 sources) to the books and publish accepted ones."""
        self._sync_symbols()
        n = len(batch)
        self.m_in.inc(n, source=batch.source, type="quote")
        res = self.core.on_quotes(
            batch.symbol_id, batch.bid_px, batch.bid_sz, batch.ask_px, batch.ask_sz, batch.seq
        )
        accepted = self._accepted(batch, res.rejected, res.reasons, "quote", _core.book_status_name)
        if len(accepted):
            self.last_event_ns = time.time_ns()
            self.bus.publish(Topic.QUOTES, accepted)

    def on_book(self, batch: BookDeltaBatch) -> None:
        """Apply L2 deltas (checked) and publish the changed tops of book as quotes."""
        self._sync_symbols()
        n = len(batch)
        self.m_in.inc(n, source=batch.source, type="book")
        t0 = time.perf_counter_ns()
        res = self.core.on_book_deltas(
            batch.symbol_id, batch.side, batch.price, batch.size, batch.seq, True
        )
        dt = time.perf_counter_ns() - t0
        self.m_latency.observe(dt / 1e9, type="book")
        self.m_per_event.set(dt / max(n, 1), type="book")
        accepted = self._accepted(batch, res.rejected, res.reasons, "book", _core.book_status_name)
        if len(accepted):
            self.last_event_ns = time.time_ns()
            if self.bus.has_listeners(Topic.BOOK):
                self.bus.publish(Topic.BOOK, accepted)
        changed = res.changed
        if len(changed) and self.bus.has_listeners(Topic.QUOTES):
            ts = int(batch.ts_event[-1])
            self.bus.publish(Topic.QUOTES, self.top_of_book(changed, ts, batch.source))

    def top_of_book(self, symbol_ids: NDArray[np.uint32], ts: int, source: str) -> QuoteBatch:
        """Build a QuoteBatch of the current best bid/ask of ``symbol_ids``."""
        k = len(symbol_ids)
        cols = np.empty((4, k), dtype=np.float64)
        for j, sid in enumerate(symbol_ids.tolist()):
            st = self.core.book_stats(sid)
            cols[0, j] = st["bid_px"]
            cols[1, j] = st["bid_sz"]
            cols[2, j] = st["ask_px"]
            cols[3, j] = st["ask_sz"]
        now = time.time_ns()
        return QuoteBatch(
            source=source,
            symbol_id=np.ascontiguousarray(symbol_ids, dtype=np.uint32),
            ts_event=np.full(k, ts, dtype=np.int64),
            ts_init=np.full(k, now, dtype=np.int64),
            bid_px=cols[0].copy(),
            bid_sz=cols[1].copy(),
            ask_px=cols[2].copy(),
            ask_sz=cols[3].copy(),
            seq=np.zeros(k, dtype=np.uint64),
            flags=np.zeros(k, dtype=np.uint8),
        )

    def _accepted(
        self,
        batch: Any,
        rejected: NDArray[np.int64],
        reasons: NDArray[np.uint8],
        kind: str,
        namer: Any,
    ) -> Any:
        """``batch`` without its rejected rows (counted by reason)."""
        if not len(rejected):
            return batch
        self._count_rejects(batch.source, kind, reasons, namer)
        mask = np.ones(len(batch), dtype=bool)
        mask[rejected] = False
        return batch.take(mask)

    def _count_rejects(
        self, source: str, kind: str, reasons: NDArray[np.uint8], namer: Any
    ) -> None:
        codes, counts = np.unique(reasons, return_counts=True)
        for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
            self.m_rejects.inc(count, source=source, type=kind, reason=namer(code))
        log.debug("%s: %d %s rows rejected", source, int(counts.sum()), kind)

    # ------------------------------------------------------------------ results
    def output_names(self, interval_ns: int) -> tuple[str, ...]:
        """Indicator output names computed on ``interval_ns`` (0 = tick)."""
        names = self._output_names.get(interval_ns)
        if names is None:
            names = self._output_names[interval_ns] = tuple(self.core.indicator_names(interval_ns))
        return names

    def _publish_result(self, res: Any) -> None:
        if res.n_bars:
            bars = res.bars
            iv = bars["interval"]
            for ns in np.unique(iv).tolist():
                sel = iv == ns
                name = NS_TO_INTERVAL.get(ns, f"{ns}ns")
                self.m_bars.inc(int(sel.sum()), interval=name)
                self.bus.publish(
                    Topic.BARS,
                    BarBatch(
                        interval=name,
                        final=True,
                        symbol_id=bars["symbol_id"][sel],
                        ts_event=bars["ts_event"][sel],
                        open=bars["open"][sel],
                        high=bars["high"][sel],
                        low=bars["low"][sel],
                        close=bars["close"][sel],
                        volume=bars["volume"][sel],
                        vwap=bars["vwap"][sel],
                        trades=bars["trades"][sel],
                    ),
                )
            ind = res.indicators
            if len(ind["value"]) and self.bus.has_listeners(Topic.INDICATORS):
                iv2 = ind["interval"]
                for ns in np.unique(iv2).tolist():
                    sel = iv2 == ns
                    self.bus.publish(
                        Topic.INDICATORS,
                        IndicatorBatch(
                            interval=NS_TO_INTERVAL.get(ns, f"{ns}ns"),
                            final=True,
                            outputs=self.output_names(ns),
                            symbol_id=ind["symbol_id"][sel],
                            ts_event=ind["ts_event"][sel],
                            output_id=ind["output_id"][sel],
                            value=ind["value"][sel],
                        ),
                    )
        if res.n_signals:
            sig = res.signals
            batch = SignalBatch(
                rules=self.rule_names,
                symbol_id=sig["symbol_id"],
                ts_event=sig["ts_event"],
                rule_id=sig["rule_id"],
                direction=sig["direction"],
                value=sig["value"],
            )
            self._remember_signals(batch)
            self.bus.publish(Topic.SIGNALS, batch)

    def _remember_signals(self, batch: SignalBatch) -> None:
        names = self.symbols.names_of(batch.symbol_id)
        for i in range(len(batch)):
            rule = self.rule_names[int(batch.rule_id[i])]
            self.m_signals.inc(rule=rule)
            rec = SignalRecord(
                ts_event=int(batch.ts_event[i]),
                symbol=str(names[i]),
                rule=rule,
                interval=self.rule_interval.get(rule, ""),
                direction=int(batch.direction[i]),
                value=float(batch.value[i]),
            )
            self.recent_signals.append(rec)
            dq = self.signals_by_symbol.get(rec.symbol)
            if dq is None:
                dq = self.signals_by_symbol[rec.symbol] = collections.deque(maxlen=1000)
            dq.append(rec)

    # ------------------------------------------------------------------ clock
    def clock_now(self) -> int:
        """The time bars close on: the wall clock for live feeds, else the latest event."""
        if self.live_clock:
            return time.time_ns()
        return self.event_clock

    async def _clock(self) -> None:
        ec = self.cfg.engine
        grace = ec.bar_close_grace_ms * 1_000_000
        forming_every = ec.forming_update_ms / 1000.0
        last_forming = 0.0
        while True:
            await asyncio.sleep(ec.advance_interval_ms / 1000.0)
            now = self.clock_now()
            if now:
                self._publish_result(self.core.advance(now - grace))
            mono = time.monotonic()
            if ec.forming_updates and mono - last_forming >= forming_every:
                last_forming = mono
                self._publish_forming()

    def _publish_forming(self) -> None:
        if not self._dirty or not self.bus.has_listeners(Topic.BARS):
            self._dirty.clear()
            return
        dirty = sorted(self._dirty)
        self._dirty.clear()
        for ns in self.intervals:
            rows = [
                {**b, "symbol_id": sid}
                for sid in dirty
                if (b := self.core.forming_bar(sid, ns)) is not None
            ]
            if not rows:
                continue
            self.bus.publish(Topic.BARS, _bars_from_rows(NS_TO_INTERVAL.get(ns, ""), rows))

    # ------------------------------------------------------------------ metrics
    def _collect(self) -> Iterable[Family]:
        c = self.core.counters()
        fam = self.metrics.family("core_counter", "counter", "Counters kept by the C++ core")
        fam.samples = [Sample(fam.name, (("counter", k),), float(v)) for k, v in c.items()]
        return [fam]


def _bars_from_rows(interval: str, rows: list[dict[str, Any]]) -> BarBatch:
    def col(key: str, dtype: Any) -> NDArray[Any]:
        return np.asarray([r[key] for r in rows], dtype=dtype)

    return BarBatch(
        interval=interval,
        final=False,
        symbol_id=col("symbol_id", np.uint32),
        ts_event=col("ts_event", np.int64),
        open=col("open", np.float64),
        high=col("high", np.float64),
        low=col("low", np.float64),
        close=col("close", np.float64),
        volume=col("volume", np.float64),
        vwap=col("vwap", np.float64),
        trades=col("trades", np.uint64),
    )
