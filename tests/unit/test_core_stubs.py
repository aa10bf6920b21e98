"""The checked-in stub of the C++ extension matches what nanobind's stubgen generates now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

STUB = Path(__file__).resolve().parents[2] / "tickserver" / "_core.pyi"


def test_core_stub_is_up_to_date(tmp_path: Path) -> None:
    # Arrange
    out = tmp_path / "_core.pyi"
    # Act
    subprocess.run(
        [sys.executable, "-m", "nanobind.stubgen", "-q", "-m", "tickserver._core", "-o", str(out)],
        check=True,
        capture_output=True,
    )
    # Assert
    assert out.read_text() == STUB.read_text(), (
        "tickserver/_core.pyi is stale; regenerate it with: "
        "python -m nanobind.stubgen -m tickserver._core -o tickserver/_core.pyi"
    )
