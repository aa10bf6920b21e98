"""Command-line interface: ``tickserver run|replay|check-config|bench|export``.

``tickserver`` alone runs ``tickserver run`` on the embedded defaults: the simulated market on
http://127.0.0.1:8080, no Kafka, history in ./tickserver-data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from tickserver._version import __version__

log = logging.getLogger("tickserver")


def _add_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("TICKSERVER_CONFIG"),
        help="TOML config file (default: $TICKSERVER_CONFIG, else the embedded defaults)",
    )
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8080; 0 = any free port)")
    p.add_argument("--log-format", choices=["auto", "json", "text"], help="log line format")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="tickserver",
        description="Real-time market data server. With no command, runs `tickserver run` "
        "on the embedded defaults (simulated feed on http://127.0.0.1:8080).",
    )
    parser.add_argument("--version", action="version", version=f"tickserver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the server (default command)",
        description="Run the server: sources -> C++ core -> GraphQL API, dashboard, sinks. "
        "Stops cleanly on SIGTERM/SIGINT (sources first, sinks flushed last).",
    )
    _add_server_args(run)
    run.add_argument(
        "--source",
        metavar="NAME[,NAME]",
        help="sources to run instead of sources.enabled (e.g. sim, yfinance, alphavantage)",
    )
    run.add_argument(
        "--symbols",
        metavar="[SOURCE=]A,B",
        action="append",
        help="symbols for the sources, e.g. AAPL,MSFT; repeat as SOURCE=A,B to give each source "
        "its own (--symbols yfinance=AAPL,MSFT --symbols alphavantage=IBM)",
    )
    run.set_defaults(handler=cmd_run)

    replay = sub.add_parser(
        "replay",
        help="replay a file of trades/quotes or OHLCV bars through the server",
        description="Replay a CSV, Parquet or JSON-lines file (columns ts, symbol, price, size "
        "[, bid_px, bid_sz, ask_px, ask_sz]) or a yfinance OHLCV file through the server.",
    )
    replay.add_argument("file", help="the file to replay")
    replay.add_argument(
        "--speed",
        default="max",
        help="1 = recorded pace, N = N times faster, max = as fast as possible (default max)",
    )
    replay.add_argument(
        "--symbol",
        help="symbol of a file without one (one-ticker OHLCV, trades without a symbol column); "
        "for a file with symbols, replay only this one",
    )
    replay.add_argument(
        "--format",
        choices=["auto", "csv", "parquet", "jsonl", "ohlcv"],
        default="auto",
        help="file format (default: from the extension and columns)",
    )
    replay.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip and count invalid rows instead of stopping at the first one",
    )
    replay.add_argument(
        "--bar-interval",
        default="auto",
        help="interval of OHLCV bars, e.g. 1m, 1h, 1d (default: inferred from the bar times)",
    )
    replay.add_argument(
        "--timezone",
        default="UTC",
        help="time zone of timestamps written without an offset (default UTC)",
    )
    replay.add_argument(
        "--allow-out-of-order",
        action="store_true",
        help="replay rows whose ts is earlier than the previous row's instead of rejecting them",
    )
    replay.add_argument(
        "--exit",
        action="store_true",
        help="exit once the file is replayed and sinks are flushed (default: keep serving)",
    )
    replay.add_argument(
        "--no-progress", action="store_true", help="no progress bar (or progress log lines)"
    )
    _add_server_args(replay)
    replay.set_defaults(handler=cmd_replay)

    check = sub.add_parser(
        "check-config",
        help="validate a config file and print the effective configuration",
        description="Load the config (file + TICKSERVER_* env overrides), report every error "
        "with the key it concerns, and print the effective settings as JSON.",
    )
    check.add_argument("path", nargs="?", default=os.environ.get("TICKSERVER_CONFIG"))
    check.set_defaults(handler=cmd_check_config)

    from tickserver import bench as bench_mod

    bench_mod.add_parser(sub)
    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: Any) -> None:
    """Commands contributed by other modules (each has ``add_parser(sub)``)."""
    import importlib
    import importlib.util

    for module in ("tickserver.export",):
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).add_parser(sub)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, Any] = {}
    if getattr(args, "host", None):
        over.setdefault("server", {})["host"] = args.host
    if getattr(args, "port", None) is not None:
        over.setdefault("server", {})["port"] = args.port
    if getattr(args, "log_format", None):
        over.setdefault("log", {})["format"] = args.log_format
    if getattr(args, "log_level", None):
        over.setdefault("log", {})["level"] = args.log_level
    return over


def _load(args: argparse.Namespace) -> Any:
    from tickserver.config import ConfigError, load_config

    try:
        return load_config(args.config, overrides=_overrides(args))
    except ConfigError as exc:
        print(f"tickserver: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    """``tickserver run``."""
    cfg = _load(args)
    sources = [s.strip() for s in args.source.split(",")] if args.source else None
    try:
        symbols, per_source = parse_symbols_args(args.symbols or [])
    except ValueError as exc:
        print(f"tickserver: {exc}", file=sys.stderr)
        return 2
    unknown = sorted(set(per_source) - set(sources or cfg.sources.enabled))
    if unknown:
        print(
            f"tickserver: --symbols {unknown[0]}=…: {unknown[0]!r} is not a running source "
            f"(running: {', '.join(sources or cfg.sources.enabled)})",
            file=sys.stderr,
        )
        return 2
    if sources:
        from tickserver.config import ConfigError, validate_source_sections

        try:
            validate_source_sections(cfg, "--source", sources)
        except ConfigError as exc:
            print(f"tickserver: {exc}", file=sys.stderr)
            return 2
    return serve(
        cfg, source_names=sources, symbols_override=symbols, source_symbols=per_source or None
    )


def parse_symbols_args(values: list[str]) -> tuple[list[str] | None, dict[str, list[str]]]:
    """Split ``--symbols`` values into symbols for every source and per-source symbols.

    ``["AAPL,MSFT"]`` -> (["AAPL", "MSFT"], {}); ``["yfinance=AAPL", "alphavantage=IBM"]`` ->
    (None, {"yfinance": ["AAPL"], "alphavantage": ["IBM"]}).

    Raises
    ------
    ValueError
        For an empty list or a source named twice.
    """
    common: list[str] | None = None
    per: dict[str, list[str]] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        names = [p.strip().upper() for p in (rest if sep else name).split(",") if p.strip()]
        if not names:
            raise ValueError(f"--symbols {value!r}: no symbols given")
        if sep:
            key = name.strip()
            if key in per:
                raise ValueError(f"--symbols: source {key!r} given twice")
            per[key] = names
        else:
            common = (common or []) + names
    return common, per


def cmd_replay(args: argparse.Namespace) -> int:
    """``tickserver replay FILE``."""
    from pydantic import ValidationError

    from tickserver.config import format_validation_error
    from tickserver.sources.replay import ReplayConfig, ReplaySource

    cfg = _load(args)
    try:
        rcfg = ReplayConfig(
            path=args.file,
            speed=args.speed,
            symbol=args.symbol,
            format=args.format,
            skip_bad_rows=args.skip_bad_rows,
            progress=not args.no_progress and sys.stderr.isatty(),
            bar_interval=args.bar_interval,
            timezone=args.timezone,
            out_of_order="allow" if args.allow_out_of_order else "reject",
        )
    except ValidationError as exc:
        print(f"tickserver: {format_validation_error(exc, 'command line')}", file=sys.stderr)
        return 2
    holder: dict[str, Any] = {}

    def factory(ctx: Any) -> Any:
        src = ReplaySource(ctx, rcfg)
        holder["source"] = src
        return src

    return serve(
        cfg, source_names=[], extra_sources=[factory], exit_when_done=holder if args.exit else None
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    """``tickserver check-config [PATH]``."""
    from tickserver.config import ConfigError, load_config

    try:
        cfg = load_config(args.path)
    except ConfigError as exc:
        print(f"tickserver: {exc}", file=sys.stderr)
        return 2
    print(cfg.model_dump_json(indent=2))
    print(f"configuration OK ({args.path or 'embedded defaults'})", file=sys.stderr)
    return 0


def serve(
    cfg: Any,
    *,
    source_names: list[str] | None = None,
    symbols_override: list[str] | None = None,
    extra_sources: list[Any] | None = None,
    exit_when_done: dict[str, Any] | None = None,
    source_symbols: dict[str, list[str]] | None = None,
) -> int:
    """Build the app and serve it until SIGTERM/SIGINT (or the replay ends with ``--exit``)."""
    from aiohttp import web

    from tickserver.app import APP_STATE, build_app
    from tickserver.logs import setup_logging

    setup_logging(cfg.log.format, cfg.log.level)
    try:
        app = build_app(
            cfg,
            source_names=source_names,
            symbols_override=symbols_override,
            extra_sources=extra_sources,
            source_symbols=source_symbols,
        )
    except Exception as exc:
        log.error("cannot start: %s", exc)
        return 2
    state = app[APP_STATE]
    host, port = cfg.server.host, cfg.server.port

    async def main() -> None:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        try:
            await runner.setup()  # starts sinks, engine, sources (cleanup contexts)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await runner.cleanup()  # stop what did start
            raise _StartupError(f"cannot start: {exc}") from exc
        site = web.TCPSite(runner, host, port, shutdown_timeout=cfg.server.shutdown_timeout_s)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise _StartupError(f"cannot listen on {host}:{port}: {exc}") from exc
        addr = runner.addresses[0] if runner.addresses else (host, port)
        log.info(
            "tickserver %s serving on http://%s:%s (sources: %s; sinks: %s)",
            __version__,
            addr[0],
            addr[1],
            ", ".join(s.name for s in state.sources) or "none",
            ", ".join(s.name for s in state.sinks) or "none",
            extra={"event": "listening", "host": addr[0], "port": addr[1]},
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        waiter: asyncio.Task[Any] | None = None
        if exit_when_done is not None and "source" in exit_when_done:
            waiter = asyncio.create_task(_wait_replay(exit_when_done, state, stop))
        await stop.wait()
        log.info("shutting down", extra={"event": "shutdown"})
        if waiter is not None:
            waiter.cancel()
        try:
            await asyncio.wait_for(runner.cleanup(), timeout=cfg.server.shutdown_timeout_s + 5)
        except TimeoutError:
            log.error("shutdown did not finish within %.0f s", cfg.server.shutdown_timeout_s + 5)
            raise SystemExit(1) from None
        log.info("stopped", extra={"event": "stopped"})

    try:
        asyncio.run(main())
    except _StartupError as exc:
        log.error("%s", exc, exc_info=exc.__cause__ if cfg.log.level == "DEBUG" else None)
        return 2
    if exit_when_done is not None and exit_when_done.get("error"):
        return 1
    return 0


class _StartupError(Exception):
    """The server could not start; the message says why (exit code 2)."""


async def _wait_replay(holder: dict[str, Any], state: Any, stop: asyncio.Event) -> None:
    source = holder["source"]
    await source.done.wait()
    # Close the forming bars: the replay is over, so they are complete (also after a bad row
    # stopped it: the rows before it were accepted).
    state.engine.flush_forming()
    holder["error"] = source.error
    stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args_list or (
        args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version")
    ):
        args_list = ["run", *args_list]
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result
