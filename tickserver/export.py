"""``tickserver export``: write one symbol's ticks or bars of a time range to CSV or Parquet.

It reads the history store the config points at (the local folder, or the S3 bucket plus
the parts still waiting in the local outbox), not a running server: events accepted in the
last flush interval are still in the server's spool and appear after its next flush.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

HELP = "write a symbol's ticks or bars of a time range to CSV or Parquet"


def add_parser(sub: Any) -> None:
    """Register ``tickserver export``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "export",
        help=HELP,
        description=HELP + " (reads the history store of the config: local folder or S3).",
    )
    p.add_argument("--symbol", required=True, help="e.g. AAPL")
    p.add_argument(
        "--interval", default="tick", help="tick (default) or a bar interval: 1s, 1m, 5m, 1h, 1d"
    )
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        help="start (inclusive): ISO-8601 (2026-01-05T14:30:00Z, naive = UTC) or epoch ms/ns",
    )
    p.add_argument("--to", dest="end", help="end (exclusive), same formats (default: now)")
    p.add_argument("--out", required=True, help="output file: .csv or .parquet")
    p.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("TICKSERVER_CONFIG"),
        help="TOML config file (default: $TICKSERVER_CONFIG, else the embedded defaults)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(handler=cmd_export)


def _fail(msg: str, code: int = 2) -> int:
    print(f"tickserver export: {msg}", file=sys.stderr)
    return code


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``tickserver export``."""
    from tickserver.api.market import ApiError, parse_ts
    from tickserver.config import INTERVALS, ConfigError, load_config
    from tickserver.events import now_ns

    out = Path(args.out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("csv", "parquet"):
        return _fail(f"--out must end in .csv or .parquet, got {out.name!r}")
    if not out.parent.exists():
        return _fail(f"folder {out.parent} does not exist")
    if args.interval not in INTERVALS:
        return _fail(f"unknown interval {args.interval!r}; expected one of {', '.join(INTERVALS)}")
    try:
        start = parse_ts(args.start)
        end = parse_ts(args.end) if args.end else now_ns() + 1
    except ApiError as exc:
        return _fail(str(exc))
    if end <= start:
        return _fail(f"--to ({args.end}) must be after --from ({args.start})")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    reader, where = _reader(cfg.store)
    kind = "trades" if args.interval == "tick" else "bars"
    interval = None if kind == "trades" else args.interval
    show = not args.no_progress
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if show and (done == total or done % 20 == 0):
            print(f"\rreading {where}: {done}/{total} days", end="", file=sys.stderr)
            if done == total:
                print(file=sys.stderr)

    from tickserver.storage import StoreError, write_parquet

    try:
        table = reader.read(
            kind,
            symbol=args.symbol,
            start_ns=start,
            end_ns=end,
            interval=interval,
            progress=progress,
        )
    except StoreError as exc:
        return _fail(f"cannot read {where}: {exc.reason}", 1)
    if interval is not None:
        import pyarrow as pa

        table = table.add_column(1, "interval", pa.array([interval] * table.num_rows, pa.string()))
    tmp = out.with_name(f".{out.name}.tmp")
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, str(tmp))
    else:
        write_parquet(table, str(tmp), symbol_row_groups=False)
    os.replace(tmp, out)
    if table.num_rows == 0:
        print(
            f"tickserver export: no {kind} of {args.symbol} in that range in {where} "
            f"(wrote an empty {fmt} file with the columns)",
            file=sys.stderr,
        )
    elif show:
        print(
            f"wrote {table.num_rows} {kind} of {args.symbol} to {out} "
            f"in {time.monotonic() - t0:.1f}s",
            file=sys.stderr,
        )
    return 0


def _reader(cfg: Any) -> tuple[Any, str]:
    from tickserver.history import StoreReader
    from tickserver.storage import LocalStore, S3Store

    root = Path(cfg.path).expanduser().resolve()
    if cfg.s3_bucket:
        remote = S3Store.from_config(cfg)
        reader = StoreReader(
            remote, outbox=LocalStore(root / "outbox"), cache=LocalStore(root / "cache")
        )
        return reader, remote.describe()
    return StoreReader(LocalStore(root)), str(root)
