"""``tickserver bench core``: per-update cost of the C++ core's indicators and per-tick engine work,
side by side with TA-Lib's stream API, talipp and nautilus-trader on the same random walk."""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tickserver.benchmarks.harness import Report, measure

NAME = "core"
HELP = (
    "indicators and the all-in per-tick engine path (ring + 1m bars + indicators + 3 rules) "
    "vs TA-Lib stream, talipp and nautilus-trader"
)

BATCH = "tickserver-batch"
SINGLE = "tickserver-single"
MINUTE = 60_000_000_000
TICK_NS = 10_000_000  # 100 ticks/s: a 1-minute bar closes every 6,000 ticks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the benchmark's options."""
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--ticks", type=int, default=None, help="ticks per batch run")
    parser.add_argument("--loop-ticks", type=int, default=None, help="ticks per Python-loop run")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per figure")
    parser.add_argument("--no-rss", action="store_true", help="skip the 1,000-symbol RSS figure")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with the thread's CPU clock instead of the wall clock (busy machines)",
    )


@dataclass
class Data:
    """One random walk shared by every system."""

    price: Any  # float64[n]
    high: Any
    low: Any
    size: Any
    ts: Any  # int64[n]
    price_list: list[float]
    loop_n: int


def make_data(n: int, loop_n: int) -> Data:
    import numpy as np

    rng = np.random.default_rng(20240601)
    price = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0005, n)))
    return Data(
        price=price,
        high=price * 1.0005,
        low=price * 0.9995,
        size=rng.integers(1, 500, n).astype(np.float64),
        ts=np.arange(n, dtype=np.int64) * TICK_NS,
        price_list=price[:loop_n].tolist(),
        loop_n=loop_n,
    )


def run(args: argparse.Namespace) -> Report:
    """Measure every case and return the report."""
    n = args.ticks or (20_000 if args.quick else 1_000_000)
    loop_n = args.loop_ticks or (2_000 if args.quick else 50_000)
    repeat = args.repeat or (2 if args.quick else 5)
    data = make_data(n, min(loop_n, n))
    report = Report(bench=NAME, unit="ns", baseline=BATCH)

    clock = time.thread_time_ns if args.cpu_time else time.perf_counter_ns

    def timed(fn: Callable[[], Any], ops: int, setup: Callable[[], Any] | None = None) -> float:
        return measure(fn, ops=ops, repeat=repeat, warmup=1, setup=setup, clock=clock)

    for case in _indicator_cases():
        case(report, data, timed)
    _all_in(report, data, timed, quick=args.quick)
    if not args.no_rss:
        _memory(report, quick=args.quick)
    report.notes.extend(_NOTES)
    report.notes.append(f"clock: {'thread CPU time' if args.cpu_time else 'wall time'}")
    return report


Timer = Callable[..., float]


def _batch_figure(make: Callable[[], Any], call: Callable[[Any], Any], ops: int, t: Timer) -> float:
    holder: list[Any] = [None]

    def setup() -> None:
        holder[0] = make()

    return t(lambda: call(holder[0]), ops, setup)


def _loop_figure(
    make: Callable[[], Any], step: Callable[[Any], Callable[..., Any]], args: list[Any], t: Timer
) -> float:
    """ns per call of step(obj)(*arg) over `args` (each a tuple) in a plain Python loop."""
    holder: list[Any] = [None]

    def setup() -> None:
        holder[0] = step(make())

    def loop() -> None:
        f = holder[0]
        for a in args:
            f(*a)

    return t(loop, len(args), setup)


def _indicator_cases() -> list[Callable[[Report, Data, Timer], None]]:
    return [_sma, _ema, _rsi, _macd, _bbands, _atr, _stddev, _zscore, _vwap]


def _talib_history(d: Data) -> Any:
    return d.price[:300]


def _single(name: str, cls: Any, ctor: tuple[Any, ...], report: Report, d: Data, t: Timer) -> None:
    from tickserver import _core

    mk = getattr(_core, cls)
    report.add(
        BATCH,
        name,
        _batch_figure(lambda: mk(*ctor), lambda o: o.update_many(d.price), len(d.price), t),
    )
    args = [(v,) for v in d.price_list]
    report.add(SINGLE, name, _loop_figure(lambda: mk(*ctor), lambda o: o.update, args, t))


def _peer_loop(
    report: Report,
    system: str,
    name: str,
    make: Callable[[], Any],
    step: Callable[[Any], Any],
    args: list[Any],
    t: Timer,
) -> None:
    try:
        report.add(system, name, _loop_figure(make, step, args, t))
    except ImportError:
        report.notes.append(f"{system} not installed: {name} skipped")


def _sma(report: Report, d: Data, t: Timer) -> None:
    import talib
    from talib import stream

    _single("sma", "Sma", (20,), report, d, t)
    one = [(v,) for v in d.price_list]
    report.add("talib-function", "sma", t(lambda: talib.SMA(d.price, timeperiod=20), len(d.price)))
    _peer_loop(
        report,
        "talib-stream",
        "sma",
        lambda: stream.SMA(_talib_history(d), timeperiod=20),
        lambda o: o.update,
        one,
        t,
    )
    _peer_loop(report, "talipp", "sma", lambda: _talipp().SMA(20), lambda o: o.add, one, t)
    _peer_loop(
        report,
        "nautilus",
        "sma",
        lambda: _nautilus().SimpleMovingAverage(20),
        lambda o: o.update_raw,
        one,
        t,
    )


def _ema(report: Report, d: Data, t: Timer) -> None:
    import talib
    from talib import stream

    _single("ema", "Ema", (20,), report, d, t)
    one = [(v,) for v in d.price_list]
    report.add("talib-function", "ema", t(lambda: talib.EMA(d.price, timeperiod=20), len(d.price)))
    _peer_loop(
        report,
        "talib-stream",
        "ema",
        lambda: stream.EMA(_talib_history(d), timeperiod=20),
        lambda o: o.update,
        one,
        t,
    )
    _peer_loop(report, "talipp", "ema", lambda: _talipp().EMA(20), lambda o: o.add, one, t)
    _peer_loop(
        report,
        "nautilus",
        "ema",
        lambda: _nautilus().ExponentialMovingAverage(20),
        lambda o: o.update_raw,
        one,
        t,
    )


def _rsi(report: Report, d: Data, t: Timer) -> None:
    import talib
    from talib import stream

    _single("rsi", "Rsi", (14,), report, d, t)
    one = [(v,) for v in d.price_list]
    report.add("talib-function", "rsi", t(lambda: talib.RSI(d.price, timeperiod=14), len(d.price)))
    _peer_loop(
        report,
        "talib-stream",
        "rsi",
        lambda: stream.RSI(_talib_history(d), timeperiod=14),
        lambda o: o.update,
        one,
        t,
    )
    _peer_loop(report, "talipp", "rsi", lambda: _talipp().RSI(14), lambda o: o.add, one, t)
    _peer_loop(
        report,
        "nautilus",
        "rsi",
        lambda: _nautilus().RelativeStrengthIndex(14),
        lambda o: o.update_raw,
        one,
        t,
    )


def _macd(report: Report, d: Data, t: Timer) -> None:
    import talib
    from talib import stream

    _single("macd", "Macd", (12, 26, 9), report, d, t)
    one = [(v,) for v in d.price_list]
    report.add("talib-function", "macd", t(lambda: talib.MACD(d.price, 12, 26, 9), len(d.price)))
    _peer_loop(
        report,
        "talib-stream",
        "macd",
        lambda: stream.MACD(_talib_history(d), fastperiod=12, slowperiod=26, signalperiod=9),
        lambda o: o.update,
        one,
        t,
    )
    _peer_loop(report, "talipp", "macd", lambda: _talipp().MACD(12, 26, 9), lambda o: o.add, one, t)
    _peer_loop(
        report,
        "nautilus",
        "macd",
        lambda: _nautilus().MovingAverageConvergenceDivergence(12, 26),
        lambda o: o.update_raw,
        one,
        t,
    )


def _bbands(report: Report, d: Data, t: Timer) -> None:
    import talib
    from talib import stream

    _single("bbands", "BBands", (20, 2.0), report, d, t)
    one = [(v,) for v in d.price_list]
    three = [(v, v, v) for v in d.price_list]
    report.add(
        "talib-function", "bbands", t(lambda: talib.BBANDS(d.price, 20, 2.0, 2.0), len(d.price))
    )
    _peer_loop(
        report,
        "talib-stream",
        "bbands",
        lambda: stream.BBANDS(_talib_history(d), timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0),
        lambda o: o.update,
        one,
        t,
    )
    _peer_loop(report, "talipp", "bbands", lambda: _talipp().BB(20, 2.0), lambda o: o.add, one, t)
    _peer_loop(
        report,
        "nautilus",
        "bbands",
        lambda: _nautilus().BollingerBands(20, 2.0),
        lambda o: o.update_raw,
        three,
        t,
    )


def _atr(report: Report, d: Data, t: Timer) -> None:
    import talib
    from talib import stream

    from tickserver import _core

    n = len(d.price)
    report.add(
        BATCH,
        "atr",
        _batch_figure(lambda: _core.Atr(14), lambda o: o.update_many(d.high, d.low, d.price), n, t),
    )
    hlc = [
        (h, lo, c)
        for h, lo, c in zip(
            d.high[: d.loop_n].tolist(), d.low[: d.loop_n].tolist(), d.price_list, strict=True
        )
    ]
    report.add(SINGLE, "atr", _loop_figure(lambda: _core.Atr(14), lambda o: o.update, hlc, t))
    report.add("talib-function", "atr", t(lambda: talib.ATR(d.high, d.low, d.price, 14), n))
    h = _talib_history(d)
    _peer_loop(
        report,
        "talib-stream",
        "atr",
        lambda: stream.ATR(h * 1.0005, h * 0.9995, h, timeperiod=14),
        lambda o: o.update,
        hlc,
        t,
    )

    try:
        ohlcv = _talipp_ohlcv()
        bars = [(ohlcv(c, hi, lo, c, 1.0),) for hi, lo, c in hlc]
        _peer_loop(report, "talipp", "atr", lambda: _talipp().ATR(14), lambda o: o.add, bars, t)
    except ImportError:
        report.notes.append("talipp not installed: atr skipped")
    _peer_loop(
        report,
        "nautilus",
        "atr",
        lambda: _nautilus().AverageTrueRange(14),
        lambda o: o.update_raw,
        hlc,
        t,
    )


def _stddev(report: Report, d: Data, t: Timer) -> None:
    import talib
    from talib import stream

    _single("stddev", "StdDev", (20,), report, d, t)
    one = [(v,) for v in d.price_list]
    report.add("talib-function", "stddev", t(lambda: talib.STDDEV(d.price, 20, 1.0), len(d.price)))
    _peer_loop(
        report,
        "talib-stream",
        "stddev",
        lambda: stream.STDDEV(_talib_history(d), timeperiod=20, nbdev=1.0),
        lambda o: o.update,
        one,
        t,
    )
    _peer_loop(report, "talipp", "stddev", lambda: _talipp().StdDev(20), lambda o: o.add, one, t)


def _zscore(report: Report, d: Data, t: Timer) -> None:
    _single("zscore", "ZScore", (20,), report, d, t)


def _vwap(report: Report, d: Data, t: Timer) -> None:
    from tickserver import _core

    n = len(d.price)
    report.add(
        BATCH,
        "vwap",
        _batch_figure(_core.Vwap, lambda o: o.update_many(d.price, d.size, d.ts), n, t),
    )
    rows = list(
        zip(d.price_list, d.size[: d.loop_n].tolist(), d.ts[: d.loop_n].tolist(), strict=True)
    )
    report.add(SINGLE, "vwap", _loop_figure(_core.Vwap, lambda o: o.update, rows, t))
    try:
        ohlcv = _talipp_ohlcv()
        bars = [(ohlcv(p, p, p, p, q),) for p, q, _ in rows]
        _peer_loop(report, "talipp", "vwap", lambda: _talipp().VWAP(), lambda o: o.add, bars, t)
    except ImportError:
        report.notes.append("talipp not installed: vwap skipped")
    try:
        import datetime as dt

        utc = dt.UTC
        stamped = [(p, q, dt.datetime.fromtimestamp(ts / 1e9, tz=utc)) for p, q, ts in rows]
        _peer_loop(
            report,
            "nautilus",
            "vwap",
            lambda: _nautilus().VolumeWeightedAveragePrice(),
            lambda o: o.update_raw,
            stamped,
            t,
        )
    except ImportError:
        report.notes.append("nautilus-trader not installed: vwap skipped")


def _engine(n_symbols: int, ring_capacity: int = 100_000) -> Any:
    from tickserver import _core

    reg = _core.SymbolRegistry()
    for i in range(n_symbols):
        reg.intern(f"S{i:04d}")
    spec = _core.IndicatorSpec
    return _core.Engine(
        reg,
        ring_capacity=ring_capacity,
        bar_capacity=1_000,
        intervals=[MINUTE],
        indicators=[
            spec("sma20", "sma", 0, period=20),
            spec("ema20", "ema", 0, period=20),
            spec("rsi14", "rsi", 0, period=14),
            spec("macd", "macd", 0, fast=12, slow=26, signal=9),
            spec("bb", "bbands", 0, period=20, k=2.0),
            spec("atr14", "atr", 0, period=14),
            spec("vwap", "vwap", 0),
            spec("sd20", "stddev", 0, period=20),
            spec("z20", "zscore", 0, period=20),
        ],
        rules=[
            _core.RuleSpec("px_x_ema", "crossover", 0, a="close", b="ema20"),
            _core.RuleSpec("rsi_levels", "threshold", 0, a="rsi14", above=70.0, below=30.0),
            _core.RuleSpec("bb_break", "breakout", 0, a="bb"),
        ],
    )


def _all_in(report: Report, d: Data, t: Timer, *, quick: bool) -> None:
    import numpy as np

    n = len(d.price)
    cols: dict[str, Any] = {
        "symbol_id": np.zeros(n, dtype=np.uint32),
        "ts_event": d.ts,
        "price": d.price,
        "size": d.size,
        "seq": np.arange(n, dtype=np.uint64),
        "flags": np.zeros(n, dtype=np.uint8),
    }
    report.add(
        BATCH, "all-in", _batch_figure(lambda: _engine(1), lambda e: e.on_trades(**cols), n, t)
    )
    rows = [
        (0, ts, p, q)
        for ts, p, q in zip(
            d.ts[: d.loop_n].tolist(), d.price_list, d.size[: d.loop_n].tolist(), strict=True
        )
    ]
    report.add(SINGLE, "all-in", _loop_figure(lambda: _engine(1), lambda e: e.on_trade, rows, t))

    # The same work spread over 1,000 symbols in random order (cache misses included).
    n_sym = 100 if quick else 1_000
    rng = np.random.default_rng(7)
    multi = dict(cols, symbol_id=rng.integers(0, n_sym, n).astype(np.uint32))
    report.add(
        BATCH,
        f"all-in-{n_sym}sym",
        _batch_figure(lambda: _engine(n_sym, 10_000), lambda e: e.on_trades(**multi), n, t),
    )

    from talib import stream

    h = _talib_history(d)

    def talib_all() -> Callable[[float], None]:
        s = [
            stream.SMA(h, timeperiod=20).update,
            stream.EMA(h, timeperiod=20).update,
            stream.RSI(h, timeperiod=14).update,
            stream.MACD(h, fastperiod=12, slowperiod=26, signalperiod=9).update,
            stream.BBANDS(h, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0).update,
            stream.STDDEV(h, timeperiod=20, nbdev=1.0).update,
        ]
        atr = stream.ATR(h, h, h, timeperiod=14).update

        def step(v: float) -> None:
            for f in s:
                f(v)
            atr(v, v, v)

        return step

    one = [(v,) for v in d.price_list]
    _peer_loop(report, "talib-stream", "all-in", talib_all, lambda step: step, one, t)

    def talipp_all() -> Callable[[float], None]:
        tp = _talipp()
        ohlcv = _talipp_ohlcv()
        s = [
            tp.SMA(20).add,
            tp.EMA(20).add,
            tp.RSI(14).add,
            tp.MACD(12, 26, 9).add,
            tp.BB(20, 2.0).add,
            tp.StdDev(20).add,
        ]
        bar_inds = [tp.ATR(14).add, tp.VWAP().add]

        def step(v: float) -> None:
            for f in s:
                f(v)
            bar = ohlcv(v, v, v, v, 1.0)
            for g in bar_inds:
                g(bar)

        return step

    _peer_loop(report, "talipp", "all-in", talipp_all, lambda step: step, one, t)

    def nautilus_all() -> Callable[[float], None]:
        import datetime as dt

        nt = _nautilus()
        s = [
            nt.SimpleMovingAverage(20).update_raw,
            nt.ExponentialMovingAverage(20).update_raw,
            nt.RelativeStrengthIndex(14).update_raw,
            nt.MovingAverageConvergenceDivergence(12, 26).update_raw,
        ]
        hlc = [nt.BollingerBands(20, 2.0).update_raw, nt.AverageTrueRange(14).update_raw]
        vwap = nt.VolumeWeightedAveragePrice().update_raw
        stamp = dt.datetime(2024, 6, 3, 14, 30, tzinfo=dt.UTC)

        def step(v: float) -> None:
            for f in s:
                f(v)
            for g in hlc:
                g(v, v, v)
            vwap(v, 1.0, stamp)

        return step

    _peer_loop(report, "nautilus", "all-in", nautilus_all, lambda step: step, one, t)


def _memory(report: Report, *, quick: bool) -> None:
    """Ring storage per tick, and resident memory of 1,000 symbols x 100,000-tick rings."""
    import numpy as np

    from tickserver import _core

    reg = _core.SymbolRegistry()
    reg.intern("X")
    e = _core.Engine(
        reg, ring_capacity=100_000, bar_capacity=1, intervals=[], indicators=[], rules=[]
    )
    before = e.memory_bytes()
    e.on_trade(0, 1, 1.0, 1.0)
    report.extra["ring_bytes_per_tick"] = (e.memory_bytes() - before) / 100_000

    try:
        import psutil
    except ImportError:
        report.notes.append("psutil not installed: RSS not measured")
        return
    n_sym, cap = (100, 10_000) if quick else (1_000, 100_000)
    reg = _core.SymbolRegistry()
    for i in range(n_sym):
        reg.intern(f"S{i:04d}")
    gc.collect()
    proc = psutil.Process(os.getpid())
    rss0 = proc.memory_info().rss
    e = _core.Engine(reg, ring_capacity=cap, bar_capacity=1, intervals=[], indicators=[], rules=[])
    chunk = n_sym * 1_000
    cols: dict[str, Any] = {
        "symbol_id": (np.arange(chunk) % n_sym).astype(np.uint32),
        "ts_event": np.arange(chunk, dtype=np.int64),
        "price": np.full(chunk, 100.0),
        "size": np.ones(chunk),
        "seq": np.arange(chunk, dtype=np.uint64),
        "flags": np.zeros(chunk, dtype=np.uint8),
    }
    rss_cols = proc.memory_info().rss
    for _ in range(cap // 1_000):
        e.on_trades(**cols)
    rss1 = proc.memory_info().rss
    ticks = n_sym * cap
    report.extra[f"rss_mb_{n_sym}x{cap}"] = round((rss1 - rss_cols) / 2**20, 1)
    report.extra[f"rss_bytes_per_tick_{n_sym}x{cap}"] = round((rss1 - rss_cols) / ticks, 2)
    report.extra[f"engine_memory_bytes_{n_sym}x{cap}"] = e.memory_bytes()
    report.extra["rss_mb_before"] = round(rss0 / 2**20, 1)
    del e
    gc.collect()


def _talipp() -> Any:
    import talipp.indicators

    return talipp.indicators


def _talipp_ohlcv() -> Any:
    from talipp.ohlcv import OHLCV

    return OHLCV


def _nautilus() -> Any:
    import nautilus_trader.indicators

    return nautilus_trader.indicators


_NOTES = [
    "ns per update; tickserver-batch = one update_many / Engine.on_trades call over the whole "
    "input (GIL released); every other system is called once per update from a Python loop",
    "talib-stream: TA-Lib 0.8.2's talib.stream handles (TA-Lib C 0.8.1): stateful O(1) handles "
    "opened on a history, update() commits one bar, peek() previews it, bit-identical to the "
    "batch functions; there is no multi-value update, so each update is one Python call",
    "talib-function: the batch function over the whole array (not incremental), for scale",
    "all-in: tickserver = ring + 1m bars + 9 tick indicators (sma, ema, rsi, macd, bbands, atr, "
    "vwap, stddev, zscore) + 3 rules; peers = their indicators only (no ring, bars or rules): "
    "talib-stream 7 (no vwap/zscore), talipp 8 (no zscore), nautilus 7 (no stddev/zscore)",
    "nautilus MACD has no signal line and its RSI smooths with an EMA (not Wilder); "
    "talipp is pure Python",
    "all-in-<N>sym: the same all-in work over N symbols in random order, one batch (the engine "
    "partitions a large batch by symbol, docs/decisions/0013); a fresh engine per run, so the "
    "figure includes first-touch page faults of ring and result storage (docs/perf.md)",
]
