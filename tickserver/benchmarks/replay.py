"""``tickserver bench replay``: reading replay files, beside pandas and pyarrow.

A file of trades with the touch (5 symbols, ISO-8601 timestamps) is written as CSV, Parquet
and JSON lines. ``tickserver-replay`` streams it in chunks and validates every row (the
``ReplayReader`` behind ``tickserver replay``); ``pyarrow`` reads the whole file typed, with no
validation (a lower bound for parsing); ``pandas`` reads it the way a script would (chunks for
CSV/JSON lines, ``to_datetime`` on ``ts``). ``tickserver-replay+engine`` also publishes every
chunk through the bus into the C++ engine (bars, indicators, signals), as ``tickserver replay
--speed max`` does, when the core provides an engine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tickserver.benchmarks.harness import Report, measure

NAME = "replay"
HELP = "rows/s reading and validating replay files (CSV, Parquet, JSON lines) beside pandas/pyarrow"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of this benchmark."""
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated file")
    p.add_argument("--repeat", type=int, default=3, help="runs (median reported)")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")


def _write_files(folder: Path, n: int) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    ts = 1_704_205_800_000_000_000 + np.cumsum(rng.integers(1, 2_000_000, n))
    px = np.round(100 + np.cumsum(rng.normal(0, 0.01, n)), 2)
    table = pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
            "symbol": np.array(["AAPL", "MSFT", "NVDA", "AMZN", "TSLA"])[rng.integers(0, 5, n)],
            "price": px,
            "size": rng.integers(1, 500, n),
            "bid_px": px - 0.01,
            "bid_sz": np.full(n, 100),
            "ask_px": px + 0.01,
            "ask_sz": np.full(n, 200),
        }
    )
    iso = table.set_column(
        0, "ts", pa.array([f"{s}Z" for s in np.datetime_as_string(ts.astype("M8[ns]"))])
    )
    files = {"csv": folder / "t.csv", "parquet": folder / "t.parquet", "jsonl": folder / "t.jsonl"}
    pacsv.write_csv(iso, files["csv"])
    pq.write_table(table, files["parquet"])
    with files["jsonl"].open("w") as f:
        for row in iso.to_pylist():
            f.write(_json_line(row))
    return files


def _json_line(row: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(row).decode() + "\n"


def _tickserver(path: Path) -> int:
    from tickserver.sources.replay_files import ReplayReader

    rows = 0
    with ReplayReader(path) as reader:
        for chunk in reader:
            rows += chunk.rows
    return rows


def _pyarrow(kind: str, path: Path) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    if kind == "csv":
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(column_types={"ts": pa.timestamp("ns", "UTC")}),
        )
    elif kind == "parquet":
        table = pq.read_table(path)
    else:
        table = pajson.read_json(path)
    return int(table.num_rows)


def _pandas(kind: str, path: Path, chunk: int) -> int:
    import pandas as pd

    rows = 0
    if kind == "parquet":
        df = pd.read_parquet(path)
        return len(df)
    reader = (
        pd.read_csv(path, chunksize=chunk)
        if kind == "csv"
        else pd.read_json(path, lines=True, chunksize=chunk)
    )
    for df in reader:
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
        rows += len(df)
    return rows


def _with_engine(path: Path) -> int | None:
    """Replay at max speed through bus + engine; None if the core has no engine."""
    from tickserver import _core

    if not hasattr(_core, "Engine"):
        return None
    from tickserver.bus import Bus
    from tickserver.config import load_config
    from tickserver.engine import Engine
    from tickserver.metrics import Metrics
    from tickserver.sources.base import SourceContext
    from tickserver.sources.replay import ReplayConfig, ReplaySource
    from tickserver.symbols import Symbols

    async def go() -> int:
        cfg = load_config(environ={})
        bus, metrics = Bus(), Metrics()
        symbols = Symbols(cfg.market.symbols)
        engine = Engine(cfg, bus, symbols, metrics, live_clock=False)
        ctx = SourceContext(config=cfg, bus=bus, symbols=symbols, metrics=metrics)
        src = ReplaySource(ctx, ReplayConfig(path=str(path), progress=False))
        await engine.start()
        await src.start()
        await src.done.wait()
        engine.flush_forming()
        await src.stop()
        await engine.stop()
        return src.rows

    return asyncio.run(go())


def run(args: argparse.Namespace) -> Report:
    """Write the files, then time each reader on each of them."""
    import logging

    logging.getLogger("tickserver").setLevel(logging.WARNING)
    n = 50_000 if args.quick else args.rows
    repeat = 1 if args.quick else args.repeat
    report = Report(bench=NAME, unit="ns/row", baseline="tickserver-replay")
    with tempfile.TemporaryDirectory(prefix="tickserver-bench-replay-") as tmp:
        t0 = time.perf_counter()
        files = _write_files(Path(tmp), n)
        report.notes.append(f"{n:,} rows written in {time.perf_counter() - t0:.1f} s")
        for kind, path in files.items():
            mb = path.stat().st_size / 1e6
            report.extra[f"{kind} file"] = f"{mb:.1f} MB"
            ns = measure(functools.partial(_tickserver, path), ops=n, repeat=repeat)
            report.add("tickserver-replay", kind, ns)
            report.extra[f"tickserver-replay {kind} rows/s"] = f"{1e9 / ns:,.0f}"
            report.add(
                "pyarrow",
                kind,
                measure(functools.partial(_pyarrow, kind, path), ops=n, repeat=repeat),
            )
            report.add(
                "pandas",
                kind,
                measure(functools.partial(_pandas, kind, path, 32_768), ops=n, repeat=repeat),
            )
            try:
                if _with_engine(path) is None:
                    raise RuntimeError("this build of tickserver._core has no Engine")
                ns_e = measure(functools.partial(_with_engine, path), ops=n, repeat=repeat)
            except Exception as exc:  # a partial core build: report, keep the other figures
                report.notes.append(f"tickserver-replay+engine/{kind} skipped: {exc}")
            else:
                report.add("tickserver-replay+engine", kind, ns_e)
                report.extra[f"tickserver-replay+engine {kind} rows/s"] = f"{1e9 / ns_e:,.0f}"
    report.notes.append(
        "pyarrow/pandas only parse (no per-row validation, no file:line); pyarrow and pandas "
        "parquet read the whole file into memory; tickserver-replay streams 32k-row chunks"
    )
    return report
