"""The replay source: stream a file of trades/quotes or OHLCV bars onto the bus.

``tickserver replay FILE`` (or ``tickserver run --source replay`` with ``[sources.replay]``)
reads CSV, Parquet or JSON-lines files in chunks (constant memory; parsing runs in a worker
thread while the previous chunk is published) and publishes columnar
:class:`~tickserver.events.TradeBatch` / :class:`~tickserver.events.QuoteBatch` objects,
paced by event time (``speed = 1`` is the recorded pace, ``N`` is N times faster, ``max`` as
fast as the engine takes them). Bars close on event time (``live = False``).

A bad row stops the replay with ``file:line`` and the reason (health goes ``down``; ``tickserver
replay --exit`` exits 1); with ``skip_bad_rows`` bad rows are skipped, counted by reason and
summarised at the end. See ``docs/replay.md`` and :mod:`tickserver.sources.replay_files`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal, TextIO

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tickserver.events import QuoteBatch, TradeBatch
from tickserver.metrics import Family, Sample
from tickserver.sources.base import Source, SourceContext, SourcePlugin
from tickserver.sources.replay_files import (
    REASONS,
    BadRow,
    Chunk,
    ReplayFileError,
    ReplayReader,
    iso,
    parse_interval,
)

__all__ = [
    "REASONS",
    "Pacer",
    "ProgressReporter",
    "ReplayConfig",
    "ReplayFileError",
    "ReplaySource",
    "render_progress",
]

log = logging.getLogger("tickserver.source.replay")

MAX_SLEEP_S = 0.5
"""Longest single sleep while pacing, so progress and health stay fresh across long gaps."""


class ReplayConfig(BaseModel):
    """``[sources.replay]``: replay a file (also what ``tickserver replay FILE`` builds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1, description="The file (relative to the working directory).")
    speed: float | Literal["max"] = Field(
        "max", description='1 = recorded pace, N = N times faster, "max" = as fast as possible.'
    )
    symbol: str | None = Field(
        None,
        description="Symbol of a file without one (one-ticker OHLCV, trades without a symbol "
        "column); for a file with symbols, replay only this one.",
    )
    format: Literal["auto", "csv", "parquet", "jsonl", "ohlcv"] = "auto"
    skip_bad_rows: bool = Field(False, description="Skip and count bad rows instead of stopping.")
    progress: bool = Field(True, description="Progress bar on a terminal (stderr).")
    out_of_order: Literal["reject", "allow"] = Field(
        "reject", description="A row earlier than the previous one is bad (reject) or replayed."
    )
    timezone: str = Field("UTC", description="Time zone of timestamps written without an offset.")
    bar_interval: str = Field("auto", description="Interval of OHLCV bars: auto, 1m, 1h, 1d, …")
    chunk_rows: int = Field(32_768, ge=1, le=10_000_000, description="Rows read per chunk.")

    @field_validator("speed", mode="before")
    @classmethod
    def _parse_speed(cls, v: Any) -> Any:
        if isinstance(v, str):
            s = v.strip().lower()
            if s in ("max", "inf", "infinite", "unlimited"):
                return "max"
            s = s.removesuffix("x")
            try:
                v = float(s)
            except ValueError:
                raise ValueError(f"speed must be a number > 0 or 'max', got {v!r}") from None
        if isinstance(v, int | float) and not isinstance(v, bool):
            if math.isinf(v) and v > 0:
                return "max"
            if not v > 0 or math.isnan(v):
                raise ValueError(f"speed must be > 0 (or 'max'), got {v!r}")
        return v

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        if v.upper() == "UTC":
            return "UTC"
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (e.g. UTC, America/New_York)") from None
        return v

    @field_validator("bar_interval")
    @classmethod
    def _check_interval(cls, v: str) -> str:
        if v != "auto":
            parse_interval(v)
        return v

    @property
    def speed_factor(self) -> float:
        """The speed as a number (``inf`` for ``max``)."""
        return math.inf if self.speed == "max" else float(self.speed)


# ----------------------------------------------------------------------------- pacing


class Pacer:
    """Map event time to wall time: an event at ``ts`` is due ``(ts - ts0) / speed`` seconds
    after the first event was published (``ts0`` is the first event's time).

    Parameters
    ----------
    speed
        1 = recorded pace, N = N times faster, ``inf`` = no pacing.
    clock
        Monotonic seconds (injected in tests).
    tolerance_s
        Publish events due within this much of now together rather than sleeping for them.
    """

    def __init__(
        self,
        speed: float,
        clock: Callable[[], float] = time.monotonic,
        tolerance_s: float = 0.001,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self.clock = clock
        self.tolerance_s = tolerance_s
        self._wall0: float | None = None
        self._event0 = 0

    def step(self, key: NDArray[np.int64], start: int) -> tuple[int, float]:
        """Return ``(end, wait)``: rows ``[start, end)`` of ``key`` are due now; then wait
        ``wait`` seconds before the next call (0 once every row is due).

        ``key`` is the pacing key (event time, non-decreasing).
        """
        n = len(key)
        if start >= n or math.isinf(self.speed):
            return n, 0.0
        now = self.clock()
        if self._wall0 is None:
            self._wall0, self._event0 = now, int(key[start])
        frontier = self._event0 + int((now - self._wall0 + self.tolerance_s) * self.speed * 1e9)
        end = start + int(np.searchsorted(key[start:], frontier, side="right"))
        if end >= n:
            return n, 0.0
        due = self._wall0 + (int(key[end]) - self._event0) / 1e9 / self.speed
        return end, max(due - now, 0.0)


# ----------------------------------------------------------------------------- progress


def _fmt_count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    s = int(seconds + 0.5)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def render_progress(label: str, fraction: float, rows: int, elapsed: float, width: int = 28) -> str:
    """One progress line: ``label [#####-----]  42.0%  1.2M rows  350.0k rows/s  ETA 00:12``."""
    f = min(max(fraction, 0.0), 1.0)
    filled = int(f * width)
    rate = rows / elapsed if elapsed > 0 else 0.0
    eta = elapsed * (1 - f) / f if f > 0 else math.inf
    return (
        f"{label} [{'#' * filled}{'-' * (width - filled)}] {100 * f:5.1f}%  "
        f"{_fmt_count(rows)} rows  {_fmt_count(rate)} rows/s  ETA {_fmt_eta(eta)}"
    )


class ProgressReporter:
    """A rate-limited progress bar on a terminal; periodic log lines otherwise.

    Parameters
    ----------
    label
        What is being replayed (the file name).
    stream
        Where the bar goes (stderr); the bar is drawn only if it is a TTY.
    enabled
        False: neither bar nor progress log lines (the final summary is logged regardless).
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        bar_every_s: float = 0.2,
        log_every_s: float = 10.0,
        delay_s: float = 1.0,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and _isatty(self.stream)
        self.clock = clock
        self.every = bar_every_s if self.tty else log_every_s
        self.t0 = clock()
        # Short replays draw nothing: the first bar appears after ``delay_s``.
        self._last = self.t0 + (delay_s - self.every if self.tty else 0.0)
        self._shown: tuple[float, int] | None = None

    def update(self, fraction: float, rows: int, *, force: bool = False) -> None:
        """Report progress (drawn at most every ``bar_every_s``/``log_every_s``)."""
        if not self.enabled:
            return
        now = self.clock()
        if not force and now - self._last < self.every:
            return
        self._last = now
        line = render_progress(self.label, fraction, rows, now - self.t0)
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
            self._shown = (fraction, rows)
        else:
            log.info("%s", line, extra={"event": "replay_progress", "progress": fraction})

    def finish(self, fraction: float, rows: int) -> None:
        """Draw the last state and end the bar's line."""
        if self.tty and self._shown is not None:
            if self._shown != (fraction, rows):
                self.update(fraction, rows, force=True)
            self.stream.write("\n")
            self.stream.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ----------------------------------------------------------------------------- source


class ReplaySource(Source):
    """Replay a file through the engine, paced by event time.

    ``done`` is set when the replay ends (the whole file, or a bad row that stopped it);
    ``error`` then holds the reason it stopped, or None.
    """

    live = False
    # The file is the record: its own checks stop or skip unsorted rows (decision 0002),
    # identical prints are real, and a big move is flagged rather than dropped.
    validation_overrides: ClassVar[dict[str, Any]] = {
        "out_of_order": "pass",
        "duplicates": "pass",
        "jump_policy": "flag",
    }

    def __init__(
        self,
        ctx: SourceContext,
        cfg: ReplayConfig,
        name: str = "replay",
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        progress_stream: TextIO | None = None,
    ) -> None:
        super().__init__(name, ctx)
        self.cfg = cfg
        self.clock = clock
        self.sleep = sleep
        override = ctx.symbols_override
        symbol = cfg.symbol or (override[0] if override and len(override) == 1 else None)
        self.reader = ReplayReader(
            Path(cfg.path),
            fmt=cfg.format,
            symbol=symbol,
            only=frozenset(override) if override and not cfg.symbol else None,
            chunk_rows=cfg.chunk_rows,
            skip_bad_rows=cfg.skip_bad_rows,
            out_of_order=cfg.out_of_order,
            timezone=cfg.timezone,
            bar_interval_ns=None
            if cfg.bar_interval == "auto"
            else parse_interval(cfg.bar_interval),
            display=cfg.path,
        )
        self.pacer = Pacer(cfg.speed_factor, clock)
        self.progress = ProgressReporter(
            Path(cfg.path).name, stream=progress_stream, enabled=cfg.progress, clock=clock
        )
        self.done = asyncio.Event()
        self.error: BadRow | str | None = None
        self.finished = False
        self.rows = 0
        self._partial_rows = 0  # rows of the chunk being published, pro rata
        self.trades = 0
        self.quotes = 0
        self.bars_empty = 0
        self.skipped: dict[str, int] = {}
        self.samples: list[BadRow] = []
        self.fraction = 0.0
        self.last_ts = 0
        self.started_at: float | None = None
        self.elapsed = 0.0
        ctx.metrics.register_collector(self._collect)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start replaying in the background."""
        log.info(
            "replaying %s: %s; speed %s%s",
            self.cfg.path,
            self.reader.describe(),
            self.cfg.speed if self.cfg.speed == "max" else f"{self.cfg.speed:g}x",
            "; bad rows are skipped" if self.cfg.skip_bad_rows else "",
            extra={"event": "replay_start", "file": self.cfg.path},
        )
        self.set_health("ok", "replaying", **self._details())
        self.spawn(self._run(), name="replay")

    async def stop(self) -> None:
        """Stop replaying (mid-file if need be) and close the file."""
        if self._stopped:
            return
        await super().stop()
        await asyncio.to_thread(self.reader.close)

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = self.clock()
        pending: asyncio.Future[Chunk | None] | None = loop.run_in_executor(
            None, self.reader.next_chunk
        )
        try:
            while pending is not None:
                chunk = await pending
                if chunk is None:
                    break
                # Parse the next chunk while this one is published.
                pending = (
                    loop.run_in_executor(None, self.reader.next_chunk)
                    if chunk.stop is None
                    else None
                )
                await self._play(chunk)
                if chunk.stop is not None:
                    self._fail(chunk.stop)
                    return
            self._finish()
        except asyncio.CancelledError:
            raise
        except ReplayFileError as exc:
            self._fail(str(exc))
        except Exception as exc:
            log.exception("replay of %s failed", self.cfg.path)
            self._fail(f"{self.cfg.path}: {type(exc).__name__}: {exc}")
        finally:
            self.done.set()

    async def _play(self, chunk: Chunk) -> None:
        n = len(chunk)
        before = self.fraction
        if n:
            lut = self.ctx.symbols.intern_many(chunk.symbols)
            ids = lut[chunk.sym]
            i = 0
            while i < n:
                end, wait = self.pacer.step(chunk.key, i)
                if end > i:
                    self._publish(chunk, ids, i, end)
                    i = end
                    self.fraction = before + (chunk.progress - before) * i / n
                    self._partial_rows = chunk.rows * i // n
                    self.set_health("ok", "replaying", **self._details())
                    self.progress.update(self.fraction, self.rows + self._partial_rows)
                if wait > 0:
                    await self.sleep(min(wait, MAX_SLEEP_S))
        self.rows += chunk.rows
        self._partial_rows = 0
        self.bars_empty += chunk.empty_bars
        for reason, count in chunk.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        self.samples.extend(chunk.bad[: max(0, 10 - len(self.samples))])
        self.fraction = chunk.progress
        self.set_health("ok", "replaying", **self._details())
        self.progress.update(self.fraction, self.rows)
        # Let the API, the engine's clock and the sinks run between chunks at any speed.
        await asyncio.sleep(0)

    def _publish(self, chunk: Chunk, ids: NDArray[np.uint32], i: int, j: int) -> None:
        now = time.time_ns()
        if chunk.trade is None:
            sel: slice | NDArray[np.intp] = slice(i, j)
            nt = j - i
        else:
            sel = np.flatnonzero(chunk.trade[i:j]) + i
            nt = len(sel)
        if nt:
            self.publish_trades(
                TradeBatch(
                    source=self.name,
                    symbol_id=np.ascontiguousarray(ids[sel], dtype=np.uint32),
                    ts_event=np.ascontiguousarray(chunk.ts[sel]),
                    ts_init=np.full(nt, now, dtype=np.int64),
                    price=np.ascontiguousarray(chunk.price[sel]),
                    size=np.ascontiguousarray(chunk.size[sel]),
                    seq=self.next_seq(nt),
                    flags=np.full(nt, chunk.flags, dtype=np.uint8),
                )
            )
            self.trades += nt
        if chunk.quote is not None and chunk.touch is not None:
            q = np.flatnonzero(chunk.quote[i:j]) + i
            nq = len(q)
            if nq:
                bid_px, bid_sz, ask_px, ask_sz = chunk.touch
                self.publish_quotes(
                    QuoteBatch(
                        source=self.name,
                        symbol_id=ids[q],
                        ts_event=chunk.ts[q],
                        ts_init=np.full(nq, now, dtype=np.int64),
                        bid_px=bid_px[q],
                        bid_sz=bid_sz[q],
                        ask_px=ask_px[q],
                        ask_sz=ask_sz[q],
                        seq=self.next_seq(nq),
                        flags=np.full(nq, chunk.flags, dtype=np.uint8),
                    )
                )
                self.quotes += nq
        self.last_ts = int(chunk.key[j - 1])

    # ------------------------------------------------------------------ outcome
    def _elapsed(self) -> float:
        return self.clock() - self.started_at if self.started_at is not None else 0.0

    def _finish(self) -> None:
        self.finished = True
        self.fraction = 1.0
        self.elapsed = self._elapsed()
        self.progress.finish(1.0, self.rows)
        self._log_skipped()
        self._log_summary("finished")
        self.set_health("ok", "finished", **self._details())

    def _fail(self, error: BadRow | str) -> None:
        self.error = error
        self.elapsed = self._elapsed()
        self.progress.finish(self.fraction, self.rows)
        where = error.where if isinstance(error, BadRow) else self.cfg.path
        hint = (
            ". The rows before it were replayed; fix the row, or skip bad rows with "
            "--skip-bad-rows (skip_bad_rows = true)."
            if isinstance(error, BadRow)
            else ""
        )
        log.error(
            "replay stopped at %s%s",
            error,
            hint,
            extra={
                "event": "replay_failed",
                "where": where,
                "reason": error.reason if isinstance(error, BadRow) else "error",
            },
        )
        self._log_summary("stopped")
        self.set_health("down", f"stopped at {error}", **self._details())

    def _log_skipped(self) -> None:
        total = sum(self.skipped.values())
        if not total:
            return
        by_reason = ", ".join(f"{r}: {c}" for r, c in sorted(self.skipped.items()))
        first = "; ".join(str(b) for b in self.samples[:5])
        log.warning(
            "skipped %d bad row%s of %s (%s); first: %s",
            total,
            "" if total == 1 else "s",
            self.cfg.path,
            by_reason,
            first,
            extra={"event": "replay_skipped", "skipped": total, "by_reason": dict(self.skipped)},
        )

    def _log_summary(self, outcome: str) -> None:
        skipped = sum(self.skipped.values())
        elapsed = max(self.elapsed, 1e-9)
        rate = self.rows / elapsed
        log.info(
            "replay of %s %s: %d rows, %d trades, %d quotes, %d skipped in %.2f s (%s rows/s)",
            self.cfg.path,
            outcome,
            self.rows,
            self.trades,
            self.quotes,
            skipped,
            self.elapsed,
            f"{rate:,.0f}",
            extra={
                "event": "replay_summary",
                "outcome": outcome,
                "file": self.cfg.path,
                "rows": self.rows,
                "trades": self.trades,
                "quotes": self.quotes,
                "skipped": skipped,
                "elapsed_s": round(self.elapsed, 3),
                "rows_per_s": round(rate, 1),
            },
        )

    def _details(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "file": self.cfg.path,
            "kind": self.reader.kind,
            "speed": self.cfg.speed,
            "rows": self.rows + self._partial_rows,
            "trades": self.trades,
            "quotes": self.quotes,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(self.skipped),
            "progress": round(self.fraction, 4),
            "finished": self.finished,
            "last_event_ts": iso(self.last_ts) if self.last_ts else None,
        }
        if self.samples:
            d["first_bad_rows"] = [str(b) for b in self.samples[:5]]
        if self.reader.bar_interval_ns is not None:
            d["bar_interval_s"] = self.reader.bar_interval_ns / 1e9
            d["empty_bars"] = self.bars_empty
        return d

    # ------------------------------------------------------------------ metrics
    def _collect(self) -> Iterable[Family]:
        m = self.ctx.metrics
        src = (("source", self.name),)
        rows = m.family("replay_rows_total", "counter", "File rows read by the replay source")
        rows.samples = [Sample(rows.name, src, float(self.rows))]
        out = m.family("replay_events_out_total", "counter", "Events the replay published")
        out.samples = [
            Sample(out.name, (*src, ("type", "trade")), float(self.trades)),
            Sample(out.name, (*src, ("type", "quote")), float(self.quotes)),
        ]
        skipped = m.family(
            "replay_rows_skipped_total", "counter", "Bad rows skipped by the replay, by reason"
        )
        skipped.samples = [
            Sample(skipped.name, (*src, ("reason", r)), float(self.skipped.get(r, 0)))
            for r in REASONS
        ]
        prog = m.family("replay_progress_ratio", "gauge", "Fraction of the replay file done")
        prog.samples = [Sample(prog.name, src, self.fraction)]
        fin = m.family("replay_finished", "gauge", "1 once the whole file has been replayed")
        fin.samples = [Sample(fin.name, src, 1.0 if self.finished else 0.0)]
        return [rows, out, skipped, prog, fin]


PLUGIN = SourcePlugin(
    name="replay",
    config_model=ReplayConfig,
    factory=ReplaySource,
    description="Replay a CSV/Parquet/JSON-lines file of trades and quotes, or yfinance OHLCV "
    "bars, paced by event time.",
)
