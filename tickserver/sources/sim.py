"""The simulated market (the default source): deterministic from a seed, many symbols, trades
and L2 book updates consistent with each other, from a few events/s to millions for benches.

The generator runs in C++ (:class:`tickserver._core.MarketSim`): a fair value per symbol
follows a random walk with stochastic volatility (log-volatility is AR(1), so calm and busy
spells cluster) and rare jumps; a ladder of ``levels`` price levels per side follows it; trades
print at the touch (bid < ask always holds). The *sequence* of events depends only on the seed
and the symbol list; timestamps come from the wall clock (live) or a fixed step (``realtime =
false``, for benchmarks and tests).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tickserver._core import MarketSim
from tickserver.config import CsvList
from tickserver.events import BookDeltaBatch, TradeBatch
from tickserver.sources.base import Source, SourceContext, SourcePlugin

# Plausible reference prices for familiar tickers; anything else starts at 100.
REFERENCE_PRICES: dict[str, float] = {
    "AAPL": 228.0,
    "MSFT": 425.0,
    "NVDA": 135.0,
    "AMZN": 205.0,
    "GOOGL": 172.0,
    "META": 565.0,
    "TSLA": 345.0,
    "SPY": 595.0,
    "QQQ": 510.0,
    "AMD": 140.0,
    "NFLX": 880.0,
    "JPM": 245.0,
}


class SimConfig(BaseModel):
    """``[sources.sim]``: the simulated market."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 7
    symbols: CsvList | None = None
    prices: dict[str, float] = Field(default_factory=dict, description="Start prices.")
    tick_size: float = Field(0.01, gt=0)
    rate: float = Field(500.0, gt=0, le=50_000_000, description="Events per second, all symbols.")
    batch_ms: int = Field(50, ge=1, le=10_000, description="Publish a batch this often.")
    levels: int = Field(10, ge=2, le=200, description="L2 levels per side.")
    trade_prob: float = Field(0.25, gt=0, lt=1)
    volatility: float = Field(1.0, gt=0, description="Typical re-price move, in ticks.")
    jump_prob: float = Field(0.0005, ge=0, le=1)
    realtime: bool = Field(True, description="Stamp events with the wall clock and pace them.")
    max_events: int | None = Field(None, ge=1, description="Stop after this many events.")


class SimSource(Source):
    """Publish simulated trades and L2 deltas on the bus."""

    def __init__(self, ctx: SourceContext, cfg: SimConfig, name: str = "sim") -> None:
        super().__init__(name, ctx)
        self.cfg = cfg
        self.symbol_names = ctx.symbols_for(cfg.symbols)
        self.symbols = self.symbol_names
        self.ids = ctx.symbols.intern_many(self.symbol_names)
        prices = [cfg.prices.get(s, REFERENCE_PRICES.get(s, 100.0)) for s in self.symbol_names]
        self.sim = MarketSim(
            cfg.seed,
            [int(i) for i in self.ids],
            prices,
            [cfg.tick_size] * len(self.ids),
            trade_prob=cfg.trade_prob,
            tick_vol=cfg.volatility,
            jump_prob=cfg.jump_prob,
            levels=cfg.levels,
        )
        self.live = cfg.realtime
        self.generated = 0
        # The initial book goes out as `2 * levels` set-deltas per symbol with book sequence
        # numbers 1..2L; the generator's own per-symbol sequence is shifted past them.
        self._seq_offset = 2 * cfg.levels
        self.done = asyncio.Event()

    def health_details(self) -> dict[str, Any]:
        """Events generated so far and whether a finite feed (``max_events``) is done."""
        return {"generated": self.generated, "finished": self.done.is_set()}

    async def start(self) -> None:
        """Publish the initial books and start generating."""
        self._publish_initial_books(time.time_ns())
        self.spawn(self._run(), name="generate")
        self.set_health("ok", "", symbols=len(self.symbol_names), rate=self.cfg.rate)

    def _publish_initial_books(self, ts: int) -> None:
        cols: dict[str, list[Any]] = {k: [] for k in ("sym", "side", "px", "sz", "seq")}
        for i, sid in enumerate(self.ids):
            bp, bs, ap, as_ = self.sim.book(i)
            seq = 1
            for side, pxs, szs in ((0, bp, bs), (1, ap, as_)):
                for px, sz in zip(pxs, szs, strict=True):
                    cols["sym"].append(sid)
                    cols["side"].append(side)
                    cols["px"].append(px)
                    cols["sz"].append(sz)
                    cols["seq"].append(seq)
                    seq += 1
        n = len(cols["px"])
        self.publish_book(
            BookDeltaBatch(
                source=self.name,
                symbol_id=np.asarray(cols["sym"], dtype=np.uint32),
                ts_event=np.full(n, ts, dtype=np.int64),
                ts_init=np.full(n, ts, dtype=np.int64),
                side=np.asarray(cols["side"], dtype=np.uint8),
                price=np.asarray(cols["px"], dtype=np.float64),
                size=np.asarray(cols["sz"], dtype=np.float64),
                seq=np.asarray(cols["seq"], dtype=np.uint64),
                flags=np.zeros(n, dtype=np.uint8),
            )
        )

    def emit(self, n: int, ts_start: int, ts_step: int) -> tuple[int, int]:
        """Generate ``n`` events and publish them; return (trades, deltas) published."""
        trades, deltas = self.sim.generate(n, ts_start, ts_step)
        now = time.time_ns()
        nt = len(trades["price"])
        if nt:
            self.publish_trades(
                TradeBatch(
                    source=self.name,
                    symbol_id=trades["symbol_id"],
                    ts_event=trades["ts_event"],
                    ts_init=np.full(nt, now, dtype=np.int64),
                    price=trades["price"],
                    size=trades["size"],
                    seq=self.next_seq(nt),
                    flags=trades["flags"],
                )
            )
        nd = len(deltas["price"])
        if nd:
            self.publish_book(
                BookDeltaBatch(
                    source=self.name,
                    symbol_id=deltas["symbol_id"],
                    ts_event=deltas["ts_event"],
                    ts_init=np.full(nd, now, dtype=np.int64),
                    side=deltas["side"],
                    price=deltas["price"],
                    size=deltas["size"],
                    seq=deltas["seq"] + np.uint64(self._seq_offset),
                    flags=np.zeros(nd, dtype=np.uint8),
                )
            )
        self.generated += n
        return nt, nd

    async def _run(self) -> None:
        cfg = self.cfg
        period = cfg.batch_ms / 1000.0
        step_ns = max(1, int(1e9 / cfg.rate))
        t0 = time.monotonic()
        wall0 = time.time_ns()
        sim_ts = wall0
        owed = 0.0
        while cfg.max_events is None or self.generated < cfg.max_events:
            if cfg.realtime:
                await asyncio.sleep(period)
                elapsed = time.monotonic() - t0
                owed = elapsed * cfg.rate - self.generated
                n = int(owed)
                if n <= 0:
                    continue
                now = time.time_ns()
                # Spread the batch's events evenly over the time since the last batch.
                step = max(1, (now - sim_ts) // n)
                start = now - step * (n - 1)
                sim_ts = now + 1
            else:
                n = max(1, int(cfg.rate * period))
                start, step = sim_ts, step_ns
                sim_ts += step_ns * n
            if cfg.max_events is not None:
                n = min(n, cfg.max_events - self.generated)
            self.emit(n, start, step)
            self.set_health("ok", "")
            if not cfg.realtime:
                await asyncio.sleep(0)  # let the API and sinks run between batches
        self.done.set()
        self.set_health("ok", "finished")


PLUGIN = SourcePlugin(
    name="sim",
    config_model=SimConfig,
    factory=SimSource,
    description="Simulated market (deterministic from a seed): trades and L2 book updates.",
)
