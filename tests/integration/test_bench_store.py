"""Smoke test of ``tickserver bench store --quick --json`` (the shape, not the speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_store_quick_prints_local_and_s3_rates_as_json() -> None:
    # Act
    res = subprocess.run(
        [sys.executable, "-m", "tickserver", "bench", "store", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
    )

    # Assert
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["bench"] == "store"
    assert report["unit"] == "ticks/s"
    assert set(report["results"]) == {
        "tickserver/local-parquet",
        "pandas-to_parquet/local-parquet",
        "tickserver/s3-moto",
        "pandas-to_parquet/s3-moto",
    }
    assert all(v > 0 for v in report["results"].values())
    assert report["extra"]["ticks"] == 200_000
    assert isinstance(report["extra"]["meets_target"], bool)
