"""``tickserver bench …``: side-by-side benchmarks against peer libraries, printed as ratios."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``tickserver bench`` and its sub-commands."""
    p: argparse.ArgumentParser = sub.add_parser(
        "bench", help="run a benchmark side by side with peer libraries"
    )
    p.set_defaults(handler=lambda _args: (p.print_help(), 2)[1])
