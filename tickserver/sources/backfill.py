"""Bars from a provider's history, emitted so the engine's bars stay in order and hole-free.

Live sources publish real trades; when live data stops (a reconnect, a silent socket, a
provider outage) the minutes in between have no trades, so the engine would have no bars for
them. :class:`BarCoverage` remembers, per symbol, the newest event published and turns
provider bars into synthetic trades (:func:`tickserver.events.bars_to_trades`: O, H/L, L/H, C
at 0, 15, 30 and 45 s into the minute) **strictly for complete bars after the last published
event and before live data resumes**:

- a bar is eligible only if it opens at or after the first minute boundary following the last
  published event (the minute that held the last live tick is partly covered already;
  re-emitting its full bar would count that volume twice),
- and only if it ends at or before the resume limit: the minute in which live data resumed
  (held live ticks are released right after the backfill), or the current minute when nothing
  is held — a bar still forming at the provider is never emitted.

Because every synthetic trade is newer than everything already published for the symbol and
older than everything published after it, the engine sees each symbol's trades in time order:
no backfilled trade lands in a bar it has already closed (it would be counted as *late* and
never reach the bars), and the 1m bars of the gap come out complete and in sequence. The
minutes at the two edges of a gap keep only the data that arrived live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tickserver.calendar import MINUTE_NS, floor_minute
from tickserver.events import Flag, bars_to_trades

if TYPE_CHECKING:
    from tickserver.sources.base import Source

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Bars:
    """OHLCV bars of one symbol: ``ts_open`` in UTC ns, ascending, one interval each."""

    ts_open: NDArray[np.int64]
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __len__(self) -> int:
        return len(self.ts_open)

    @classmethod
    def empty(cls) -> Bars:
        """No bars."""
        e = np.empty(0, np.float64)
        return cls(np.empty(0, np.int64), e, e, e, e, e)

    @classmethod
    def from_columns(
        cls,
        ts_open: object,
        open_: object,
        high: object,
        low: object,
        close: object,
        volume: object,
    ) -> Bars:
        """Build bars from array-likes: sorted by time, duplicate times dropped (last wins),
        rows with a missing or non-positive price dropped, missing volume read as 0."""
        ts = np.asarray(ts_open, dtype=np.int64)
        cols = [np.asarray(c, dtype=np.float64) for c in (open_, high, low, close)]
        vol = np.nan_to_num(np.asarray(volume, dtype=np.float64), nan=0.0)
        ok = np.ones(len(ts), dtype=bool)
        for c in cols:
            ok &= np.isfinite(c) & (c > 0)
        ok &= vol >= 0
        ts, vol = ts[ok], vol[ok]
        cols = [c[ok] for c in cols]
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        keep = np.ones(len(ts), dtype=bool)
        keep[:-1] = ts[1:] != ts[:-1]  # keep the last of equal timestamps
        sel = order[keep]
        return cls(
            ts[keep],
            cols[0][sel],
            cols[1][sel],
            cols[2][sel],
            cols[3][sel],
            vol[sel],
        )

    def take(self, mask: NDArray[np.bool_]) -> Bars:
        """The bars selected by ``mask``."""
        return Bars(
            self.ts_open[mask],
            self.open[mask],
            self.high[mask],
            self.low[mask],
            self.close[mask],
            self.volume[mask],
        )


class BarCoverage:
    """Per-symbol bookkeeping of what a source has published, and bar emission after gaps.

    Parameters
    ----------
    source
        The source that publishes (its validator and sequence apply to synthetic trades too).
    interval_ns
        The provider's bar interval (1 minute).
    """

    def __init__(self, source: Source, interval_ns: int = MINUTE_NS) -> None:
        self.source = source
        self.interval_ns = interval_ns
        self.last_ts: dict[str, int] = {}
        self.bars_emitted = 0

    def note(self, symbol: str, ts_event: int) -> None:
        """Record that an event at ``ts_event`` was published for ``symbol``."""
        if ts_event > self.last_ts.get(symbol, -1):
            self.last_ts[symbol] = ts_event

    def next_bar_open(self, symbol: str) -> int | None:
        """Open time of the first bar that may still be emitted (None: nothing published yet)."""
        last = self.last_ts.get(symbol)
        if last is None:
            return None
        return floor_minute(last) + self.interval_ns

    def eligible(self, symbol: str, bars: Bars, limit_ns: int, start_ns: int | None = None) -> Bars:
        """The complete bars after the last published event that end by ``limit_ns``.

        ``start_ns`` bounds the first bar when nothing was published yet (initial backfill).
        """
        first = self.next_bar_open(symbol)
        if first is None:
            first = start_ns if start_ns is not None else -(2**62)
        ends = bars.ts_open + self.interval_ns
        mask = (bars.ts_open >= first) & (ends <= limit_ns)
        return bars.take(mask)

    def emit(
        self,
        symbol: str,
        bars: Bars,
        limit_ns: int,
        *,
        backfill: bool,
        start_ns: int | None = None,
    ) -> int:
        """Publish the eligible bars of ``symbol`` as synthetic trades; return how many bars.

        Flags: ``SYNTHETIC`` always, plus ``BACKFILL`` for gap filling (``backfill=True``).
        """
        sel = self.eligible(symbol, bars, limit_ns, start_ns)
        if not len(sel):
            return 0
        src = self.source
        flags = int(Flag.SYNTHETIC | (Flag.BACKFILL if backfill else 0))
        batch = bars_to_trades(
            src.name,
            src.ctx.symbols.intern(symbol),
            sel.ts_open,
            self.interval_ns,
            sel.open,
            sel.high,
            sel.low,
            sel.close,
            sel.volume,
            first_seq=0,
            flags=flags,
        )
        published = src.publish_trades(batch)
        if len(published):
            self.note(symbol, int(published.ts_event.max()))
        # Even when validation dropped rows, the bars' time span is covered now.
        self.note(symbol, int(sel.ts_open[-1]) + 3 * (self.interval_ns // 4))
        self.bars_emitted += len(sel)
        if backfill:
            src.source_metrics.backfilled.inc(len(sel), source=src.name)
        return len(sel)
