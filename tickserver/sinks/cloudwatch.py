"""CloudWatch metrics: the key figures of the app's :class:`~tickserver.metrics.Metrics` registry,
every ``cloudwatch.interval_s``, as embedded metric format (EMF) lines or PutMetricData calls.

What is exported (names in CloudWatch; every metric also carries ``cloudwatch.dimensions``):

==========================  ======================  ==========================================
metric                      dimensions              from
==========================  ======================  ==========================================
EventsIn                    Source, Type / none     ``events_in_total`` (delta per interval)
Rejects                     Source, Type, Reason    ``rejects_total`` (delta)
LateTrades                  none                    ``late_trades_total`` (delta)
Drops                       Subscriber / none       ``bus_dropped_subscribers_total`` (delta)
SlowConsumers               none                    ``ws_slow_consumers_total`` (delta)
SinkBacklog                 Sink / none             ``sink_backlog`` (gauge)
WebSocketConnections        none                    ``ws_connections`` (gauge)
Ready                       none                    ``ready`` (1 when /readyz is 200)
Ticks, TicksPerSecond       none                    ``events_in_total{type="trade"}``
MarketOpen                  none                    ``market.calendar`` (1 during a session)
Starts                      none                    1 once per process start
==========================  ======================  ==========================================

"none" means the metric is also (or only) emitted with just the configured dimensions, which
is what the CloudFormation alarms watch. Counters become per-interval deltas (CloudWatch has
no counter type); a metric absent from the registry is simply not sent.

Why EMF by default: the process makes no AWS calls and needs no AWS permission; the
CloudWatch agent already ships the log file, CloudWatch Logs extracts the metrics, and the
agent resumes from its file offset after a restart, so nothing is lost while it is down.
``mode = "api"`` (PutMetricData through boto3 in a thread) is there for hosts without the
agent. Metrics are telemetry, not user data: a failed PutMetricData is retried with the next
interval's batch, and after :data:`MAX_PENDING` intervals the oldest batch is dropped, logged
and counted in ``tickserver_cloudwatch_dropped_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import socket
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from tickserver.config import CloudWatchConfig
from tickserver.metrics import Family, Metrics
from tickserver.sinks.base import Sink, SinkContext

log = logging.getLogger(__name__)

MAX_PENDING = 10
"""api mode: intervals of unsent datapoints kept for retry before the oldest are dropped."""
MAX_METRICS_PER_DIRECTIVE = 100  # EMF spec: a MetricDirective holds at most 100 metrics
MAX_DATUMS_PER_CALL = 1000  # PutMetricData: at most 1000 MetricDatum per request

Dims = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Export:
    """How one registry family becomes a CloudWatch metric.

    ``dims`` are the labels kept as dimensions (other labels are summed); ``total`` also emits
    the sum over all label values with only the configured dimensions.
    """

    family: str
    name: str
    kind: Literal["delta", "gauge"]
    unit: str = "Count"
    dims: tuple[str, ...] = ()
    total: bool = True


EXPORTS: tuple[Export, ...] = (
    Export("events_in_total", "EventsIn", "delta", dims=("source", "type")),
    Export("rejects_total", "Rejects", "delta", dims=("source", "type", "reason")),
    Export("late_trades_total", "LateTrades", "delta"),
    Export("bus_dropped_subscribers_total", "Drops", "delta", dims=("subscriber",)),
    Export("ws_slow_consumers_total", "SlowConsumers", "delta"),
    Export("sink_backlog", "SinkBacklog", "gauge", dims=("sink",)),
    Export("ws_connections", "WebSocketConnections", "gauge"),
    Export("ready", "Ready", "gauge", unit="None"),
)


@dataclass(frozen=True)
class Datum:
    """One datapoint: metric name, dimensions (ordered), value, CloudWatch unit."""

    name: str
    dims: Dims
    value: float
    unit: str
    timestamp_ms: int


def dimension_name(label: str) -> str:
    """Turn a label (``source``, ``rule_id``) into a dimension (``Source``, ``RuleId``)."""
    return "".join(part[:1].upper() + part[1:] for part in label.split("_"))


def metric_name(family: str) -> str:
    """Turn a family name (``kafka_spool_bytes``, ``x_total``) into ``KafkaSpoolBytes``, ``X``."""
    base = family.removesuffix("_total")
    return dimension_name(base)


class MetricsReader:
    """Read the registry and turn it into datapoints; remembers counters to compute deltas."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        global_dims: dict[str, str],
        extra: list[str] | None = None,
    ) -> None:
        self.metrics = metrics
        self.global_dims: Dims = tuple(sorted(global_dims.items()))
        self.exports: list[Export] = list(EXPORTS)
        self._extra = list(extra or [])
        self._extra_resolved = False
        self._prev: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._prev_mono: float | None = None

    def _resolve_extra(self, by_name: dict[str, Family]) -> None:
        # Extra families are resolved once their kind is known (on the first read that sees them).
        still: list[str] = []
        known = {e.family for e in self.exports}
        for fam_name in self._extra:
            fam = by_name.get(self.metrics.prefix + fam_name)
            if fam_name in known:
                continue
            if fam is None:
                still.append(fam_name)
                continue
            if fam.kind == "histogram":
                log.warning(
                    "cloudwatch: %s is a histogram; only counters and gauges are exported", fam.name
                )
                continue
            labels = sorted({k for s in fam.samples for k, _ in s.labels})
            self.exports.append(
                Export(
                    fam_name,
                    metric_name(fam_name),
                    "delta" if fam.kind == "counter" else "gauge",
                    unit="Count" if fam.kind == "counter" else "None",
                    dims=tuple(labels[:3]),
                )
            )
        self._extra = still

    def read(self, now_ms: int, now_mono: float) -> list[Datum]:
        """Return this interval's datapoints (counters as deltas since the previous read)."""
        by_name = {f.name: f for f in self.metrics.collect()}
        if self._extra:
            self._resolve_extra(by_name)
        out: list[Datum] = []
        ticks = 0.0
        for exp in self.exports:
            fam = by_name.get(self.metrics.prefix + exp.family)
            if fam is None:
                continue
            groups: dict[Dims, float] = defaultdict(float)
            for s in fam.samples:
                labels = dict(s.labels)
                value = s.value
                if exp.kind == "delta":
                    key = (fam.name, s.labels)
                    prev = self._prev.get(key, 0.0)
                    self._prev[key] = value
                    # A counter that went down was reset: count it from zero.
                    value = value - prev if value >= prev else value
                    if exp.family == "events_in_total" and labels.get("type") == "trade":
                        ticks += value
                if not math.isfinite(value):
                    continue
                dims = tuple((dimension_name(d), labels.get(d, "")) for d in exp.dims)
                groups[dims] += value
            if exp.dims:
                for dims, value in sorted(groups.items()):
                    out.append(Datum(exp.name, self.global_dims + dims, value, exp.unit, now_ms))
            if exp.total:
                out.append(
                    Datum(exp.name, self.global_dims, sum(groups.values()), exp.unit, now_ms)
                )
        elapsed = None if self._prev_mono is None else now_mono - self._prev_mono
        self._prev_mono = now_mono
        if "events_in_total" in {e.family for e in self.exports} and (
            self.metrics.prefix + "events_in_total" in by_name
        ):
            out.append(Datum("Ticks", self.global_dims, ticks, "Count", now_ms))
            if elapsed is not None and elapsed > 0:
                out.append(
                    Datum(
                        "TicksPerSecond", self.global_dims, ticks / elapsed, "Count/Second", now_ms
                    )
                )
        return out


# --------------------------------------------------------------------------- encodings


def emf_records(
    datums: list[Datum], namespace: str, *, storage_resolution: int = 60
) -> list[dict[str, Any]]:
    """Group datapoints by dimensions into EMF documents (one per dimension combination).

    Each document has the ``_aws`` metadata object with one MetricDirective whose single
    DimensionSet lists every dimension key, and a root member per dimension and per metric.
    """
    by_dims: dict[tuple[Dims, int], list[Datum]] = defaultdict(list)
    for d in datums:
        by_dims[(d.dims, d.timestamp_ms)].append(d)
    records: list[dict[str, Any]] = []
    for (dims, ts), group in by_dims.items():
        dim_keys = {k for k, _ in dims}
        for i in range(0, len(group), MAX_METRICS_PER_DIRECTIVE):
            chunk = group[i : i + MAX_METRICS_PER_DIRECTIVE]
            definitions: list[dict[str, Any]] = []
            rec: dict[str, Any] = {}
            for d in chunk:
                if d.name in dim_keys or d.name == "_aws":
                    raise ValueError(f"metric {d.name!r} clashes with a dimension name")
                definition: dict[str, Any] = {"Name": d.name, "Unit": d.unit}
                if storage_resolution == 1:
                    definition["StorageResolution"] = 1
                definitions.append(definition)
                rec[d.name] = d.value
            rec["_aws"] = {
                "Timestamp": ts,
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [[k for k, _ in dims]],
                        "Metrics": definitions,
                    }
                ],
            }
            rec.update(dims)
            records.append(rec)
    return records


def metric_data(datums: list[Datum], *, storage_resolution: int = 60) -> list[dict[str, Any]]:
    """Render datapoints as PutMetricData ``MetricData`` entries."""
    return [
        {
            "MetricName": d.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in d.dims],
            "Timestamp": dt.datetime.fromtimestamp(d.timestamp_ms / 1000, tz=dt.UTC),
            "Value": d.value,
            "Unit": d.unit,
            "StorageResolution": storage_resolution,
        }
        for d in datums
    ]


# --------------------------------------------------------------------------- EMF writers


class _EmfWriter:
    async def write(self, lines: list[bytes]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class _StdoutWriter(_EmfWriter):
    async def write(self, lines: list[bytes]) -> None:
        out = sys.stdout.buffer
        out.write(b"".join(line + b"\n" for line in lines))
        out.flush()


class _FileWriter(_EmfWriter):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _append(self, data: bytes) -> None:
        # Opened per write so that a log rotation (move + create) is followed.
        with self.path.open("ab") as f:
            f.write(data)

    async def write(self, lines: list[bytes]) -> None:
        await asyncio.to_thread(self._append, b"".join(line + b"\n" for line in lines))


class _TcpWriter(_EmfWriter):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._writer: asyncio.StreamWriter | None = None

    async def write(self, lines: list[bytes]) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            _, opened = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout=5
            )
            self._writer = writer = opened
        try:
            writer.write(b"".join(line + b"\n" for line in lines))
            await asyncio.wait_for(writer.drain(), timeout=5)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        w, self._writer = self._writer, None
        if w is not None:
            w.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(w.wait_closed(), timeout=2)


class _UdpWriter(_EmfWriter):
    def __init__(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.addr = (host, port)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    async def write(self, lines: list[bytes]) -> None:
        for line in lines:
            self.sock.sendto(line, self.addr)

    async def close(self) -> None:
        self.sock.close()


def emf_writer(target: str) -> _EmfWriter:
    """Return the writer for ``cloudwatch.emf_target`` (validated by the config)."""
    if target == "stdout":
        return _StdoutWriter()
    if target.startswith("file:"):
        return _FileWriter(target[5:])
    scheme, rest = target.split("://", 1)
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    return _TcpWriter(host, int(port)) if scheme == "tcp" else _UdpWriter(host, int(port))


# --------------------------------------------------------------------------- market hours


def load_calendar(code: str) -> Any:
    """Return the exchange_calendars calendar ``code`` (slow: call it in a thread)."""
    import exchange_calendars

    return exchange_calendars.get_calendar(code)


def market_open(calendar: Any, now_ns: int) -> bool | None:
    """Whether ``calendar`` is in a session at ``now_ns`` (None outside the calendar's range)."""
    import pandas as pd

    minute = pd.Timestamp(now_ns, unit="ns", tz="UTC").floor("min")
    try:
        return bool(calendar.is_open_on_minute(minute))
    except ValueError:  # MinuteOutOfBounds: outside the calendar's range is unknown, not closed
        return None


# --------------------------------------------------------------------------- the sink


class CloudWatchSink(Sink):
    """Export the registry's key metrics to CloudWatch every ``cloudwatch.interval_s``."""

    def __init__(self, ctx: SinkContext) -> None:
        super().__init__("cloudwatch", ctx)
        self.cfg: CloudWatchConfig = ctx.config.cloudwatch
        self.reader = MetricsReader(
            ctx.metrics, global_dims=dict(self.cfg.dimensions), extra=list(self.cfg.extra_metrics)
        )
        self.resolution = 1 if self.cfg.interval_s < 60 else 60
        m = ctx.metrics
        self.m_sent = m.counter("cloudwatch_datapoints_total", "Datapoints sent to CloudWatch")
        self.m_errors = m.counter("cloudwatch_errors_total", "Failed CloudWatch sends")
        self.m_dropped = m.counter(
            "cloudwatch_dropped_total", "Datapoints dropped after repeated send failures"
        )
        self._writer: _EmfWriter | None = None
        self._client: Any = None
        self._pending: list[list[Datum]] = []
        self._calendar: Any = None
        self._started = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect (api mode), load the market calendar, send the first datapoints."""
        if self.cfg.mode == "api":
            self._client = await asyncio.to_thread(self._make_client)
        else:
            self._writer = emf_writer(self.cfg.emf_target)
        if self.cfg.market_open_metric:
            try:
                self._calendar = await asyncio.to_thread(
                    load_calendar, self.ctx.config.market.calendar
                )
            except Exception as exc:
                self.log.error(
                    "cloudwatch: no MarketOpen metric: cannot load market.calendar %r: %s",
                    self.ctx.config.market.calendar,
                    exc,
                )
        self.set_health("ok", mode=self.cfg.mode, errors=0, last_error="")
        await self.flush()
        self.spawn(self._loop(), name="export")

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        return boto3.session.Session().client(
            "cloudwatch",
            region_name=self.cfg.region,
            endpoint_url=self.cfg.endpoint_url,
            config=BotoConfig(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=15,
            ),
        )

    async def _loop(self) -> None:
        interval = self.cfg.interval_s
        next_at = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            if next_at < time.monotonic():  # fell behind (suspended): skip, do not burst
                next_at = time.monotonic() + interval
            await self.flush()

    def collect(self) -> list[Datum]:
        """Read this interval's datapoints from the registry (plus MarketOpen and Starts)."""
        now_ns = time.time_ns()
        now_ms = now_ns // 1_000_000
        datums = self.reader.read(now_ms, time.monotonic())
        gd = self.reader.global_dims
        if self._calendar is not None:
            is_open = market_open(self._calendar, now_ns)
            if is_open is not None:
                datums.append(Datum("MarketOpen", gd, 1.0 if is_open else 0.0, "None", now_ms))
        if not self._started:
            self._started = True
            datums.append(Datum("Starts", gd, 1.0, "Count", now_ms))
        return datums

    async def flush(self) -> None:
        """Collect and send one interval's datapoints; a failure is logged and counted."""
        async with self._lock:
            datums = self.collect()
            try:
                if self.cfg.mode == "api":
                    await self._send_api(datums)
                else:
                    await self._send_emf(datums)
            except Exception as exc:
                self.m_errors.inc()
                errors = int(self.m_errors.value())
                if errors == 1 or errors % 10 == 0:
                    self.log.warning(
                        "cloudwatch: sending metrics failed (%d failures so far): %s", errors, exc
                    )
                self._health.details.update(errors=errors, last_error=repr(exc))

    async def _send_emf(self, datums: list[Datum]) -> None:
        assert self._writer is not None
        records = emf_records(datums, self.cfg.namespace, storage_resolution=self.resolution)
        await self._writer.write([orjson.dumps(r) for r in records])
        self.m_sent.inc(len(datums))

    async def _send_api(self, datums: list[Datum]) -> None:
        self._pending.append(datums)
        while len(self._pending) > MAX_PENDING:
            lost = self._pending.pop(0)
            self.m_dropped.inc(len(lost))
            self.log.error(
                "cloudwatch: dropped %d datapoints after %d failed intervals",
                len(lost),
                MAX_PENDING,
            )
        while self._pending:
            batch = self._pending[0]
            await asyncio.to_thread(self._put, batch)
            self._pending.pop(0)
            self.m_sent.inc(len(batch))

    def _put(self, datums: list[Datum]) -> None:
        data = metric_data(datums, storage_resolution=self.resolution)
        for i in range(0, len(data), MAX_DATUMS_PER_CALL):
            self._client.put_metric_data(
                Namespace=self.cfg.namespace, MetricData=data[i : i + MAX_DATUMS_PER_CALL]
            )

    def backlog(self) -> int:
        """Datapoints waiting for a retry (api mode)."""
        return sum(len(b) for b in self._pending)

    async def stop(self) -> None:
        """Stop the timer and send a last interval, so shutdown figures are not lost."""
        if self._stopped:
            return
        await self.cancel_tasks()
        try:
            await asyncio.wait_for(self.flush(), timeout=10)
        except TimeoutError:
            self.log.warning("cloudwatch: final flush timed out")
        if self._writer is not None:
            await self._writer.close()
        await super().stop()


def create(ctx: SinkContext) -> Sink:
    """Create the CloudWatch sink (the app calls this when ``cloudwatch.enabled``)."""
    return CloudWatchSink(ctx)
