"""Smoke test of ``tickserver bench kafka`` (speed itself is not asserted: shared machines)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_bench_kafka_quick_reports_every_system_as_json() -> None:
    # Act
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickserver",
            "bench",
            "kafka",
            "--quick",
            "--json",
            "--events",
            "3000",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    # Assert
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["bench"] == "kafka"
    assert report["unit"] == "ticks/s"
    systems = {k.split("/")[0] for k in report["results"]}
    # confluent-kafka comes with the [bench] extra; scripts/test installs [test] only
    peers = {"confluent-kafka"} if importlib.util.find_spec("confluent_kafka") else set()
    assert systems == {"tickserver-immediate", "tickserver-batched", "aiokafka-loop", *peers}
    assert all(v > 0 for v in report["results"].values())
    assert "tickserver-immediate / aiokafka-loop" in report["extra"]
    assert "broker noida" in out.stderr  # progress goes to stderr
