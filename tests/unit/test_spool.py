"""The durable spool: order, commit/delete, reopen, crash recovery, corruption, full disk."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickserver.spool import (
    FRAME_OVERHEAD,
    SEGMENT_MAGIC,
    Spool,
    SpoolCorrupt,
    SpoolFull,
    SpoolLocked,
    SpoolNoSpace,
)

MiB = 1 << 20


def rec(i: int, size: int = 40) -> bytes:
    """A record that names its index, padded to ``size`` bytes."""
    head = f"record-{i:08d}|".encode()
    return head + bytes((i + k) % 251 for k in range(max(size - len(head), 0)))


def segments(d: Path) -> list[Path]:
    return sorted(d.glob("*.seg"))


def fill(sp: Spool, size: int) -> tuple[int, SpoolFull]:
    """Append records of ``size`` bytes until the spool refuses; return (count, the error)."""
    n = 0
    while True:
        try:
            sp.append(rec(n, size))
        except SpoolFull as exc:
            return n, exc
        n += 1


def read_all(sp: Spool, start: int = 0) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while True:
        got = sp.read(start, max_records=1000)
        if not got:
            return out
        out.extend(got)
        start = got[-1][0] + 1


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


# ---------------------------------------------------------------------------- order, limits


def test_spool_assigns_consecutive_offsets_and_reads_in_order(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        offsets = [sp.append(rec(i)) for i in range(5)]
        last = sp.append_many([rec(i) for i in range(5, 12)])

        got = sp.read(0)

    assert offsets == [0, 1, 2, 3, 4]
    assert last == 11
    assert got == [(i, rec(i)) for i in range(12)]


def test_spool_read_respects_record_and_byte_limits_but_always_returns_one(
    spool_dir: Path,
) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        sp.append_many([rec(i, 100) for i in range(10)])

        by_count = sp.read(2, max_records=3)
        by_bytes = sp.read(0, max_bytes=250)
        oversized_first = sp.read(7, max_bytes=10)

    assert [o for o, _ in by_count] == [2, 3, 4]
    assert [o for o, _ in by_bytes] == [0, 1]
    assert [o for o, _ in oversized_first] == [7]


def test_spool_reads_across_rolled_segments(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        for i in range(100):
            sp.append(rec(i, 60))

        files = segments(spool_dir)
        got = read_all(sp, 37)

    assert len(files) > 5
    assert got == [(i, rec(i, 60)) for i in range(37, 100)]


def test_spool_append_many_of_nothing_appends_nothing(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        sp.append(b"x")

        last = sp.append_many([])

        assert last == 0
        assert sp.next_offset == 1


# ---------------------------------------------------------------------------- commit, reopen


def test_spool_commit_hides_delivered_records_and_deletes_spent_segments(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        for i in range(60):
            sp.append(rec(i, 60))
        before = len(segments(spool_dir))

        sp.commit(40)

        assert sp.committed_offset == 40
        assert sp.backlog_records == 19
        assert sp.backlog_bytes == 19 * (60 + FRAME_OVERHEAD)
        assert [o for o, _ in read_all(sp, 0)] == list(range(41, 60))
        assert len(segments(spool_dir)) < before
        # Every remaining segment still holds an undelivered record.
        assert all(int(p.stem) <= 59 for p in segments(spool_dir))


def test_spool_commit_of_everything_removes_all_segments_and_keeps_counting(
    spool_dir: Path,
) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        sp.append_many([rec(i) for i in range(10)])
        sp.commit(9)
        assert segments(spool_dir) == []
        assert sp.backlog_records == 0
        assert sp.disk_bytes == 0

        nxt = sp.append(b"after")

    assert nxt == 10


def test_spool_commit_is_idempotent_and_rejects_offsets_never_appended(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        sp.append_many([rec(i) for i in range(5)])
        sp.commit(3)
        sp.commit(1)  # lower: nothing happens

        assert sp.committed_offset == 3
        with pytest.raises(ValueError, match="cannot commit offset 5"):
            sp.commit(5)


def test_spool_reopen_returns_undelivered_records_and_continues_offsets(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        for i in range(50):
            sp.append(rec(i))
        sp.commit(19)

    with Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        recovered = read_all(sp)
        nxt = sp.append(b"new")
        committed = sp.committed_offset
        backlog = sp.backlog_records

    assert recovered == [(i, rec(i)) for i in range(20, 50)]
    assert nxt == 50
    assert committed == 19
    assert backlog == 31


def test_spool_never_reuses_offsets_after_everything_was_delivered(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        sp.append_many([rec(i) for i in range(7)])
        sp.commit(6)

    with Spool(spool_dir, max_bytes=MiB) as sp:
        nxt = sp.append(b"x")

    assert nxt == 7


def test_spool_refuses_a_second_opener_of_the_same_directory(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB), pytest.raises(SpoolLocked, match="in use"):
        Spool(spool_dir, max_bytes=MiB)


def test_spool_damaged_commit_marker_redelivers_instead_of_losing(
    spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        sp.append_many([rec(i) for i in range(10)])
        sp.commit(4)
    (spool_dir / "commit").write_bytes(b"garbage")

    with caplog.at_level(logging.ERROR), Spool(spool_dir, max_bytes=MiB) as sp:
        got = read_all(sp)

    # Nothing undelivered is lost; delivered records of the oldest segment come back.
    assert [o for o, _ in got][-5:] == [5, 6, 7, 8, 9]
    assert "commit marker" in caplog.text


# ---------------------------------------------------------------------------- fsync policies


@pytest.mark.parametrize("policy", ["always", "batch", "never"])
def test_spool_sync_makes_everything_appended_durable(spool_dir: Path, policy: str) -> None:
    with Spool(spool_dir, max_bytes=MiB, fsync=policy) as sp:  # type: ignore[arg-type]
        sp.append_many([rec(i) for i in range(3)])

        sp.sync()

        assert sp.durable_offset == 2


def test_spool_always_policy_syncs_before_append_returns(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB, fsync="always") as sp:
        sp.append(b"a")
        assert sp.durable_offset == 0
        sp.append(b"b")
        assert sp.durable_offset == 1


def test_spool_process_killed_mid_stream_loses_no_appended_record(tmp_path: Path) -> None:
    # Arrange: a child process appends and reports each offset after append returns.
    d = tmp_path / "spool"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from tickserver.spool import Spool
        sp = Spool(Path({str(d)!r}), max_bytes=64 << 20, segment_bytes=4096, fsync="never")
        i = 0
        while True:
            off = sp.append(f"r{{i}}".encode() * 5)
            sys.stdout.write(f"{{off}}\\n"); sys.stdout.flush()
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged = -1
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 3000:
            break

    # Act: SIGKILL (no clean close), then reopen.
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with Spool(d, max_bytes=64 << 20, segment_bytes=4096) as sp:
        got = read_all(sp)

    # Assert: every acknowledged record is there, once, in order, intact.
    offsets = [o for o, _ in got]
    assert offsets == list(range(len(offsets)))
    assert offsets[-1] >= acknowledged
    assert all(r == f"r{o}".encode() * 5 for o, r in got)


# ---------------------------------------------------------------------------- crash damage


def test_spool_truncates_a_torn_tail_and_keeps_the_records_before_it(
    spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        sp.append_many([rec(i, 50) for i in range(10)])
    seg = segments(spool_dir)[-1]
    size = seg.stat().st_size
    os.truncate(seg, size - 20)  # the last record lost its last 20 bytes mid-write

    with caplog.at_level(logging.WARNING), Spool(spool_dir, max_bytes=MiB) as sp:
        got = read_all(sp)
        nxt = sp.append(b"after")
        quarantined = sp.quarantined

    assert got == [(i, rec(i, 50)) for i in range(9)]
    assert nxt == 9
    assert quarantined == []
    assert "torn tail" in caplog.text
    assert seg.name in caplog.text


def test_spool_removes_a_segment_whose_header_was_torn(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        for i in range(30):
            sp.append(rec(i, 60))
    last = segments(spool_dir)[-1]
    first_in_last = int(last.stem)
    last.write_bytes(SEGMENT_MAGIC[:3])  # crash right after creating the file

    with Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        got = read_all(sp)

    assert [o for o, _ in got] == list(range(first_in_last))


def test_spool_quarantines_a_corrupt_segment_and_recovers_the_rest(
    spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: three segments; flip bytes inside one record of the middle one.
    with Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        for i in range(40):
            sp.append(rec(i, 60))
    files = segments(spool_dir)
    middle = files[len(files) // 2]
    base = int(middle.stem)
    data = bytearray(middle.read_bytes())
    victim = 8 + (60 + FRAME_OVERHEAD) + FRAME_OVERHEAD + 10  # payload of the 2nd record
    data[victim : victim + 4] = b"\xff\x00\xff\x00"
    middle.write_bytes(bytes(data))

    # Act
    with caplog.at_level(logging.ERROR), Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        got = read_all(sp)
        quarantined = sp.quarantined
        lost = sp.lost_ranges
        backlog = sp.backlog_records

    # Assert: exactly the damaged record is lost, everything else recovered.
    assert [o for o, _ in got] == [o for o in range(40) if o != base + 1]
    assert all(r == rec(o, 60) for o, r in got)
    assert lost == [(base + 1, base + 1)]
    assert backlog == 39
    assert [p.parent.name for p in quarantined] == ["quarantine"]
    assert quarantined[0].read_bytes() == bytes(data)  # kept as found, for forensics
    assert middle.name in caplog.text
    assert f"lost offsets: {base + 1}" in caplog.text


def test_spool_quarantines_a_segment_with_a_bad_header_and_names_the_lost_range(
    spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        for i in range(40):
            sp.append(rec(i, 60))
    files = segments(spool_dir)
    bad, after = files[1], files[2]
    lo, hi = int(bad.stem), int(after.stem) - 1
    bad.write_bytes(b"NOTASPOOL" + bad.read_bytes()[9:])

    with caplog.at_level(logging.ERROR), Spool(spool_dir, max_bytes=MiB, segment_bytes=1000) as sp:
        got = read_all(sp)

    assert [o for o, _ in got] == [o for o in range(40) if not lo <= o <= hi]
    assert f"lost offsets: {lo}-{hi}" in caplog.text
    assert not bad.exists()
    assert (spool_dir / "quarantine" / bad.name).exists()


def test_spool_flip_in_the_last_segment_with_good_records_after_is_corruption_not_a_tear(
    spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        sp.append_many([rec(i, 60) for i in range(10)])
    seg = segments(spool_dir)[0]
    data = bytearray(seg.read_bytes())
    data[8 + 3 * (60 + FRAME_OVERHEAD) + FRAME_OVERHEAD + 5] ^= 0xFF  # record 3's payload
    seg.write_bytes(bytes(data))

    with caplog.at_level(logging.ERROR), Spool(spool_dir, max_bytes=MiB) as sp:
        got = read_all(sp)
        nxt = sp.append(b"x")

    assert [o for o, _ in got] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert nxt == 10
    assert "lost offsets: 3" in caplog.text


def test_spool_read_raises_when_a_record_changes_on_disk_after_open(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB) as sp:
        sp.append_many([rec(i, 60) for i in range(5)])
        seg = segments(spool_dir)[0]
        with seg.open("r+b") as f:
            f.seek(8 + FRAME_OVERHEAD + 3)
            f.write(b"\x00\x01")

        with pytest.raises(SpoolCorrupt, match="fails its checksum"):
            sp.read(0)


# ---------------------------------------------------------------------------- bounds, full disk


def test_spool_full_raises_with_how_full_and_where_and_writes_nothing(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=8192) as sp:
        n, err = fill(sp, 100)
        disk = sp.disk_bytes

        assert type(err) is SpoolFull
        assert str(spool_dir) in str(err)
        assert "is full: " in str(err)
        assert "of 8192 bytes used" in str(err)
        assert disk <= 8192
        assert [o for o, _ in read_all(sp)] == list(range(n))
        # Delivering frees room again.
        sp.commit(n - 1)
        assert sp.append(b"again") == n


def test_spool_rejects_a_record_that_can_never_fit(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=8192) as sp, pytest.raises(ValueError, match="never fit"):
        sp.append(b"x" * 9000)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mnt = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_spool_on_a_full_filesystem_raises_no_space_naming_the_directory(tiny_fs: Path) -> None:
    # Arrange: a spool whose budget is larger than the filesystem.
    d = tiny_fs / "spool"
    with Spool(d, max_bytes=16 * MiB, segment_bytes=64 << 10, fsync="never") as sp:
        # Act
        n, err = fill(sp, 1000)
        readable = read_all(sp)
        # Assert: a clear message, every acknowledged record intact, no torn frame.
        assert isinstance(err, SpoolNoSpace)
        assert str(d) in str(err)
        assert "no space" in str(err)
        assert [o for o, _ in readable] == list(range(n))
        # Freeing space (delivering) lets appends continue.
        sp.commit(n - 1)
        assert sp.append(b"after") == n

    with Spool(d, max_bytes=16 * MiB, segment_bytes=64 << 10) as sp:
        assert [o for o, _ in read_all(sp)] == [n]


def test_spool_over_a_file_size_limit_raises_no_space_and_stays_consistent(
    tmp_path: Path,
) -> None:
    # RLIMIT_FSIZE needs no mount permission: the kernel answers EFBIG past the limit.
    d = tmp_path / "spool"
    script = textwrap.dedent(
        f"""
        import resource
        from pathlib import Path
        from tickserver.spool import Spool, SpoolNoSpace
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        sp = Spool(Path({str(d)!r}), max_bytes=1 << 20, segment_bytes=1 << 20)
        n = 0
        try:
            while True:
                sp.append(b"x" * 900)
                n += 1
        except SpoolNoSpace as exc:
            print(n)
            print(exc)
        sp.close()
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    n_str, msg = res.stdout.strip().split("\n", 1)
    n = int(n_str)

    with Spool(d, max_bytes=1 << 20) as sp:
        got = read_all(sp)

    assert str(d) in msg
    assert n > 5
    assert [o for o, _ in got] == list(range(n))
    assert all(r == b"x" * 900 for _, r in got)


# ---------------------------------------------------------------------------- model check


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(0, 300)),
            st.tuples(st.just("commit"), st.floats(0, 1)),
            st.tuples(st.just("reopen"), st.just(0)),
        ),
        max_size=40,
    )
)
def test_spool_behaves_like_a_list_through_appends_commits_and_reopens(
    tmp_path: Path, ops: list[tuple[str, float]]
) -> None:
    d = tmp_path / uuid.uuid4().hex
    model: list[tuple[int, bytes]] = []
    committed = -1
    sp = Spool(d, max_bytes=MiB, segment_bytes=500, fsync="never")
    try:
        for op, arg in ops:
            if op == "append":
                off = sp.append(rec(sp.next_offset, int(arg)))
                model.append((off, rec(off, int(arg))))
            elif op == "commit" and model:
                k = int(arg * (len(model) - 1))
                committed = model[k][0]
                sp.commit(committed)
                model = model[k + 1 :]
            elif op == "reopen":
                sp.close()
                sp = Spool(d, max_bytes=MiB, segment_bytes=500, fsync="never")
            assert read_all(sp) == model
            assert sp.backlog_records == len(model)
            assert sp.backlog_bytes == sum(len(r) + FRAME_OVERHEAD for _, r in model)
    finally:
        sp.close()


def test_spool_batch_policy_syncs_in_the_background_without_being_asked(spool_dir: Path) -> None:
    with Spool(spool_dir, max_bytes=MiB, fsync="batch", fsync_interval_ms=5) as sp:
        last = sp.append_many([rec(i) for i in range(3)])
        deadline = time.monotonic() + 30
        while sp.durable_offset < last and time.monotonic() < deadline:
            time.sleep(0.005)

        assert sp.durable_offset == last


def test_spool_delivers_everything_in_order_while_appends_and_commits_interleave(
    spool_dir: Path,
) -> None:
    # Arrange: a producer thread appends while this thread reads and commits.
    total = 20_000
    with Spool(spool_dir, max_bytes=64 * MiB, segment_bytes=16 << 10) as sp:

        def produce() -> None:
            for i in range(0, total, 10):
                sp.append_many([rec(j, 30) for j in range(i, i + 10)])

        producer = threading.Thread(target=produce)
        producer.start()
        delivered: list[tuple[int, bytes]] = []
        # Act
        while len(delivered) < total:
            got = sp.read(sp.committed_offset + 1, max_records=777)
            if got:
                delivered.extend(got)
                sp.commit(got[-1][0])
        producer.join()

        # Assert
        assert delivered == [(i, rec(i, 30)) for i in range(total)]
        assert sp.backlog_records == 0
        assert segments(spool_dir) == []
