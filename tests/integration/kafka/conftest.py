"""Fixtures of the Kafka suite: a real broker per test (Tansu and noida-db), kcat, readers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.brokers import BROKERS, ApiVersionsFixProxy, Broker, kcat_binary
from tickserver.kafka.records import schema_path


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """A started broker (each kind in turn), killed at the end of the test."""
    b = Broker(str(request.param), tmp_path / f"broker-{request.param}")
    b.start()
    try:
        yield b
    finally:
        b.kill()


@pytest.fixture
def record_schema() -> jsonschema.protocols.Validator:
    """A validator of the documented record schema."""
    schema = json.loads(schema_path().read_text())
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(schema)
    return validator


@pytest.fixture
def kcat(broker: Broker) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """Return ``read(topic) -> [{"partition", "offset", "key", "headers", "value"}]``.

    Reads the whole topic with Debian's kcat (``-C -e``, JSON envelope). For Tansu it goes
    through :class:`ApiVersionsFixProxy` (kcat's librdkafka 2.0.2 misreads Tansu's reply).
    """
    exe = kcat_binary()
    if exe is None:
        pytest.fail("kcat is not installed (scripts/test installs it: apt-get install kcat)")
    proxy = ApiVersionsFixProxy(broker.port).start() if broker.kind == "tansu" else None
    bootstrap = f"127.0.0.1:{proxy.port}" if proxy else broker.bootstrap

    def read(topic: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        out = subprocess.run(
            [exe, "-b", bootstrap, "-C", "-t", topic, "-e", "-J", "-q", "-o", "beginning"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        rows = []
        for line in out.stdout.splitlines():
            env = json.loads(line)
            hdrs = env.get("headers") or []
            rows.append(
                {
                    "partition": env["partition"],
                    "offset": env["offset"],
                    "key": env["key"],
                    "headers": dict(zip(hdrs[::2], hdrs[1::2], strict=True)),
                    "value": json.loads(env["payload"]),
                }
            )
        return rows

    try:
        yield read
    finally:
        if proxy is not None:
            proxy.stop()
