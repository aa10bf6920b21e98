"""The publisher's TLS settings against a real broker behind a TLS-terminating proxy."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.support.brokers import ApiVersionsFixProxy, Broker
from tests.support.kafka import Collector, Rig, kafka_config, wait_for
from tests.support.tls import TestCA

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def mutual_tls_server(ca: TestCA) -> ssl.SSLContext:
    server = ca.issue("broker", server=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert_path))
    ctx.load_cert_chain(server.cert, server.key)
    ctx.verify_mode = ssl.CERT_REQUIRED  # the client must present a certificate of our CA
    return ctx


async def test_mutual_tls_settings_connect_and_publish(broker: Broker, tmp_path: Path) -> None:
    # Arrange
    ca = TestCA(tmp_path / "ca")
    client = ca.issue("tickserver", server=False)
    proxy = ApiVersionsFixProxy(broker.port, tls=mutual_tls_server(ca)).start()
    cfg = kafka_config(
        tmp_path,
        f"127.0.0.1:{proxy.port}",
        security_protocol="SSL",
        ssl_cafile=str(ca.cert_path),
        ssl_certfile=str(client.cert),
        ssl_keyfile=str(client.key),
    )
    try:
        # Act
        async with Rig(cfg) as rig:
            rig.ticks(50)
            await rig.wait_delivered()
            health = rig.sink.health()
    finally:
        proxy.stop()
    plain = await Collector(broker.bootstrap, ["tickserver.ticks"]).start()
    try:
        await wait_for(lambda: plain.events("tickserver.ticks") >= 50, 20, "the records")
    finally:
        await plain.stop()
    # Assert
    assert health.state == "ok"
    assert sorted(v["seq"] for v in plain.values["tickserver.ticks"]) == list(range(1, 51))


async def test_server_certificate_of_another_ca_is_refused_with_a_reason(
    broker: Broker, tmp_path: Path
) -> None:
    # Arrange: the broker's certificate is from a CA the client does not trust
    ours, theirs = TestCA(tmp_path / "ours", "our-ca"), TestCA(tmp_path / "theirs", "their-ca")
    server = theirs.issue("broker", server=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(server.cert, server.key)
    proxy = ApiVersionsFixProxy(broker.port, tls=ctx).start()
    cfg = kafka_config(
        tmp_path, f"127.0.0.1:{proxy.port}", security_protocol="SSL", ssl_cafile=str(ours.cert_path)
    )
    try:
        async with Rig(cfg) as rig:
            rig.ticks(5)
            # Act
            await wait_for(lambda: "unavailable" in rig.sink.health().reason, 20, "the refusal")
            health = rig.sink.health()
            backlog = rig.sink.backlog()
    finally:
        proxy.stop()
    # Assert: nothing sent to an unverified broker, the records wait
    assert health.state == "degraded"
    assert backlog == 1
