"""Command-line interface: ``tickserver run|replay|check-config|bench|export``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tickserver._version import __version__


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="tickserver",
        description="Real-time market data server. With no command, runs `tickserver run` "
        "on the embedded defaults (simulated feed on http://127.0.0.1:8080).",
    )
    parser.add_argument("--version", action="version", version=f"tickserver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from tickserver import bench as bench_mod

    bench_mod.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        args = parser.parse_args(["run", *args_list])
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result
