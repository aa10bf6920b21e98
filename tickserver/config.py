"""One frozen, typed configuration tree: embedded defaults < TOML file < TICKSERVER_* env.

Every section is a pydantic model with ``extra="forbid"`` and ``frozen=True``, so an unknown
key or a bad value fails at start with a message naming the key (``server.port``) and what
was expected. Environment overrides use ``TICKSERVER_<SECTION>__<KEY>`` (double underscore
between levels, e.g. ``TICKSERVER_SERVER__PORT=9000`` or
``TICKSERVER_SOURCES__SIM__RATE=5000``); values are parsed as TOML literals when they can be
(``9000``, ``true``, ``["AAPL", "MSFT"]``) and as plain strings otherwise; list fields also
accept ``AAPL,MSFT``.

Secrets never live in the TOML file: the API token, Alpha Vantage key and Kafka passwords are
read from environment variables whose *names* the config holds.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "TICKSERVER_"
# Environment variables that start with the prefix but are not config overrides.
NON_OVERRIDE_ENV = frozenset({"TICKSERVER_API_TOKEN", "TICKSERVER_CONFIG"})

INTERVALS: dict[str, int] = {
    "tick": 0,
    "1s": 1_000_000_000,
    "5s": 5_000_000_000,
    "15s": 15_000_000_000,
    "30s": 30_000_000_000,
    "1m": 60_000_000_000,
    "5m": 300_000_000_000,
    "15m": 900_000_000_000,
    "30m": 1_800_000_000_000,
    "1h": 3_600_000_000_000,
    "4h": 14_400_000_000_000,
    "1d": 86_400_000_000_000,
}
"""Bar intervals tickserver understands, in nanoseconds (``tick`` = every trade)."""

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY")


class ConfigError(ValueError):
    """The configuration is invalid; the message names each bad key."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], BeforeValidator(_split_csv)]


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys forbidden."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _check_interval(value: str) -> str:
    if value not in INTERVALS:
        raise ValueError(f"unknown interval {value!r}; expected one of {', '.join(INTERVALS)}")
    return value


Interval = Annotated[str, BeforeValidator(_check_interval)]


class ServerConfig(Section):
    """HTTP/GraphQL server."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    auth_token_env: str = Field(
        "TICKSERVER_API_TOKEN",
        description="Name of the env var holding the bearer token; auth is on when it is set.",
    )
    cors_origins: CsvList = Field(default_factory=list)
    graphiql: bool = True
    max_query_depth: int = Field(12, ge=1)
    max_aliases: int = Field(30, ge=1)
    max_subscriptions_per_connection: int = Field(64, ge=1)
    subscription_fanout: bool = Field(
        True,
        description="Serve identical subscriptions from one shared execution (false: strawberry "
        "executes every subscription per subscriber; kept for comparison benchmarks).",
    )
    ws_heartbeat_s: float = Field(20.0, gt=0)
    shutdown_timeout_s: float = Field(10.0, gt=0)
    static_dir: str | None = Field(None, description="Serve the dashboard from here instead.")


class LogConfig(Section):
    """Logging: JSON lines under systemd (no TTY), readable lines on a terminal."""

    format: Literal["auto", "json", "text"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class MarketConfig(Section):
    """Instruments and the hot state kept per symbol."""

    symbols: CsvList = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    ring_capacity: int = Field(100_000, ge=16, description="Trades kept per symbol (ring).")
    bar_capacity: int = Field(5_000, ge=16, description="Closed bars kept per symbol+interval.")
    intervals: list[Interval] = Field(default_factory=lambda: ["1s", "1m", "5m", "1h", "1d"])
    tick_size: float = Field(0.0001, gt=0, description="Default price increment of the books.")
    tick_sizes: dict[str, float] = Field(default_factory=dict)
    calendar: str = Field("XNYS", description="exchange_calendars code for sessions/1d bars.")
    timezone: str = "America/New_York"

    @field_validator("intervals")
    @classmethod
    def _no_tick_interval(cls, v: list[str]) -> list[str]:
        if "tick" in v:
            raise ValueError("'tick' is not a bar interval (indicators may use it)")
        if len(set(v)) != len(v):
            raise ValueError("intervals must not repeat")
        return v


IndicatorKind = Literal["sma", "ema", "rsi", "macd", "bbands", "atr", "vwap", "stddev", "zscore"]


class IndicatorConfig(Section):
    """One indicator, computed per symbol on each listed interval.

    Outputs are named after ``name``: single-output indicators publish ``name``;
    ``macd`` publishes ``name``, ``name.signal``, ``name.hist``; ``bbands`` publishes
    ``name.upper``, ``name.middle``, ``name.lower``.
    """

    name: str
    kind: IndicatorKind
    period: int = Field(14, ge=1)
    fast: int = Field(12, ge=1)
    slow: int = Field(26, ge=1)
    signal: int = Field(9, ge=1)
    k: float = Field(2.0, gt=0)
    intervals: list[Interval] = Field(default_factory=lambda: ["tick", "1m"])


def indicator_outputs(ind: IndicatorConfig) -> list[str]:
    """Names of the values an indicator publishes."""
    if ind.kind == "macd":
        return [ind.name, f"{ind.name}.signal", f"{ind.name}.hist"]
    if ind.kind == "bbands":
        return [f"{ind.name}.upper", f"{ind.name}.middle", f"{ind.name}.lower"]
    return [ind.name]


def _default_indicators() -> list[IndicatorConfig]:
    return [
        IndicatorConfig(name="ema12", kind="ema", period=12),
        IndicatorConfig(name="ema26", kind="ema", period=26),
        IndicatorConfig(name="sma20", kind="sma", period=20),
        IndicatorConfig(name="rsi14", kind="rsi", period=14),
        IndicatorConfig(name="macd", kind="macd", fast=12, slow=26, signal=9),
        IndicatorConfig(name="bb", kind="bbands", period=20, k=2.0),
        IndicatorConfig(name="atr14", kind="atr", period=14),
        IndicatorConfig(name="vwap", kind="vwap"),
        IndicatorConfig(name="z20", kind="zscore", period=20),
    ]


class SignalRuleConfig(Section):
    """A trading-signal rule evaluated per symbol on one interval.

    - ``crossover``: fires +1 when output ``fast`` crosses above ``slow``, -1 when below.
    - ``threshold``: fires -1 when ``indicator`` crosses above ``above`` (overbought) and +1
      when it crosses below ``below`` (oversold).
    - ``breakout``: fires +1 when the price closes above ``<band>.upper``, -1 below
      ``<band>.lower``.
    """

    name: str
    kind: Literal["crossover", "threshold", "breakout"]
    interval: Interval = "1m"
    fast: str | None = None
    slow: str | None = None
    indicator: str | None = None
    above: float | None = None
    below: float | None = None
    band: str | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> SignalRuleConfig:
        need = {
            "crossover": ("fast", "slow"),
            "threshold": ("indicator",),
            "breakout": ("band",),
        }[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{self.kind} rule {self.name!r} needs {', '.join(missing)}")
        if self.kind == "threshold" and self.above is None and self.below is None:
            raise ValueError(f"threshold rule {self.name!r} needs 'above' and/or 'below'")
        return self


def _default_rules() -> list[SignalRuleConfig]:
    return [
        SignalRuleConfig(name="ema_cross", kind="crossover", fast="ema12", slow="ema26"),
        SignalRuleConfig(
            name="rsi_extreme", kind="threshold", indicator="rsi14", above=70, below=30
        ),
        SignalRuleConfig(name="bb_breakout", kind="breakout", band="bb"),
    ]


class EngineConfig(Section):
    """How the engine drives the core."""

    advance_interval_ms: int = Field(
        100, ge=10, description="How often forming bars are closed on the clock."
    )
    bar_close_grace_ms: int = Field(
        250, ge=0, description="Wait this long past a bar's end for late trades before closing it."
    )
    forming_updates: bool = Field(True, description="Publish forming-bar updates to subscribers.")
    forming_update_ms: int = Field(250, ge=10)


class ValidationConfig(Section):
    """``[sources.validation]``: checks every source's events pass before the engine sees them.

    Always rejected (not configurable): non-finite, zero or negative prices, negative or
    non-finite sizes, crossed quotes. See ``tickserver.sources.validation`` for the policies.
    """

    max_jump_pct: float = Field(
        25.0, gt=0, description="Sanity band: a move larger than this from the last price."
    )
    jump_policy: Literal["reject", "flag", "off"] = "reject"
    jump_confirm: int = Field(
        3, ge=1, description="Consecutive ticks at a new level that confirm a genuine jump."
    )
    jump_reference_max_age_s: float = Field(
        900.0, gt=0, description="An older reference price does not constrain the next tick."
    )
    out_of_order: Literal["drop", "pass"] = "drop"
    duplicates: Literal["drop", "pass"] = "drop"


class SourcesConfig(Section):
    """Which feeds run. Each provider's own options live in ``[sources.<name>]``."""

    model_config = ConfigDict(frozen=True, extra="allow", validate_default=True)

    enabled: CsvList = Field(default_factory=lambda: ["sim"])
    validation: ValidationConfig = Field(default_factory=ValidationConfig)


class BusConfig(Section):
    """In-process fan-out."""

    subscriber_maxsize: int = Field(256, ge=1)


PublishMode = Literal["off", "immediate", "batched"]


class KafkaConfig(Section):
    """Kafka: the publisher sink (``enabled``) and the connection ``--source kafka`` uses too.

    Nothing is published when ``enabled`` is false. Topics are ``<topic_prefix>.ticks``,
    ``.quotes``, ``.bars.<interval>`` and ``.signals``; each is ``off``, ``immediate`` (one
    record per event) or ``batched`` (one record per symbol per ``flush_ms`` window, columnar).
    Secrets (SASL password, TLS key password) are read from the environment variables named
    here, never from the TOML file. See docs/kafka.md.
    """

    enabled: bool = False
    bootstrap_servers: CsvList = Field(default_factory=lambda: ["127.0.0.1:9092"])
    topic_prefix: str = "tickserver"
    client_id: str = "tickserver"

    # --- what is published, how
    ticks: PublishMode = "immediate"
    quotes: PublishMode = "off"
    bars: PublishMode = "immediate"
    signals: PublishMode = "immediate"
    bar_intervals: list[Interval] | None = Field(
        None, description="Bar intervals to publish (default: every market.intervals entry)."
    )
    forming_bars: bool = Field(False, description="Also publish forming-bar updates.")
    flush_ms: int = Field(100, ge=1, le=60_000, description="Batched mode: the flush window.")
    flush_max_events: int = Field(
        200_000, ge=1, description="Batched mode: flush early once this many events wait."
    )

    # --- producer
    compression: Literal["zstd", "lz4", "gzip", "snappy", "none"] = "zstd"
    idempotence: Literal["auto", "on", "off"] = Field(
        "auto",
        description="auto: use the idempotent producer when the broker grants a producer id.",
    )
    max_batch_bytes: int = Field(
        512 * 1024, ge=1024, description="Bytes per partition batch (one produce request part)."
    )
    max_record_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="Largest record sent; batched records are split below it, a larger "
        "single-event record is dead-lettered. Keep it <= the broker's message.max.bytes.",
    )
    linger_ms: int = Field(0, ge=0, le=10_000)
    request_timeout_ms: int = Field(10_000, ge=100)
    retry_backoff_ms: int = Field(100, ge=1, description="First reconnect delay (doubles).")
    retry_backoff_max_ms: int = Field(5_000, ge=1, description="Longest reconnect delay.")
    shutdown_flush_s: float = Field(
        5.0, ge=0, description="At stop, keep delivering the backlog for up to this long."
    )

    # --- topics
    create_topics: bool = Field(
        True, description="Create missing topics (at start and when one is deleted)."
    )
    partitions: int = Field(12, ge=1, description="Partitions of topics tickserver creates.")
    replication_factor: int = Field(
        -1, ge=-1, description="Replication of created topics (-1: min(3, brokers in the cluster))."
    )
    topic_configs: dict[str, str] = Field(
        default_factory=dict, description="Topic configs for created topics (retention.ms, …)."
    )

    # --- local spool (records wait here while the broker is away)
    spool_dir: str = "./tickserver-data/kafka-spool"
    spool_max_bytes: int = Field(1 << 30, ge=1 << 20, description="Bound of the spool on disk.")
    spool_fsync: Literal["always", "batch", "never"] = "batch"
    dead_letter_path: str | None = Field(
        None, description="Where undeliverable records go (default <spool_dir>/dead-letter.jsonl)."
    )

    # --- security
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM"] | None = None
    sasl_username: str | None = None
    sasl_password_env: str = Field(
        "KAFKA_SASL_PASSWORD", description="Env var holding the SASL PLAIN/SCRAM password."
    )
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password_env: str | None = Field(
        None, description="Env var holding the password of ssl_keyfile, if it has one."
    )
    ssl_check_hostname: bool = True
    aws_region: str | None = Field(
        None, description="AWS_MSK_IAM: the cluster's region (default: $AWS_REGION)."
    )
    aws_profile: str | None = Field(None, description="AWS_MSK_IAM: a named profile to sign with.")
    aws_role_arn: str | None = Field(None, description="AWS_MSK_IAM: a role to assume to sign.")

    @model_validator(mode="after")
    def _security_fits(self) -> KafkaConfig:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs security_protocol SASL_SSL "
                "(or SASL_PLAINTEXT)"
            )
        if self.sasl_mechanism == "AWS_MSK_IAM" and self.security_protocol != "SASL_SSL":
            raise ValueError("sasl_mechanism AWS_MSK_IAM needs security_protocol SASL_SSL")
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
            self.sasl_username
        ):
            raise ValueError(f"sasl_mechanism {self.sasl_mechanism} needs sasl_username")
        if self.replication_factor == 0:
            raise ValueError("replication_factor must be -1 (automatic) or at least 1")
        if self.aws_profile and self.aws_role_arn:
            raise ValueError("set aws_profile or aws_role_arn, not both")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        if not self.topic_prefix or any(c not in _TOPIC_CHARS for c in self.topic_prefix):
            raise ValueError(
                f"topic_prefix {self.topic_prefix!r}: use letters, digits, '.', '_' and '-'"
            )
        return self


_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class StoreConfig(Section):
    """History store (Parquet on local disk, or S3 when ``s3_bucket`` is set).

    Accepted events go to a write-ahead spool under ``path`` first; every
    ``flush_interval_s`` (or ``flush_bytes`` of spool, whichever comes first) they become
    Parquet parts under ``path`` (local) or in the bucket (S3, staged in ``path/outbox``).
    S3 credentials come from boto3's default chain (instance role), never from this file.
    """

    enabled: bool = True
    path: str = Field(
        "./tickserver-data", description="Store root (local) or spool/outbox folder (S3)."
    )
    flush_interval_s: float = Field(60.0, gt=0, le=86_400, description="Flush at least this often.")
    flush_bytes: int = Field(
        64 << 20, ge=4096, description="Flush early once this many bytes are spooled."
    )
    fsync: Literal["always", "batch", "never"] = Field(
        "batch", description="Spool durability: fsync per append, every fsync_interval_ms, or OS."
    )
    fsync_interval_ms: int = Field(50, ge=1, le=60_000)
    max_backlog_bytes: int = Field(
        4 << 30,
        ge=1 << 20,
        description="Bound on spool + not-yet-uploaded parts; past it new events are dropped "
        "from the store (counted, logged, /readyz degraded).",
    )
    quotes: bool = Field(False, description="Also store top-of-book quotes (several per trade).")
    compression_level: int = Field(3, ge=1, le=22, description="zstd level of the Parquet files.")
    s3_bucket: str | None = Field(None, description="Upload to this bucket (else keep local).")
    s3_prefix: str = Field("", description="Key prefix inside the bucket.")
    s3_region: str | None = None
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, moto, …); default: AWS."
    )
    s3_sse: Literal["none", "AES256", "aws:kms"] = Field(
        "none", description="Server-side encryption of uploaded objects."
    )
    s3_kms_key_id: str | None = Field(None, description="KMS key (id, ARN or alias) for aws:kms.")
    s3_multipart_threshold_bytes: int = Field(64 << 20, ge=5 << 20)
    s3_multipart_chunk_bytes: int = Field(16 << 20, ge=5 << 20)
    s3_max_attempts: int = Field(5, ge=1, le=20, description="botocore retries per request.")
    s3_retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between upload attempts while S3 is failing."
    )
    cache_bytes: int = Field(
        1 << 30, ge=0, description="S3: keep this much of the uploaded parts locally for reads."
    )

    @field_validator("s3_bucket")
    @classmethod
    def _bucket_name(cls, v: str | None) -> str | None:
        import re

        if v is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", v):
            raise ValueError(
                f"{v!r} is not a valid S3 bucket name (3-63 lower-case letters, digits, "
                "dots and hyphens); give the name only, not s3://…"
            )
        return v

    @field_validator("s3_prefix")
    @classmethod
    def _strip_prefix(cls, v: str) -> str:
        return v.strip("/")

    @model_validator(mode="after")
    def _kms(self) -> StoreConfig:
        if self.s3_kms_key_id and self.s3_sse != "aws:kms":
            raise ValueError('s3_kms_key_id needs s3_sse = "aws:kms"')
        return self


class CloudWatchConfig(Section):
    """CloudWatch metrics: embedded metric format (EMF) lines, or batched PutMetricData.

    ``emf`` (default) writes one JSON line per dimension combination every ``interval_s`` to
    ``emf_target``; the CloudWatch agent ships them and CloudWatch Logs turns them into
    metrics, so the process makes no AWS calls. ``api`` calls PutMetricData through boto3 in
    a thread (credentials from boto3's default chain, never from this file).
    """

    enabled: bool = False
    namespace: str = Field("tickserver", min_length=1, max_length=255)
    mode: Literal["emf", "api"] = "emf"
    interval_s: float = Field(
        60.0, ge=1.0, le=3600.0, description="Seconds per datapoint (< 60: high resolution)."
    )
    emf_target: str = Field(
        "stdout",
        description="Where EMF lines go: stdout, file:PATH, tcp://HOST:PORT or udp://HOST:PORT "
        "(the CloudWatch agent's EMF listener is tcp://127.0.0.1:25888).",
    )
    dimensions: dict[str, str] = Field(
        default_factory=dict,
        description='Added to every metric, e.g. { Stack = "tickserver-prod" }.',
    )
    region: str | None = Field(None, description="api mode: region (default: boto3's chain).")
    endpoint_url: str | None = Field(None, description="api mode: a non-default endpoint.")
    market_open_metric: bool = Field(
        True, description="Emit MarketOpen (0/1) from market.calendar, for session-aware alarms."
    )
    extra_metrics: list[str] = Field(
        default_factory=list,
        description="More /metrics families to export as they are (name without tickserver_).",
    )

    @field_validator("emf_target")
    @classmethod
    def _check_target(cls, v: str) -> str:
        if v == "stdout" or (v.startswith("file:") and len(v) > 5):
            return v
        for scheme in ("tcp://", "udp://"):
            if v.startswith(scheme):
                host, sep, port = v[len(scheme) :].rpartition(":")
                if sep and host and port.isdigit() and 0 < int(port) < 65536:
                    return v
        raise ValueError("expected stdout, file:PATH, tcp://HOST:PORT or udp://HOST:PORT")

    @field_validator("dimensions")
    @classmethod
    def _check_dimensions(cls, v: dict[str, str]) -> dict[str, str]:
        # CloudWatch allows 30 dimensions per metric; up to 3 more come from metric labels.
        if len(v) > 27:
            raise ValueError("at most 27 dimensions")
        for key, value in v.items():
            if not key or not value or len(key) > 255 or len(value) > 1024:
                raise ValueError(f"dimension {key!r}: names and values must be non-empty")
        return v


class Config(Section):
    """The whole configuration tree."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    market: MarketConfig = Field(default_factory=MarketConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    indicators: list[IndicatorConfig] = Field(default_factory=_default_indicators)
    signals: list[SignalRuleConfig] = Field(default_factory=_default_rules)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    bus: BusConfig = Field(default_factory=BusConfig)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    cloudwatch: CloudWatchConfig = Field(default_factory=CloudWatchConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        names = [i.name for i in self.indicators]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"indicator names must be unique: {', '.join(sorted(dup))}")
        rules = [r.name for r in self.signals]
        if len(set(rules)) != len(rules):
            raise ValueError("signal rule names must be unique")
        bar_intervals = set(self.market.intervals)
        outputs: dict[str, set[str]] = {}
        kinds = {i.name: i.kind for i in self.indicators}
        for ind in self.indicators:
            for iv in ind.intervals:
                if iv != "tick" and iv not in bar_intervals:
                    raise ValueError(
                        f"indicator {ind.name!r}: interval {iv!r} is not in market.intervals "
                        f"({', '.join(self.market.intervals)})"
                    )
                outputs.setdefault(iv, set()).update(indicator_outputs(ind))
        for r in self.signals:
            have = outputs.get(r.interval, set()) | {"close"}
            if r.interval != "tick" and r.interval not in bar_intervals:
                raise ValueError(f"signal {r.name!r}: interval {r.interval!r} is not configured")
            refs = {"crossover": [r.fast, r.slow], "threshold": [r.indicator], "breakout": []}[
                r.kind
            ]
            for ref in refs:
                if ref not in have:
                    raise ValueError(
                        f"signal {r.name!r}: {ref!r} is not computed on interval {r.interval!r} "
                        f"(available: {', '.join(sorted(have))})"
                    )
            if r.kind == "breakout" and (
                kinds.get(r.band or "") != "bbands" or f"{r.band}.upper" not in have
            ):
                raise ValueError(
                    f"signal {r.name!r}: band {r.band!r} must name a bbands indicator computed "
                    f"on interval {r.interval!r}"
                )
        return self

    def source_section(self, name: str) -> Mapping[str, Any]:
        """Return the raw ``[sources.<name>]`` table (validated by the source's own model)."""
        extra = self.sources.model_extra or {}
        section = extra.get(name, {})
        if not isinstance(section, Mapping):
            raise ConfigError(f"sources.{name}: expected a table, got {type(section).__name__}")
        return section


# ----------------------------------------------------------------------------------- loading


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``TICKSERVER_A__B__C=v`` variables into a nested ``{"a": {"b": {"c": v}}}``."""
    tree: dict[str, Any] = {}
    for key, raw in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key in NON_OVERRIDE_ENV:
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        if len(path) < 2 or any(not p for p in path):
            raise ConfigError(
                f"{key}: config overrides are named TICKSERVER_<SECTION>__<KEY> "
                "(double underscore between levels)"
            )
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: conflicts with another override")
        node[path[-1]] = _parse_env_value(raw)
    return tree


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base`` (tables merge, everything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def format_validation_error(err: ValidationError, origin: str) -> str:
    """Render pydantic's errors as one line per key: ``server.port: <what was expected>``."""
    lines = [f"invalid configuration ({origin}):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        got = e.get("input")
        shown = "" if e["type"] in ("extra_forbidden", "missing") else f" (got {got!r})"
        lines.append(f"  {loc}: {msg}{shown}")
    return "\n".join(lines)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load the configuration.

    Parameters
    ----------
    path
        TOML file; ``None`` uses the embedded defaults only.
    environ
        Environment to read ``TICKSERVER_*`` overrides from (default ``os.environ``).
    overrides
        Highest-priority values, e.g. from command-line flags, as a nested mapping.

    Raises
    ------
    ConfigError
        Naming every bad or unknown key.
    """
    data: dict[str, Any] = {}
    origin = "embedded defaults"
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        origin = str(p)
    env = env_overrides(os.environ if environ is None else environ)
    if env:
        data = deep_merge(data, env)
        origin += " + environment"
    if overrides:
        data = deep_merge(data, overrides)
        origin += " + command line"
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None
    validate_source_sections(cfg, origin)
    return cfg


def validate_source_sections(cfg: Config, origin: str, enabled: list[str] | None = None) -> None:
    """Validate ``[sources.<name>]`` tables with each source's own model.

    ``enabled`` replaces ``sources.enabled`` (``--source`` on the command line).

    Raises
    ------
    ConfigError
        For an unknown source or a bad key in a source's section.
    """
    from tickserver.sources import registry

    extra = cfg.sources.model_extra or {}
    enabled = cfg.sources.enabled if enabled is None else enabled
    for name in extra:
        if name not in registry.available():
            raise ConfigError(
                f"invalid configuration ({origin}):\n  sources.{name}: unknown source; "
                f"available: {', '.join(sorted(registry.available()))}"
            )
    for name in enabled:
        if name not in registry.available():
            raise ConfigError(
                f"invalid configuration ({origin}):\n  sources.enabled: unknown source {name!r}; "
                f"available: {', '.join(sorted(registry.available()))}"
            )
    for name in sorted(set(extra) | set(enabled)):
        try:
            registry.get(name).config_model.model_validate(cfg.source_section(name))
        except ValidationError as exc:
            msg = format_validation_error(exc, origin)
            raise ConfigError(
                msg.replace("\n  ", f"\n  sources.{name}.").replace(
                    f"sources.{name}.<root>", f"sources.{name}"
                )
            ) from None
