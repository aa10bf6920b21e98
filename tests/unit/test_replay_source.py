"""The replay source on a real bus: batches, sequence numbers, pacing, policies, progress."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from tickserver.bus import Bus, Topic
from tickserver.config import ConfigError, load_config
from tickserver.events import Flag, QuoteBatch, TradeBatch
from tickserver.metrics import Metrics
from tickserver.sources import registry
from tickserver.sources.base import SourceContext
from tickserver.sources.replay import (
    MAX_SLEEP_S,
    Pacer,
    ProgressReporter,
    ReplayConfig,
    ReplaySource,
    render_progress,
)
from tickserver.sources.replay_files import BadRow, ReplayFileError
from tickserver.symbols import Symbols

T0 = 1_704_205_800_000_000_000
S = 1_000_000_000
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


class FakeClock:
    """Monotonic seconds that only move when the code under test sleeps."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class Harness:
    """A source context on a real bus that records what the source publishes, and when."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.bus = Bus()
        self.metrics = Metrics()
        self.symbols = Symbols()
        self.clock = clock
        self.published: list[tuple[float, Any]] = []
        self.got_one = asyncio.Event()
        self.bus.attach(Topic.RAW_TRADES, self._record, name="test.trades")
        self.bus.attach(Topic.RAW_QUOTES, self._record, name="test.quotes")
        self.ctx = SourceContext(
            config=load_config(environ={}), bus=self.bus, symbols=self.symbols, metrics=self.metrics
        )

    def _record(self, batch: Any) -> None:
        self.published.append((self.clock() if self.clock else 0.0, batch))
        self.got_one.set()

    def source(self, path: Path, **cfg: Any) -> ReplaySource:
        kw: dict[str, Any] = {"progress_stream": io.StringIO()}
        if self.clock is not None:
            kw |= {"clock": self.clock, "sleep": self.clock.sleep}
        return ReplaySource(self.ctx, ReplayConfig(path=str(path), **cfg), **kw)

    async def run(self, path: Path, **cfg: Any) -> ReplaySource:
        src = self.source(path, **cfg)
        await src.start()
        await src.done.wait()
        await src.stop()
        return src

    def trades(self) -> list[TradeBatch]:
        return [b for _, b in self.published if isinstance(b, TradeBatch)]

    def quotes(self) -> list[QuoteBatch]:
        return [b for _, b in self.published if isinstance(b, QuoteBatch)]


def csv(tmp_path: Path, rows: list[str], name: str = "t.csv", header: str | None = None) -> Path:
    path = tmp_path / name
    path.write_text((header or "ts,symbol,price,size") + "\n" + "\n".join(rows) + "\n")
    return path


# ----------------------------------------------------------------------------- publishing


async def test_max_speed_publishes_one_trade_batch_per_chunk_with_gap_free_seq(
    tmp_path: Path,
) -> None:
    # Arrange
    path = csv(tmp_path, [f"{T0 + i},{'AB'[i % 2]},{10 + i},1" for i in range(5)])
    h = Harness()
    # Act
    src = await h.run(path, chunk_rows=2)
    # Assert
    batches = h.trades()
    assert [len(b) for b in batches] == [2, 2, 1]
    assert np.concatenate([b.seq for b in batches]).tolist() == [1, 2, 3, 4, 5]
    assert all(b.source == "replay" for b in batches)
    assert all((b.flags == Flag.REPLAY).all() for b in batches)
    ids = np.concatenate([b.symbol_id for b in batches])
    assert [h.symbols.name(int(i)) for i in ids] == ["A", "B", "A", "B", "A"]
    assert src.error is None
    assert src.finished
    assert src.health().details["trades"] == 5


async def test_rows_with_a_touch_publish_quote_batches_on_raw_quotes(tmp_path: Path) -> None:
    path = csv(
        tmp_path,
        [f"{T0},AAPL,185.1,100,185.0,200,185.2,300", f"{T0 + 1},AAPL,185.2,50,,,,"],
        header="ts,symbol,price,size,bid_px,bid_sz,ask_px,ask_sz",
    )
    h = Harness()
    await h.run(path)
    (q,) = h.quotes()
    (t,) = h.trades()
    assert (q.bid_px.tolist(), q.ask_px.tolist(), q.ask_sz.tolist()) == ([185.0], [185.2], [300.0])
    assert q.ts_event.tolist() == [T0]
    assert sorted([*t.seq.tolist(), *q.seq.tolist()]) == [1, 2, 3]


async def test_ohlcv_sample_publishes_four_synthetic_trades_per_bar(tmp_path: Path) -> None:
    h = Harness()
    src = await h.run(EXAMPLES / "AAPL-1m.csv")
    trades = TradeBatch.concat(h.trades())
    assert len(trades) == 4 * 120
    assert (trades.flags == (Flag.SYNTHETIC | Flag.REPLAY)).all()
    assert src.health().details["bar_interval_s"] == 60.0


# ----------------------------------------------------------------------------- policies


async def test_bad_row_stops_the_replay_marks_health_down_and_logs_file_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange
    path = csv(tmp_path, [f"{T0},A,1,1", f"{T0 + 1},A,-2,1", f"{T0 + 2},A,3,1"], name="BAD.csv")
    h = Harness()
    # Act
    with caplog.at_level(logging.INFO, logger="tickserver"):
        src = h.source(path)
        await src.start()
        await src.done.wait()
    # Assert
    assert isinstance(src.error, BadRow)
    assert str(src.error) == f"{path}:3: price -2 is not positive"
    health = src.health()
    assert health.state == "down"
    assert f"{path}:3" in health.reason
    assert TradeBatch.concat(h.trades()).price.tolist() == [1.0]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"{path}:3: price -2 is not positive" in r.getMessage() for r in errors)
    summary = [r for r in caplog.records if getattr(r, "event", "") == "replay_summary"]
    assert summary[-1].outcome == "stopped"  # type: ignore[attr-defined]
    await src.stop()


async def test_skip_policy_counts_in_health_metrics_and_a_summary_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange
    rows = [f"{T0},A,1,1", f"{T0 + 1},A,-2,1", "x,A,1,1", f"{T0 + 3},A,,1", f"{T0 + 4},A,5,1"]
    path = csv(tmp_path, rows)
    h = Harness()
    # Act
    with caplog.at_level(logging.INFO, logger="tickserver"):
        src = await h.run(path, skip_bad_rows=True)
    # Assert
    details = src.health().details
    assert details["skipped"] == 3
    assert details["skipped_by_reason"] == {"bad_price": 2, "bad_ts": 1}
    assert details["first_bad_rows"][0] == f"{path}:3: price -2 is not positive"
    assert details["finished"] is True
    text = h.metrics.render()
    assert 'tickserver_replay_rows_skipped_total{source="replay",reason="bad_price"} 2' in text
    assert 'tickserver_replay_events_out_total{source="replay",type="trade"} 2' in text
    assert 'tickserver_replay_finished{source="replay"} 1' in text
    warning = next(r for r in caplog.records if getattr(r, "event", "") == "replay_skipped")
    assert "skipped 3 bad rows" in warning.getMessage()
    assert f"{path}:4: ts 'x'" in warning.getMessage()
    summary = next(r for r in caplog.records if getattr(r, "event", "") == "replay_summary")
    assert (summary.rows, summary.trades, summary.skipped) == (5, 2, 3)  # type: ignore[attr-defined]
    assert summary.rows_per_s > 0  # type: ignore[attr-defined]


async def test_symbols_from_the_command_line_select_rows_of_a_multi_symbol_file(
    tmp_path: Path,
) -> None:
    # Arrange: `tickserver run --source replay --symbols B,C`
    path = csv(tmp_path, [f"{T0 + i},{'ABC'[i % 3]},{i + 1},1" for i in range(6)])
    h = Harness()
    h.ctx = dataclasses.replace(h.ctx, symbols_override=("B", "C"))
    # Act
    await h.run(path)
    # Assert
    trades = TradeBatch.concat(h.trades())
    assert [h.symbols.name(int(i)) for i in trades.symbol_id] == ["B", "C", "B", "C"]
    assert trades.seq.tolist() == [1, 2, 3, 4]


async def test_missing_file_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match="no such file"):
        Harness().source(tmp_path / "nope.csv")


async def test_stop_mid_replay_cancels_cleanly(tmp_path: Path) -> None:
    # Arrange: at recorded pace the second row is an hour away
    path = csv(tmp_path, [f"{T0},A,1,1", f"{T0 + 3600 * S},A,2,1"])
    h = Harness()
    src = h.source(path, speed=1)
    await src.start()
    await h.got_one.wait()
    # Act
    await src.stop()
    # Assert
    assert src.health().state == "stopped"
    assert not src.finished
    assert src.error is None
    assert len(TradeBatch.concat(h.trades())) == 1


# ----------------------------------------------------------------------------- pacing


def test_pacer_schedule_follows_event_time_deltas_divided_by_speed() -> None:
    # Arrange: events at 0, 0.5, 0.5, 2 and 10 s; speed 2
    clock = FakeClock()
    key = T0 + np.array([0, S // 2, S // 2, 2 * S, 10 * S], dtype=np.int64)
    pacer = Pacer(2.0, clock)
    # Act: publish what is due, sleep as told, repeat
    schedule = []
    i = 0
    while i < len(key):
        end, wait = pacer.step(key, i)
        schedule.append((clock.t - 1000.0, i, end, round(wait, 9)))
        i = end
        clock.t += wait
    # Assert
    assert schedule == [
        (0.0, 0, 1, 0.25),
        (0.25, 1, 3, 0.75),
        (1.0, 3, 4, 4.0),
        (5.0, 4, 5, 0.0),
    ]


def test_pacer_at_max_speed_releases_everything_at_once() -> None:
    key = T0 + np.arange(5, dtype=np.int64) * 3600 * S
    assert Pacer(float("inf"), FakeClock()).step(key, 0) == (5, 0.0)


def test_pacer_keeps_the_schedule_across_chunks_and_catches_up_when_late() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock)
    assert pacer.step(np.array([T0, T0 + S]), 0) == (1, 1.0)
    clock.t += 3.0  # the loop was late (e.g. a slow chunk parse)
    assert pacer.step(np.array([T0, T0 + S]), 1) == (2, 0.0)
    # next chunk: event at +2.5 s is already due at +3 s; +4 s is 1 s away
    assert pacer.step(np.array([T0 + 2 * S + S // 2, T0 + 4 * S]), 0) == (1, 1.0)


async def test_source_sleeps_by_event_time_at_recorded_pace_in_short_steps(
    tmp_path: Path,
) -> None:
    # Arrange: rows at 0, 0.2, 1.2 s; speed 1; split across two chunks
    path = csv(tmp_path, [f"{T0},A,1,1", f"{T0 + S // 5},A,2,1", f"{T0 + 6 * S // 5},A,3,1"])
    clock = FakeClock()
    h = Harness(clock)
    # Act
    await h.run(path, speed=1, chunk_rows=2)
    # Assert: each row published when due; no sleep longer than MAX_SLEEP_S
    times = [(round(t - 1000.0, 6), b.price.tolist()) for t, b in h.published]
    assert times == [(0.0, [1.0]), (0.2, [2.0]), (1.2, [3.0])]
    assert max(clock.sleeps) <= MAX_SLEEP_S
    assert round(sum(clock.sleeps), 6) == 1.2


async def test_speed_ten_compresses_the_schedule_tenfold(tmp_path: Path) -> None:
    path = csv(tmp_path, [f"{T0},A,1,1", f"{T0 + 2 * S},A,2,1", f"{T0 + 5 * S},A,3,1"])
    clock = FakeClock()
    h = Harness(clock)
    await h.run(path, speed="10x")
    assert [round(t - 1000.0, 6) for t, _ in h.published] == [0.0, 0.2, 0.5]


# ----------------------------------------------------------------------------- progress


def test_render_progress_shows_percent_rows_rate_and_eta() -> None:
    line = render_progress("trades.csv", 0.25, 1_500_000, 10.0, width=8)
    assert line == "trades.csv [##------]  25.0%  1.5M rows  150.0k rows/s  ETA 00:30"


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_waits_then_draws_on_a_tty_at_most_every_interval_and_ends_its_line() -> None:
    # Arrange
    clock = FakeClock()
    stream = TtyStream()
    bar = ProgressReporter("f.csv", stream=stream, clock=clock, bar_every_s=0.2, delay_s=1.0)
    # Act
    clock.t += 0.9
    bar.update(0.1, 10)  # a replay shorter than delay_s shows no bar
    clock.t += 0.2
    bar.update(0.3, 30)
    clock.t += 0.1
    bar.update(0.4, 40)  # within bar_every_s of the last draw: suppressed
    clock.t += 0.1
    bar.update(1.0, 100)
    bar.finish(1.0, 100)  # already drawn at 100%: only ends the line
    # Assert
    draws = stream.getvalue().split("\r\x1b[K")[1:]
    assert [d.split("]")[1].split("%")[0].strip() for d in draws] == ["30.0", "100.0"]
    assert stream.getvalue().endswith("100 rows  77 rows/s  ETA 00:00\n")


def test_progress_bar_is_not_drawn_when_stderr_is_not_a_terminal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    stream = io.StringIO()
    bar = ProgressReporter("f.csv", stream=stream, clock=clock, log_every_s=10)
    with caplog.at_level(logging.INFO, logger="tickserver"):
        clock.t += 11
        bar.update(0.5, 50)
        bar.finish(1.0, 100)
    assert stream.getvalue() == ""
    assert [r.event for r in caplog.records] == ["replay_progress"]  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("given", "expected"), [("max", "max"), ("MAX", "max"), ("10x", 10.0), (2, 2.0), ("0.5", 0.5)]
)
def test_replay_config_parses_speed(given: Any, expected: Any) -> None:
    assert ReplayConfig(path="f.csv", speed=given).speed == expected


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("speed", "fast", "speed must be a number > 0 or 'max'"),
        ("speed", 0, "speed must be > 0"),
        ("timezone", "Mars/Olympus", "unknown time zone"),
        ("bar_interval", "1 fortnight", "bad bar interval"),
        ("sped", 1, "Extra inputs are not permitted"),
    ],
)
def test_replay_config_rejects_bad_values(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReplayConfig(path="f.csv", **{field: value})


def test_sources_replay_section_is_validated_by_the_replay_model(tmp_path: Path) -> None:
    # Arrange
    good = tmp_path / "good.toml"
    good.write_text(
        '[sources]\nenabled = ["replay"]\n[sources.replay]\npath = "t.csv"\nspeed = 5\n'
    )
    typo = tmp_path / "typo.toml"
    typo.write_text('[sources]\nenabled = ["replay"]\n[sources.replay]\npath = "t.csv"\nsped = 5\n')
    nopath = tmp_path / "nopath.toml"
    nopath.write_text('[sources]\nenabled = ["replay"]\n')
    # Act
    cfg = load_config(good, environ={})
    # Assert
    section = registry.get("replay").config_model.model_validate(cfg.source_section("replay"))
    assert isinstance(section, ReplayConfig)
    assert section.speed == 5.0
    with pytest.raises(ConfigError, match=r"sources\.replay\.sped: unknown key"):
        load_config(typo, environ={})
    with pytest.raises(ConfigError, match=r"sources\.replay\.path: Field required"):
        load_config(nopath, environ={})


async def test_plugin_factory_builds_a_non_live_source(tmp_path: Path) -> None:
    path = csv(tmp_path, [f"{T0},A,1,1"])
    plugin = registry.get("replay")
    src = plugin.factory(Harness().ctx, ReplayConfig(path=str(path)))
    assert isinstance(src, ReplaySource)
    assert src.live is False
    await src.stop()
