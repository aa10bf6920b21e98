"""``tickserver bench pipeline``: events through source → core → bus, batched, no external sinks.

The simulated market (trades and L2 deltas for many symbols) is published in batches on the
bus; the engine validates and feeds the C++ core (ring, book, bars, indicators, signals) and
publishes accepted trades, quotes, bars and signals back onto the bus, where a bounded
subscriber (as the API would have) receives them. The same trades also go through a plain
Python per-event pipeline (deque ring + dict bars + EMA), the way a hand-rolled server
would do it, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
from typing import Any

from tickserver.benchmarks.harness import Report

NAME = "pipeline"
HELP = "ticks/s through source -> core -> bus (batched), beside a per-event Python pipeline"

# Published figures of a kdb+ tickerplant, quoted for context (not measured here).
KDB_PUBLISHED = {"single-row records/s": 100_000, "batched rows/s": 500_000}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of this benchmark."""
    p.add_argument("--events", type=int, default=4_000_000, help="events per run")
    p.add_argument("--symbols", type=int, default=100, help="symbols in the simulated market")
    p.add_argument("--batch", type=int, default=20_000, help="events per published batch")
    p.add_argument("--repeat", type=int, default=3, help="runs (median reported)")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")


def _python_pipeline(trades: dict[str, Any]) -> float:
    """A per-event pipeline in plain Python: ring, 1m bars, EMA(12). Returns seconds."""
    rings: dict[int, collections.deque[tuple[int, float, float]]] = {}
    bars: dict[int, list[float]] = {}
    ema: dict[int, float] = {}
    k = 2.0 / 13.0
    sym = trades["symbol_id"].tolist()
    ts = trades["ts_event"].tolist()
    px = trades["price"].tolist()
    sz = trades["size"].tolist()
    t0 = time.perf_counter()
    for s, t, p, q in zip(sym, ts, px, sz, strict=True):
        ring = rings.get(s)
        if ring is None:
            ring = rings[s] = collections.deque(maxlen=100_000)
        ring.append((t, p, q))
        start = t - t % 60_000_000_000
        b = bars.get(s)
        if b is None or b[0] != start:
            bars[s] = [start, p, p, p, p, q]
        else:
            if p > b[2]:
                b[2] = p
            if p < b[3]:
                b[3] = p
            b[4] = p
            b[5] += q
        e = ema.get(s)
        ema[s] = p if e is None else e + k * (p - e)
    return time.perf_counter() - t0


async def _run_once(
    events: int, n_symbols: int, batch: int, trade_prob: float
) -> tuple[float, int, int, dict[str, Any]]:
    from tickserver.bus import Bus, Topic
    from tickserver.config import load_config
    from tickserver.engine import Engine
    from tickserver.metrics import Metrics
    from tickserver.sources.base import SourceContext
    from tickserver.sources.sim import SimConfig, SimSource
    from tickserver.symbols import Symbols

    names = [f"S{i:04d}" for i in range(n_symbols)]
    cfg = load_config(
        environ={}, overrides={"market": {"symbols": names}, "store": {"enabled": False}}
    )
    bus = Bus()
    symbols = Symbols(names)
    metrics = Metrics()
    engine = Engine(cfg, bus, symbols, metrics, live_clock=False)
    await engine.start()
    # A bounded subscriber, as the API would hold, that conflates by keeping the latest batch.
    sub = bus.subscribe(
        [Topic.TRADES, Topic.QUOTES, Topic.BARS, Topic.SIGNALS],
        name="bench",
        maxsize=64,
        conflate=lambda items: items[-8:],
    )
    ctx = SourceContext(config=cfg, bus=bus, symbols=symbols, metrics=metrics)
    src = SimSource(ctx, SimConfig(symbols=names, realtime=False, seed=11, rate=1e6))
    if trade_prob != src.cfg.trade_prob:
        # SimConfig caps trade_prob below 1 for a live market; the bench may go to 1.
        from tickserver._core import MarketSim

        src.sim = MarketSim(
            11,
            [int(i) for i in src.ids],
            [100.0] * n_symbols,
            [0.01] * n_symbols,
            trade_prob=trade_prob,
        )
    src._publish_initial_books(0)
    captured: dict[str, Any] = {}
    trades_total = 0
    deltas_total = 0
    ts = 1_700_000_000_000_000_000
    step = 1_000  # 1 µs between events: 1M events/s of market time
    t0 = time.perf_counter()
    done = 0
    while done < events:
        n = min(batch, events - done)
        nt, nd = src.emit(n, ts, step)
        trades_total += nt
        deltas_total += nd
        ts += n * step
        done += n
        sub.get_all_nowait()
    elapsed = time.perf_counter() - t0
    # One batch of trades for the per-event Python comparison.
    tr, _ = src.sim.generate(min(events, 500_000), ts, step)
    captured["trades"] = tr
    await engine.stop()
    sub.close()
    return elapsed, trades_total, deltas_total, captured


def run(args: argparse.Namespace) -> Report:
    """Run the benchmark and return its report."""
    import statistics

    events = 200_000 if args.quick else args.events
    repeat = 1 if args.quick else args.repeat
    report = Report(bench=NAME, unit="events/s", lower_is_better=False, baseline="tickserver")
    cases = [
        ("trades only", 1.0, "ticks/s, trades-only feed (each trade also updates the book)"),
        ("mixed", 0.25, "events/s, mixed feed (25% trades, 75% L2 deltas)"),
    ]
    for label, share, case in cases:
        rates: list[float] = []
        py_rates: list[float] = []
        for _ in range(repeat):
            elapsed, nt, nd, cap = asyncio.run(_run_once(events, args.symbols, args.batch, share))
            rates.append((nt if label == "trades only" else nt + nd) / elapsed)
            if label == "trades only":
                py_trades = cap["trades"]
                py_rates.append(len(py_trades["price"]) / _python_pipeline(py_trades))
        report.add("tickserver", case, statistics.median(rates))
        if py_rates:
            report.add("python-per-event", case, statistics.median(py_rates))
    report.extra["symbols"] = args.symbols
    report.extra["batch_events"] = args.batch
    report.extra["events_per_run"] = events
    report.notes.append(
        "tickserver does more per trade than the Python loop (ring + 1m bar + one EMA): every "
        "configured bar interval, 9 indicators on ticks and on 1m bars, 3 signal rules, "
        "validation, bus fan-out; the simulated source's generation is included"
    )
    report.notes.append(
        "kdb+ tickerplant published figures (not measured here): "
        + ", ".join(f"{k} {v:,}" for k, v in KDB_PUBLISHED.items())
    )
    return report
