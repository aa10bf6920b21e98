"""Kafka record formats: JSON values (schema version 1) and the spool's columnar frames.

Records
-------
Every record's key is the symbol (UTF-8), so one symbol's records land in one partition, in
order. Values are JSON objects; every one has ``"v": 1`` (the schema version), ``"type"``,
``"symbol"``, ``"session"`` and ``"sseq"``. The headers say the same for consumers that route
before parsing: ``content-type: application/json``, ``schema-version: 1`` and
``record-type: <type>``. The JSON Schema is ``tickserver/schemas/kafka-records.v1.json``
(:func:`schema_path`); docs/kafka.md describes every field.

- ``session`` identifies one publisher run (its start time, UTC ns); ``sseq`` counts the
  events of one (session, topic, symbol) from 1 without gaps. A consumer of one partition can
  therefore prove it has every event of each of its symbols, and a gap in ``sseq`` is data
  the publisher itself could not keep (its spool was full), which it also announces with a
  ``gap`` record.
- Ticks and quotes also carry ``source`` and ``seq``, the source's own sequence number.
- *immediate* mode: one event per record (``tick``, ``quote``, ``bar``, ``signal``).
- *batched* mode: one record per symbol (and source) per flush window with columnar arrays
  (``ticks``, ``quotes``, ``bars``, ``signals``); ``n`` is the array length and ``sseq`` an
  array. Records are split to stay under ``kafka.max_record_bytes``.

Spool frames
------------
The sink's bus callbacks must be quick, so they write each bus batch to the spool as one
compact *frame* (numpy columns, symbol names rather than process-local ids) and the delivery
task turns frames into JSON records. A frame is ``b"TK" | version u8 | kind u8 | meta length
u32 | meta (JSON) | columns``, little-endian, columns in the order of ``COLUMNS[kind]``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka.partitioner import murmur2
from numpy.typing import NDArray

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"


class Kind(enum.IntEnum):
    """What a frame holds (and which topic its records go to)."""

    TICKS = 1
    QUOTES = 2
    BARS = 3
    SIGNALS = 4
    GAP = 5


TOPIC_SUFFIX: dict[Kind, str] = {
    Kind.TICKS: "ticks",
    Kind.QUOTES: "quotes",
    Kind.BARS: "bars",
    Kind.SIGNALS: "signals",
}

COLUMNS: dict[Kind, tuple[tuple[str, str], ...]] = {
    Kind.TICKS: (
        ("sym", "<u4"),
        ("sseq", "<u8"),
        ("ts_event", "<i8"),
        ("ts_init", "<i8"),
        ("price", "<f8"),
        ("size", "<f8"),
        ("seq", "<u8"),
        ("flags", "u1"),
    ),
    Kind.QUOTES: (
        ("sym", "<u4"),
        ("sseq", "<u8"),
        ("ts_event", "<i8"),
        ("ts_init", "<i8"),
        ("bid_px", "<f8"),
        ("bid_sz", "<f8"),
        ("ask_px", "<f8"),
        ("ask_sz", "<f8"),
        ("seq", "<u8"),
        ("flags", "u1"),
    ),
    Kind.BARS: (
        ("sym", "<u4"),
        ("sseq", "<u8"),
        ("ts_event", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("volume", "<f8"),
        ("vwap", "<f8"),
        ("trades", "<u8"),
    ),
    Kind.SIGNALS: (
        ("sym", "<u4"),
        ("sseq", "<u8"),
        ("ts_event", "<i8"),
        ("rule", "<u2"),
        ("direction", "i1"),
        ("value", "<f8"),
    ),
    Kind.GAP: (),
}

# Rough JSON bytes per element of a batched record, to size records before encoding them.
_BYTES_PER_EVENT = {Kind.TICKS: 110, Kind.QUOTES: 140, Kind.BARS: 170, Kind.SIGNALS: 120}

_HEAD = struct.Struct("<2sBBI")
_MAGIC = b"TK"
_FRAME_VERSION = 1


class FrameError(ValueError):
    """A spool frame that cannot be decoded (names what is wrong)."""


class RecordError(ValueError):
    """A Kafka record value that is not a valid tickserver record."""


def schema_path() -> Path:
    """Return the path of the JSON Schema of the records (shipped in the package)."""
    return Path(str(resources.files("tickserver") / "schemas" / "kafka-records.v1.json"))


def topic_name(prefix: str, kind: Kind, interval: str = "") -> str:
    """Return the topic of ``kind`` (bars: per interval, ``<prefix>.bars.<interval>``)."""
    if kind == Kind.BARS:
        return f"{prefix}.bars.{interval}"
    return f"{prefix}.{TOPIC_SUFFIX[kind]}"


def partition_for_key(key: bytes, nparts: int) -> int:
    """Return the partition of a keyed record: the Java client's default (murmur2) partitioner,
    which aiokafka and librdkafka's ``murmur2_random`` also use."""
    return int((murmur2(key) & 0x7FFFFFFF) % nparts)


def partition_of(symbol: str, nparts: int) -> int:
    """Return the partition a symbol's records go to in a topic of ``nparts`` partitions."""
    return partition_for_key(symbol.encode(), nparts)


def headers_for(rtype: str) -> list[tuple[str, bytes]]:
    """Return the Kafka headers of a record of type ``rtype``."""
    return [
        ("content-type", CONTENT_TYPE.encode()),
        ("schema-version", str(SCHEMA_VERSION).encode()),
        ("record-type", rtype.encode()),
    ]


# --------------------------------------------------------------------------- spool frames


@dataclass(frozen=True, slots=True)
class Gap:
    """Events of one (topic, symbol) the publisher could not keep: ``sseq`` first..last."""

    topic: str
    symbol: str
    first_sseq: int
    last_sseq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Frame:
    """One bus batch as kept in the spool: columns plus what the columns index into."""

    kind: Kind
    session: int
    symbols: Sequence[str]
    cols: dict[str, NDArray[Any]]
    source: str = ""
    interval: str = ""
    final: bool = True
    rules: Sequence[str] = ()
    rule_intervals: Sequence[str] = ()
    gaps: Sequence[Gap] = ()

    def __len__(self) -> int:
        if self.kind == Kind.GAP:
            return len(self.gaps)
        return len(self.cols["sym"])


def pack_frame(frame: Frame) -> bytes:
    """Serialise a frame for the spool."""
    meta: dict[str, Any] = {"session": frame.session, "n": len(frame), "symbols": frame.symbols}
    if frame.source:
        meta["source"] = frame.source
    if frame.kind == Kind.BARS:
        meta["interval"] = frame.interval
        meta["final"] = frame.final
    if frame.kind == Kind.SIGNALS:
        meta["rules"] = list(frame.rules)
        meta["rule_intervals"] = list(frame.rule_intervals)
    if frame.kind == Kind.GAP:
        meta["gaps"] = [
            [g.topic, g.symbol, g.first_sseq, g.last_sseq, g.reason] for g in frame.gaps
        ]
    mb = orjson.dumps(meta)
    parts = [_HEAD.pack(_MAGIC, _FRAME_VERSION, int(frame.kind), len(mb)), mb]
    for name, dtype in COLUMNS[frame.kind]:
        arr = frame.cols[name]
        if arr.dtype != np.dtype(dtype):
            arr = arr.astype(dtype)
        parts.append(arr.tobytes())
    return b"".join(parts)


def unpack_frame(data: bytes | memoryview) -> Frame:
    """Decode a spool frame (columns are read-only views of ``data``).

    Raises
    ------
    FrameError
        If the bytes are not a frame of a known version and kind.
    """
    if len(data) < _HEAD.size:
        raise FrameError(f"frame of {len(data)} bytes is shorter than its header")
    magic, version, kind_no, mlen = _HEAD.unpack_from(data, 0)
    if magic != _MAGIC or version != _FRAME_VERSION:
        raise FrameError(f"not a tickserver kafka frame (magic {magic!r}, version {version})")
    try:
        kind = Kind(kind_no)
    except ValueError:
        raise FrameError(f"unknown frame kind {kind_no}") from None
    pos = _HEAD.size
    try:
        meta = orjson.loads(bytes(data[pos : pos + mlen]))
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"frame metadata is not JSON: {exc}") from None
    pos += mlen
    n = int(meta["n"])
    cols: dict[str, NDArray[Any]] = {}
    for name, dtype in COLUMNS[kind]:
        dt = np.dtype(dtype)
        end = pos + n * dt.itemsize
        if end > len(data):
            raise FrameError(f"frame column {name!r} is truncated")
        cols[name] = np.frombuffer(data, dtype=dt, count=n, offset=pos)
        pos = end
    if pos != len(data):
        raise FrameError(f"frame has {len(data) - pos} trailing bytes")
    gaps = tuple(Gap(*g) for g in meta.get("gaps", ()))
    return Frame(
        kind=kind,
        session=int(meta["session"]),
        symbols=meta["symbols"],
        cols=cols,
        source=meta.get("source", ""),
        interval=meta.get("interval", ""),
        final=bool(meta.get("final", True)),
        rules=tuple(meta.get("rules", ())),
        rule_intervals=tuple(meta.get("rule_intervals", ())),
        gaps=gaps,
    )


# --------------------------------------------------------------------------- records out


@dataclass(slots=True)
class OutRecord:
    """One Kafka record ready to send; a batched record can split itself in two."""

    topic: str
    key: bytes
    value: bytes
    rtype: str
    events: int
    splitter: Callable[[], list[OutRecord]] | None = field(default=None, repr=False)

    def split(self) -> list[OutRecord] | None:
        """Return two records holding this one's events, or None if it holds one event."""
        if self.splitter is None or self.events < 2:
            return None
        return self.splitter()


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


class RecordEncoder:
    """Turn spool frames into Kafka records (JSON values), immediate or batched per kind.

    Parameters
    ----------
    prefix
        Topic prefix.
    batched
        The kinds published in batched mode (the others are immediate).
    max_record_bytes
        Batched records are split so each value stays under this.
    """

    def __init__(self, prefix: str, batched: Iterable[Kind], max_record_bytes: int) -> None:
        self.prefix = prefix
        self.batched = frozenset(batched)
        self.max_record_bytes = max_record_bytes

    def encode(self, frames: Sequence[Frame]) -> list[OutRecord]:
        """Encode frames in order: immediate kinds per event, batched kinds per symbol."""
        out: list[OutRecord] = []
        pending: dict[tuple[Kind, str], list[Frame]] = {}
        for fr in frames:
            if fr.kind == Kind.GAP:
                out.extend(self._gaps(fr))
            elif fr.kind in self.batched:
                pending.setdefault((fr.kind, fr.interval), []).append(fr)
            else:
                out.extend(self.immediate(fr))
        for (kind, interval), group in pending.items():
            out.extend(self.batched_records(kind, interval, group))
        return out

    # ------------------------------------------------------------------ immediate
    def immediate(self, fr: Frame) -> list[OutRecord]:
        """One record per event of the frame."""
        topic = topic_name(self.prefix, fr.kind, fr.interval)
        names = list(fr.symbols)
        keys = [n.encode() for n in names]
        c = {k: v.tolist() for k, v in fr.cols.items()}
        sym, sseq, ts = c["sym"], c["sseq"], c["ts_event"]
        sess = fr.session
        out: list[OutRecord] = []
        append = out.append
        if fr.kind == Kind.TICKS:
            src, ti, px, sz, seq, fl = (
                fr.source,
                c["ts_init"],
                c["price"],
                c["size"],
                c["seq"],
                c["flags"],
            )
            for i in range(len(sym)):
                s = sym[i]
                v = orjson.dumps(
                    {
                        "v": 1,
                        "type": "tick",
                        "symbol": names[s],
                        "session": sess,
                        "sseq": sseq[i],
                        "source": src,
                        "seq": seq[i],
                        "ts_event": ts[i],
                        "ts_init": ti[i],
                        "price": px[i],
                        "size": sz[i],
                        "flags": fl[i],
                    }
                )
                append(OutRecord(topic, keys[s], v, "tick", 1))
        elif fr.kind == Kind.QUOTES:
            for i in range(len(sym)):
                s = sym[i]
                v = _dumps(
                    {
                        "v": 1,
                        "type": "quote",
                        "symbol": names[s],
                        "session": sess,
                        "sseq": sseq[i],
                        "source": fr.source,
                        "seq": c["seq"][i],
                        "ts_event": ts[i],
                        "ts_init": c["ts_init"][i],
                        "bid_px": c["bid_px"][i],
                        "bid_sz": c["bid_sz"][i],
                        "ask_px": c["ask_px"][i],
                        "ask_sz": c["ask_sz"][i],
                        "flags": c["flags"][i],
                    }
                )
                append(OutRecord(topic, keys[s], v, "quote", 1))
        elif fr.kind == Kind.BARS:
            for i in range(len(sym)):
                s = sym[i]
                v = _dumps(
                    {
                        "v": 1,
                        "type": "bar",
                        "symbol": names[s],
                        "session": sess,
                        "sseq": sseq[i],
                        "interval": fr.interval,
                        "final": fr.final,
                        "ts_event": ts[i],
                        "open": c["open"][i],
                        "high": c["high"][i],
                        "low": c["low"][i],
                        "close": c["close"][i],
                        "volume": c["volume"][i],
                        "vwap": c["vwap"][i],
                        "trades": c["trades"][i],
                    }
                )
                append(OutRecord(topic, keys[s], v, "bar", 1))
        elif fr.kind == Kind.SIGNALS:
            for i in range(len(sym)):
                s = sym[i]
                r = c["rule"][i]
                v = _dumps(
                    {
                        "v": 1,
                        "type": "signal",
                        "symbol": names[s],
                        "session": sess,
                        "sseq": sseq[i],
                        "rule": fr.rules[r],
                        "interval": fr.rule_intervals[r],
                        "ts_event": ts[i],
                        "direction": c["direction"][i],
                        "value": c["value"][i],
                    }
                )
                append(OutRecord(topic, keys[s], v, "signal", 1))
        return out

    def _gaps(self, fr: Frame) -> list[OutRecord]:
        out = []
        for g in fr.gaps:
            v = orjson.dumps(
                {
                    "v": 1,
                    "type": "gap",
                    "symbol": g.symbol,
                    "session": fr.session,
                    "sseq": g.first_sseq,
                    "last_sseq": g.last_sseq,
                    "count": g.last_sseq - g.first_sseq + 1,
                    "reason": g.reason,
                }
            )
            out.append(OutRecord(g.topic, g.symbol.encode(), v, "gap", 0))
        return out

    # ------------------------------------------------------------------ batched
    def batched_records(
        self, kind: Kind, interval: str, frames: Sequence[Frame]
    ) -> list[OutRecord]:
        """One record per (session, symbol, source[, final]) over ``frames``, split by size."""
        topic = topic_name(self.prefix, kind, interval)
        gnames: dict[str, int] = {}
        sym_parts, grp_parts, col_parts = [], [], []
        heads: list[tuple[int, str, bool]] = []  # (session, source, final) per frame group
        head_ids: dict[tuple[int, str, bool], int] = {}
        rule_names: dict[tuple[str, str], int] = {}
        for fr in frames:
            lut = np.fromiter(
                (gnames.setdefault(n, len(gnames)) for n in fr.symbols),
                dtype=np.int64,
                count=len(fr.symbols),
            )
            sym_parts.append(lut[fr.cols["sym"]] if len(fr.symbols) else fr.cols["sym"])
            hk = (fr.session, fr.source, fr.final)
            hid = head_ids.setdefault(hk, len(head_ids))
            if hid == len(heads):
                heads.append(hk)
            grp_parts.append(np.full(len(fr), hid, dtype=np.int64))
            cols = dict(fr.cols)
            if kind == Kind.SIGNALS:
                rlut = np.fromiter(
                    (
                        rule_names.setdefault((r, ri), len(rule_names))
                        for r, ri in zip(fr.rules, fr.rule_intervals, strict=True)
                    ),
                    dtype=np.int64,
                    count=len(fr.rules),
                )
                cols["rule"] = rlut[fr.cols["rule"]] if len(fr.rules) else fr.cols["rule"]
            col_parts.append(cols)
        if not sym_parts:
            return []
        sym = np.concatenate(sym_parts)
        grp = np.concatenate(grp_parts)
        cols = {k: np.concatenate([p[k] for p in col_parts]) for k in col_parts[0] if k != "sym"}
        names = list(gnames)
        keyv = sym * len(heads) + grp
        order = np.argsort(keyv, kind="stable")
        sk = keyv[order]
        bounds = np.flatnonzero(np.diff(sk)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(sk)]))
        # Keep the first-seen order of symbols so records come out roughly in event order.
        first_pos = order[starts]
        rules = [r for r, _ in rule_names]
        rule_ivs = [ri for _, ri in rule_names]
        out: list[OutRecord] = []
        budget = max(1, int(self.max_record_bytes * 0.9) // _BYTES_PER_EVENT[kind])
        for gi in np.argsort(first_pos, kind="stable").tolist():
            idx = order[starts[gi] : ends[gi]]
            k = int(sk[starts[gi]])
            sess, source, final = heads[k % len(heads)]
            symbol = names[k // len(heads)]
            part = {c: a[idx] for c, a in cols.items()}
            head = _batched_head(kind, symbol, sess, source, interval, final)
            for lo in range(0, len(idx), budget):
                piece = {c: a[lo : lo + budget] for c, a in part.items()}
                out.extend(self._batched(topic, kind, head, piece, rules, rule_ivs))
        return out

    def _batched(
        self,
        topic: str,
        kind: Kind,
        head: dict[str, Any],
        cols: dict[str, NDArray[Any]],
        rules: list[str],
        rule_ivs: list[str],
    ) -> list[OutRecord]:
        n = len(cols["sseq"])
        body = dict(head)
        body["n"] = n
        if kind == Kind.SIGNALS:
            r = cols["rule"].tolist()
            body["rule"] = [rules[i] for i in r]
            body["interval"] = [rule_ivs[i] for i in r]
            body.update({c: cols[c] for c in ("sseq", "ts_event", "direction", "value")})
        else:
            body.update(cols)
        value = _dumps(body)
        rtype = str(head["type"])
        key = str(head["symbol"]).encode()

        def split() -> list[OutRecord]:
            h = n // 2
            lo = {c: a[:h] for c, a in cols.items()}
            hi = {c: a[h:] for c, a in cols.items()}
            return [
                *self._batched(topic, kind, head, lo, rules, rule_ivs),
                *self._batched(topic, kind, head, hi, rules, rule_ivs),
            ]

        rec = OutRecord(topic, key, value, rtype, n, split)
        if len(value) > self.max_record_bytes and n > 1:
            return split()
        return [rec]


def _batched_head(
    kind: Kind, symbol: str, session: int, source: str, interval: str, final: bool
) -> dict[str, Any]:
    head: dict[str, Any] = {"v": 1, "type": TOPIC_SUFFIX[kind], "symbol": symbol}
    head["session"] = session
    if kind in (Kind.TICKS, Kind.QUOTES):
        head["source"] = source
    if kind == Kind.BARS:
        head["interval"] = interval
        head["final"] = final
    return head


# --------------------------------------------------------------------------- records in


@dataclass(frozen=True, slots=True)
class TicksIn:
    """Ticks decoded from one record (immediate or batched), as columns."""

    symbol: str
    session: int
    source: str
    sseq: NDArray[np.uint64]
    seq: NDArray[np.uint64]
    ts_event: NDArray[np.int64]
    ts_init: NDArray[np.int64]
    price: NDArray[np.float64]
    size: NDArray[np.float64]
    flags: NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.sseq)


def decode_ticks(value: bytes) -> TicksIn | Gap:
    """Decode a record of the ticks topic.

    Raises
    ------
    RecordError
        If the value is not JSON, has another schema version, or lacks a field.
    """
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise RecordError("not a JSON object")
    if d.get("v") != SCHEMA_VERSION:
        raise RecordError(f"schema version {d.get('v')!r}, expected {SCHEMA_VERSION}")
    t = d.get("type")
    try:
        if t == "tick":
            return TicksIn(
                symbol=d["symbol"],
                session=int(d["session"]),
                source=d["source"],
                sseq=np.array([d["sseq"]], dtype=np.uint64),
                seq=np.array([d["seq"]], dtype=np.uint64),
                ts_event=np.array([d["ts_event"]], dtype=np.int64),
                ts_init=np.array([d["ts_init"]], dtype=np.int64),
                price=np.array([d["price"]], dtype=np.float64),
                size=np.array([d["size"]], dtype=np.float64),
                flags=np.array([d["flags"]], dtype=np.uint8),
            )
        if t == "ticks":
            n = int(d["n"])
            cols: dict[str, NDArray[Any]] = {
                "sseq": np.asarray(d["sseq"], dtype=np.uint64),
                "seq": np.asarray(d["seq"], dtype=np.uint64),
                "ts_event": np.asarray(d["ts_event"], dtype=np.int64),
                "ts_init": np.asarray(d["ts_init"], dtype=np.int64),
                "price": np.asarray(d["price"], dtype=np.float64),
                "size": np.asarray(d["size"], dtype=np.float64),
                "flags": np.asarray(d["flags"], dtype=np.uint8),
            }
            bad = [k for k, a in cols.items() if len(a) != n]
            if bad:
                raise RecordError(f"arrays {', '.join(bad)} do not have n={n} elements")
            return TicksIn(
                symbol=d["symbol"],
                session=int(d["session"]),
                source=d["source"],
                sseq=cols["sseq"],
                seq=cols["seq"],
                ts_event=cols["ts_event"],
                ts_init=cols["ts_init"],
                price=cols["price"],
                size=cols["size"],
                flags=cols["flags"],
            )
        if t == "gap":
            return Gap(
                topic="",
                symbol=d["symbol"],
                first_sseq=int(d["sseq"]),
                last_sseq=int(d["last_sseq"]),
                reason=str(d.get("reason", "")),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"bad {t} record: {exc!r}") from None
    raise RecordError(f"record type {t!r} is not a tick record")
