"""Names of things in the history store (stdlib only: the Lambda compactor imports it too).

Layout under the store root (a local folder, or ``s3://<bucket>/<prefix>/``)::

    type=trades/date=2026-01-05/part-<writer>-<first>-<last>.parquet
    type=quotes/date=2026-01-05/part-…
    type=signals/date=2026-01-05/part-…
    type=bars/interval=1m/date=2026-01-05/part-…
    type=trades/date=2026-01-04/compact-AAPL.parquet      (after compaction: one per symbol)

- ``date`` is the UTC date of ``ts_event`` (the bar's open time for bars).
- A *part* holds every row of its type, date (and interval) that one flush took from the
  spool: records ``first``..``last`` (20-digit spool offsets) of the store whose spool
  belongs to ``writer`` (a random id kept in the store directory). The name is a function of
  what the part contains, so re-uploading after a crash overwrites the same object.
- A *compacted* file holds one symbol's rows of one day. Its Parquet metadata key
  ``tickserver.lineage`` lists which parts it already contains (``{writer: [[first, last],
  …]}``), so compaction can be re-run and interrupted at any point without losing or
  duplicating rows.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from urllib.parse import quote, unquote

TYPES = ("trades", "quotes", "bars", "signals")
NS_PER_DAY = 86_400_000_000_000
LINEAGE_KEY = b"tickserver.lineage"

_PART = re.compile(r"^part-([0-9a-z]+)-(\d{20})-(\d{20})\.parquet$")
_COMPACT = re.compile(r"^compact-(.+)\.parquet$")
_WRITER = re.compile(r"^[0-9a-z]{4,32}$")

Lineage = dict[str, list[list[int]]]


def date_of_ns(ts_ns: int) -> str:
    """Return the UTC date (``YYYY-MM-DD``) of a nanosecond timestamp."""
    return _dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, _dt.UTC).strftime("%Y-%m-%d")


def day_index(date: str) -> int:
    """Return days since the epoch of ``YYYY-MM-DD``."""
    return (_dt.date.fromisoformat(date) - _dt.date(1970, 1, 1)).days


def date_of_day(day: int) -> str:
    """Return ``YYYY-MM-DD`` of a day index (days since the epoch)."""
    return (_dt.date(1970, 1, 1) + _dt.timedelta(days=day)).isoformat()


def join(*parts: str) -> str:
    """Join key parts with ``/`` (empty parts skipped, no doubled slashes)."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def partition_dir(kind: str, date: str, interval: str | None = None) -> str:
    """Return ``type=…[/interval=…]/date=…`` (relative to the store root)."""
    if kind not in TYPES:
        raise ValueError(f"unknown record type {kind!r}; expected one of {', '.join(TYPES)}")
    if (kind == "bars") != (interval is not None):
        raise ValueError("bars, and only bars, have an interval partition")
    mid = f"/interval={interval}" if interval is not None else ""
    return f"type={kind}{mid}/date={date}"


def type_dir(kind: str, interval: str | None = None) -> str:
    """Return ``type=…[/interval=…]`` (the parent of the date partitions)."""
    return partition_dir(kind, "x", interval).rsplit("/date=", 1)[0]


def parse_partition(key: str) -> tuple[str, str | None, str] | None:
    """Return ``(type, interval, date)`` of a key or path inside the store, else None."""
    kind = interval = date = None
    for seg in key.split("/"):
        if seg.startswith("type="):
            kind = seg[5:]
        elif seg.startswith("interval="):
            interval = seg[9:]
        elif seg.startswith("date="):
            date = seg[5:]
    if kind not in TYPES or date is None or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        return None
    return kind, interval, date


def check_writer(writer: str) -> str:
    """Validate a writer id (lower-case letters and digits, 4-32 characters)."""
    if not _WRITER.fullmatch(writer):
        raise ValueError(f"bad writer id {writer!r}: expected 4-32 lower-case letters/digits")
    return writer


def part_name(writer: str, first: int, last: int) -> str:
    """Return the file name of the part holding spool records ``first``..``last``."""
    check_writer(writer)
    if not 0 <= first <= last:
        raise ValueError(f"bad spool range {first}..{last}")
    return f"part-{writer}-{first:020d}-{last:020d}.parquet"


def parse_part_name(name: str) -> tuple[str, int, int] | None:
    """Return ``(writer, first, last)`` of a part file name (or key), else None."""
    m = _PART.match(name.rsplit("/", 1)[-1])
    if m is None:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3))


def compacted_name(symbol: str) -> str:
    """Return the file name of a symbol's compacted day (symbol percent-encoded)."""
    return f"compact-{quote(symbol, safe='')}.parquet"


def parse_compacted_name(name: str) -> str | None:
    """Return the symbol of a compacted file name (or key), else None."""
    m = _COMPACT.match(name.rsplit("/", 1)[-1])
    return unquote(m.group(1)) if m else None


# ----------------------------------------------------------------------------- lineage


def lineage_add(lineage: Lineage, writer: str, first: int, last: int) -> Lineage:
    """Return ``lineage`` with ``first..last`` of ``writer`` added (ranges merged)."""
    out = {w: [list(r) for r in rs] for w, rs in lineage.items()}
    ranges = sorted([*out.get(writer, []), [first, last]])
    merged: list[list[int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out[writer] = merged
    return out


def lineage_has(lineage: Lineage, writer: str, first: int, last: int) -> bool:
    """Whether ``first..last`` of ``writer`` is wholly inside ``lineage``."""
    return any(a <= first and last <= b for a, b in lineage.get(writer, []))


def lineage_dumps(lineage: Lineage) -> bytes:
    """Serialise lineage for Parquet key-value metadata."""
    return json.dumps(lineage, sort_keys=True, separators=(",", ":")).encode()


def lineage_loads(raw: bytes | None) -> Lineage:
    """Parse lineage from Parquet key-value metadata (empty when absent)."""
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("lineage metadata is not an object")
    return {str(w): [[int(a), int(b)] for a, b in rs] for w, rs in data.items()}
