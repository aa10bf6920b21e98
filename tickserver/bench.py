"""``tickserver bench …``: side-by-side benchmarks against peer libraries, printed as ratios."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from typing import Any

from tickserver.benchmarks import BENCHMARKS


def add_parser(sub: Any) -> None:
    """Register ``tickserver bench`` and one sub-command per available benchmark."""
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="run a benchmark side by side with peer libraries (needs the [bench] extra)",
        description="Benchmarks print a table per case with ratios against tickserver; "
        "with --json the last line is one JSON object.",
    )
    bsub = p.add_subparsers(dest="bench", metavar="NAME")
    for name, module in BENCHMARKS.items():
        if importlib.util.find_spec(module) is None:
            continue
        mod = importlib.import_module(module)
        bp = bsub.add_parser(name, help=mod.HELP, description=mod.HELP)
        bp.add_argument("--json", action="store_true", help="print one JSON object last")
        mod.add_arguments(bp)
        bp.set_defaults(handler=_runner(mod))

    def usage(_args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(handler=usage)


def _runner(mod: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from tickserver.benchmarks.harness import print_report

        report = mod.run(args)
        print_report(report, as_json=args.json)
        return 0

    return run
