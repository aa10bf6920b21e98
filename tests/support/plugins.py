"""Make the example plug-in package (examples/tickserver-example-source) discoverable through
its entry point without pip: a ``*.dist-info`` folder with ``entry_points.txt`` on ``sys.path``
is what ``importlib.metadata`` reads for an installed distribution."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SRC = ROOT / "examples" / "tickserver-example-source" / "src"


def write_example_dist_info(site: Path) -> Path:
    """Write the example package's metadata into ``site``; return ``site``."""
    info = site / "tickserver_example_source-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tickserver-example-source\nVersion: 0.1.0\n"
    )
    # The entry points examples/tickserver-example-source/pyproject.toml declares.
    pyproject = tomllib.loads(
        (ROOT / "examples" / "tickserver-example-source" / "pyproject.toml").read_text()
    )
    group = pyproject["project"]["entry-points"]["tickserver.sources"]
    lines = "".join(f"{name} = {target}\n" for name, target in group.items())
    (info / "entry_points.txt").write_text(f"[tickserver.sources]\n{lines}")
    return site
