"""The ``[kafka]`` section mapped to aiokafka options: TLS, SASL PLAIN/SCRAM, AWS MSK IAM."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tickserver.config import ConfigError, KafkaConfig, load_config
from tickserver.kafka.client import (
    KafkaConfigError,
    MskIamTokenProvider,
    connection_options,
    producer_options,
)


def kafka(**kw: Any) -> KafkaConfig:
    return load_config(environ={}, overrides={"kafka": kw}).kafka


def _cert(tmp: Path, name: str, issuer: tuple[Any, Any] | None = None) -> tuple[Path, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_name, signer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .sign(signer_key, hashes.SHA256())
    )
    path = tmp / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, (subject, key)


def test_plaintext_maps_servers_and_client_id_only() -> None:
    # Act
    opts = connection_options(kafka(bootstrap_servers="b1:9092,b2:9092", client_id="ts1"), {})
    # Assert
    assert opts == {
        "bootstrap_servers": ["b1:9092", "b2:9092"],
        "client_id": "ts1",
        "security_protocol": "PLAINTEXT",
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_password_comes_from_the_named_env_var(mechanism: str) -> None:
    # Arrange
    cfg = kafka(
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username="trader",
        sasl_password_env="MY_KAFKA_PW",
    )
    # Act
    opts = connection_options(cfg, {"MY_KAFKA_PW": "hunter2"})
    # Assert
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == mechanism
    assert opts["sasl_plain_username"] == "trader"
    assert opts["sasl_plain_password"] == "hunter2"
    assert isinstance(opts["ssl_context"], ssl.SSLContext)


def test_sasl_plaintext_has_no_tls_context() -> None:
    cfg = kafka(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u")
    opts = connection_options(cfg, {"KAFKA_SASL_PASSWORD": "p"})
    assert "ssl_context" not in opts


def test_missing_sasl_password_names_the_env_var() -> None:
    cfg = kafka(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u")
    with pytest.raises(KafkaConfigError, match=r"\$KAFKA_SASL_PASSWORD, which is not set"):
        connection_options(cfg, {})


def test_password_in_toml_is_an_unknown_key(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "c.toml"
    path.write_text('[kafka]\nsasl_password = "hunter2"\n')
    # Act / Assert
    with pytest.raises(ConfigError, match=r"kafka\.sasl_password: unknown key"):
        load_config(path, environ={})


def test_tls_uses_the_ca_file_and_the_client_certificate(tmp_path: Path) -> None:
    # Arrange: a CA and a client certificate whose key is encrypted
    ca_path, ca = _cert(tmp_path, "test-ca")
    client_path, (_, client_key) = _cert(tmp_path, "tickserver", issuer=ca)
    key_path = tmp_path / "client.key"
    key_path.write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"keypw"),
        )
    )
    cfg = kafka(
        security_protocol="SSL",
        ssl_cafile=str(ca_path),
        ssl_certfile=str(client_path),
        ssl_keyfile=str(key_path),
        ssl_key_password_env="TLS_KEY_PW",
    )
    # Act
    ctx = connection_options(cfg, {"TLS_KEY_PW": "keypw"})["ssl_context"]
    # Assert
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert [dict(x[0] for x in c["subject"]) for c in ctx.get_ca_certs()] == [
        {"commonName": "test-ca"}
    ]
    with pytest.raises(ssl.SSLError):
        connection_options(cfg, {"TLS_KEY_PW": "wrong"})


def test_tls_hostname_check_can_be_turned_off() -> None:
    ctx = connection_options(kafka(security_protocol="SSL", ssl_check_hostname=False), {})[
        "ssl_context"
    ]
    assert ctx.check_hostname is False


def test_msk_iam_maps_to_oauthbearer_with_the_signer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: static credentials, so the AWS signer works offline
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    cfg = kafka(security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM", aws_region="eu-west-1")
    # Act
    opts = connection_options(cfg, {})
    provider = opts["sasl_oauth_token_provider"]
    token, expiry_ms = provider.generate()
    # Assert
    assert opts["sasl_mechanism"] == "OAUTHBEARER"
    assert opts["security_protocol"] == "SASL_SSL"
    assert isinstance(provider, MskIamTokenProvider)
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parts = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parts.query)
    assert parts.netloc == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert "/eu-west-1/kafka-cluster/aws4_request" in query["X-Amz-Credential"][0]
    assert expiry_ms > 0


def test_msk_iam_signs_with_a_named_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Arrange
    creds = tmp_path / "credentials"
    creds.write_text("[trading]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    cfg = kafka(
        security_protocol="SASL_SSL",
        sasl_mechanism="AWS_MSK_IAM",
        aws_region="us-east-1",
        aws_profile="trading",
    )
    # Act
    token, _ = connection_options(cfg, {})["sasl_oauth_token_provider"].generate()
    # Assert
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert "AKIDPROFILE%2F" in url


async def test_msk_token_is_reused_until_a_minute_before_expiry() -> None:
    # Arrange: a provider whose signing is counted
    provider = MskIamTokenProvider("us-east-1")
    calls: list[int] = []

    def fake_generate() -> tuple[str, int]:
        calls.append(1)
        import time

        return f"token{len(calls)}", int(time.time() * 1000) + 15 * 60_000

    provider.generate = fake_generate  # type: ignore[method-assign]
    # Act
    first = await provider.token()
    second = await provider.token()
    provider._expires_ms = 0  # expired
    third = await provider.token()
    # Assert
    assert (first, second, third) == ("token1", "token1", "token2")


def test_msk_iam_region_falls_back_to_aws_region_env() -> None:
    cfg = kafka(security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM")
    assert (
        connection_options(cfg, {"AWS_REGION": "ap-south-1"})["sasl_oauth_token_provider"].region
        == "ap-south-1"
    )
    with pytest.raises(KafkaConfigError, match="region"):
        connection_options(cfg, {})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        ({"sasl_mechanism": "PLAIN", "sasl_username": "u"}, "needs security_protocol SASL_SSL"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "AWS_MSK_IAM"},
            "AWS_MSK_IAM needs security_protocol SASL_SSL",
        ),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256"}, "sasl_username"),
        ({"ssl_certfile": "c.pem"}, "go together"),
        ({"topic_prefix": "a/b"}, "topic_prefix"),
        ({"ticks": "sometimes"}, "kafka.ticks"),
    ],
)
def test_inconsistent_kafka_settings_are_rejected(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        kafka(**section)


async def test_producer_uses_acks_all_compression_and_the_idempotence_decision() -> None:
    # Act
    opts = producer_options(kafka(compression="lz4", max_batch_bytes=65536), idempotent=True)
    plain = producer_options(kafka(compression="none"), idempotent=False, environ={})
    # Assert
    assert opts["acks"] == "all"
    assert opts["compression_type"] == "lz4"
    assert opts["enable_idempotence"] is True
    assert opts["max_batch_size"] == 65536
    assert plain["compression_type"] is None
    assert plain["enable_idempotence"] is False
    producer = AIOKafkaProducer(**plain)  # aiokafka accepts every option as mapped
    await producer.stop()
