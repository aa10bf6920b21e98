"""The ``[kafka]`` config mapped to aiokafka clients: security, topics, idempotence.

Security (docs/kafka.md has examples):

- ``security_protocol = "SSL"``: TLS with ``ssl_cafile`` (else the system CAs) and, for mutual
  TLS, ``ssl_certfile`` + ``ssl_keyfile`` (its password from the env var named by
  ``ssl_key_password_env``).
- ``SASL_SSL`` / ``SASL_PLAINTEXT`` with ``sasl_mechanism`` ``PLAIN``, ``SCRAM-SHA-256`` or
  ``SCRAM-SHA-512``: ``sasl_username`` and the password from the env var named by
  ``sasl_password_env``.
- ``SASL_SSL`` with ``sasl_mechanism = "AWS_MSK_IAM"``: OAUTHBEARER with tokens signed by AWS's
  ``aws-msk-iam-sasl-signer-python`` from the default credential chain (instance role), a
  named profile (``aws_profile``) or an assumed role (``aws_role_arn``).

Secrets never come from the TOML file; a missing secret env var is a :class:`KafkaConfigError`
that names the variable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Mapping
from typing import Any

from aiokafka.abc import AbstractTokenProvider

from tickserver.config import KafkaConfig

log = logging.getLogger(__name__)

COMPRESSION = {"zstd": "zstd", "lz4": "lz4", "gzip": "gzip", "snappy": "snappy", "none": None}


class KafkaConfigError(ValueError):
    """The ``[kafka]`` settings cannot be turned into a client (names what is missing)."""


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER tokens for AWS MSK IAM auth, signed by ``aws_msk_iam_sasl_signer``.

    A token is valid for 15 minutes; it is reused until a minute before it expires. Signing
    reads credentials (instance metadata, STS) so it runs in a thread.
    """

    def __init__(self, region: str, profile: str | None = None, role_arn: str | None = None):
        self.region = region
        self.profile = profile
        self.role_arn = role_arn
        self._token: str | None = None
        self._expires_ms = 0
        self._lock = asyncio.Lock()

    def generate(self) -> tuple[str, int]:
        """Sign a new token; return (token, expiry in epoch ms)."""
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        if self.role_arn:
            token, expiry = MSKAuthTokenProvider.generate_auth_token_from_role_arn(
                self.region, self.role_arn
            )
        elif self.profile:
            token, expiry = MSKAuthTokenProvider.generate_auth_token_from_profile(
                self.region, self.profile
            )
        else:
            token, expiry = MSKAuthTokenProvider.generate_auth_token(self.region)
        return str(token), int(expiry)

    async def token(self) -> str:
        """Return a valid token (signing a new one when the cached one is about to expire)."""
        async with self._lock:
            if self._token is None or time.time() * 1000 > self._expires_ms - 60_000:
                token, self._expires_ms = await asyncio.to_thread(self.generate)
                self._token = token
                return token
            return self._token


def _secret(environ: Mapping[str, str], var: str, what: str) -> str:
    value = environ.get(var)
    if not value:
        raise KafkaConfigError(f"kafka: {what} is read from ${var}, which is not set")
    return value


def ssl_context(cfg: KafkaConfig, environ: Mapping[str, str]) -> ssl.SSLContext:
    """Build the TLS context of ``SSL`` / ``SASL_SSL``."""
    ctx = ssl.create_default_context(cafile=cfg.ssl_cafile)
    ctx.check_hostname = cfg.ssl_check_hostname
    if cfg.ssl_certfile and cfg.ssl_keyfile:
        password = (
            _secret(environ, cfg.ssl_key_password_env, "the TLS key password")
            if cfg.ssl_key_password_env
            else None
        )
        ctx.load_cert_chain(cfg.ssl_certfile, cfg.ssl_keyfile, password=password)
    return ctx


def connection_options(
    cfg: KafkaConfig, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the aiokafka keyword arguments for the connection (servers and security).

    Parameters
    ----------
    cfg
        The ``[kafka]`` section.
    environ
        Where secrets are read from (default ``os.environ``).

    Raises
    ------
    KafkaConfigError
        If a secret's env var is unset or the MSK region is unknown.
    """
    env = os.environ if environ is None else environ
    opts: dict[str, Any] = {
        "bootstrap_servers": list(cfg.bootstrap_servers),
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = ssl_context(cfg, env)
    mech = cfg.sasl_mechanism
    if mech in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        opts["sasl_mechanism"] = mech
        opts["sasl_plain_username"] = cfg.sasl_username
        opts["sasl_plain_password"] = _secret(env, cfg.sasl_password_env, "the SASL password")
    elif mech == "AWS_MSK_IAM":
        region = cfg.aws_region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if not region:
            raise KafkaConfigError(
                "kafka: AWS_MSK_IAM needs the cluster's region: set kafka.aws_region or $AWS_REGION"
            )
        opts["sasl_mechanism"] = "OAUTHBEARER"
        opts["sasl_oauth_token_provider"] = MskIamTokenProvider(
            region, cfg.aws_profile, cfg.aws_role_arn
        )
    return opts


def producer_options(
    cfg: KafkaConfig, *, idempotent: bool, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the keyword arguments of the publisher's ``AIOKafkaProducer``."""
    opts = connection_options(cfg, environ)
    opts.update(
        acks="all",
        enable_idempotence=idempotent,
        compression_type=COMPRESSION[cfg.compression],
        max_batch_size=cfg.max_batch_bytes,
        max_request_size=max(cfg.max_record_bytes, cfg.max_batch_bytes) + 65_536,
        linger_ms=cfg.linger_ms,
        request_timeout_ms=cfg.request_timeout_ms,
        retry_backoff_ms=cfg.retry_backoff_ms,
        metadata_max_age_ms=30_000,
    )
    return opts


async def probe_idempotence(cfg: KafkaConfig, environ: Mapping[str, str] | None = None) -> bool:
    """Ask the broker for a producer id, as the idempotent producer would; True if granted.

    Some Kafka-protocol brokers (Tansu) advertise InitProducerId but answer it with an error,
    which would make aiokafka's idempotent producer fail every send; asking first lets
    ``idempotence = "auto"`` fall back to the plain producer with a warning.

    Raises
    ------
    aiokafka.errors.KafkaConnectionError
        If the broker cannot be reached (the caller retries).
    """
    from aiokafka import errors
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.transaction import InitProducerIdRequest

    client = AIOKafkaClient(
        **connection_options(cfg, environ), request_timeout_ms=cfg.request_timeout_ms
    )
    try:
        await client.bootstrap()
        node = client.get_random_node()
        if node is None:
            return False
        if not await client.ready(node):
            raise errors.KafkaConnectionError(f"cannot reach broker node {node}")
        try:
            resp = await client.send(
                node, InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000)
            )
        except errors.KafkaError as exc:
            log.debug("InitProducerId failed: %r", exc)
            return False
        return bool(resp.error_code == 0)
    finally:
        await client.close()


async def missing_topics(
    cfg: KafkaConfig, topics: list[str], environ: Mapping[str, str] | None = None
) -> list[str]:
    """Return the topics of ``topics`` the cluster does not have (asking does not create)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        **connection_options(cfg, environ), request_timeout_ms=cfg.request_timeout_ms
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [t for t in topics if t not in existing]


async def ensure_topics(
    cfg: KafkaConfig, topics: list[str], environ: Mapping[str, str] | None = None
) -> list[str]:
    """Create the topics that do not exist yet; return those created.

    Raises
    ------
    aiokafka.errors.KafkaError
        If the broker refuses to create one (the message names the topic and the reason).
    """
    from aiokafka import errors
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        **connection_options(cfg, environ), request_timeout_ms=cfg.request_timeout_ms
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return []
        replication = cfg.replication_factor
        if replication == -1:
            # "The broker's default" is only expressible from CreateTopics v4 on; aiokafka may
            # speak an older version, so pick min(3, brokers) like a sensible default would.
            brokers = (await admin.describe_cluster()).get("brokers", [])
            replication = max(1, min(3, len(brokers)))
        new = [
            NewTopic(
                t,
                num_partitions=cfg.partitions,
                replication_factor=replication,
                topic_configs=dict(cfg.topic_configs),
            )
            for t in missing
        ]
        resp = await admin.create_topics(new)
        created = []
        for topic, code, *rest in resp.topic_errors:
            if code == 0:
                created.append(topic)
            elif code != errors.TopicAlreadyExistsError.errno:
                msg = rest[0] if rest and rest[0] else errors.for_code(code).__name__
                raise errors.for_code(code)(f"cannot create topic {topic!r}: {msg}")
        return created
    finally:
        await admin.close()
