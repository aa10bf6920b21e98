"""A durable, bounded, append-only log of byte records on local disk (a write-ahead spool).

Sinks that must not lose data (the store, Kafka) append what they accept to a :class:`Spool`
before they count it as accepted, deliver from it at their own pace, and :meth:`Spool.commit`
what was delivered. After a crash, the next :class:`Spool` opened on the same directory gives
back every record that was appended and not committed.

On disk
-------
``<directory>/`` holds segment files ``<first offset, 20 digits>.seg``, a ``commit`` marker, a
``LOCK`` file and a ``quarantine/`` folder. A segment starts with the 8-byte magic
``TSSPOOL1`` followed by frames::

    magic "TSr\\x01" (4) | length u32 (4) | offset u64 (8) | crc32 u32 (4) | payload

all little-endian; the CRC32 covers length, offset and payload. Every frame names its own
offset, so a damaged region can be skipped (resynchronising on the frame magic) and the exact
offsets lost are known. ``commit`` holds the highest delivered offset; it is replaced
atomically (write a temp file, fsync, rename, fsync the directory).

Recovery (on open)
------------------
Every segment is scanned and every frame's checksum verified:

- a bad region at the *end of the last segment* with nothing valid after it is a torn write
  (crash or power loss mid-append): the file is truncated to its last good frame and a
  warning names the file and the bytes dropped;
- any other damage (a bad checksum with good frames after it, a bad header, a gap in the
  offsets) makes the segment *corrupt*: the file is copied to ``quarantine/`` for forensics,
  its good frames are kept in place, and an error names the file and the offset range lost.

Segments wholly at or below the commit marker are deleted.

Durability (``fsync``)
----------------------
- ``"always"``: every ``append``/``append_many`` call returns only after ``fdatasync``; an
  accepted record survives power loss. Slowest: one disk flush per call.
- ``"batch"`` (default): a background thread syncs at most every ``fsync_interval_ms`` (and
  ``sync()``/``close()`` sync at once). ``append`` never waits for the disk; a process crash
  (even SIGKILL) loses nothing, since each record reaches the kernel in one ``write`` before
  ``append`` returns; power loss may lose the last ``fsync_interval_ms`` of records.
- ``"never"``: the spool never syncs (the OS writes back in its own time, ~30 s on Linux);
  a process crash still loses nothing, power loss may lose more.

Bounds and errors
-----------------
``max_bytes`` bounds the segment bytes on disk. ``append`` raises :class:`SpoolFull` instead
of going over it, and :class:`SpoolNoSpace` (a :class:`SpoolFull`) when the filesystem itself
is full (ENOSPC, EDQUOT or EFBIG); in both cases nothing is written and the spool stays
consistent. The caller chooses the policy (reject, drop and count, slow the producer) and
must make it loud. The spool is thread-safe: appends may come from the event loop while
another thread reads, commits or syncs.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

log = logging.getLogger("tickserver.spool")

FsyncPolicy = Literal["always", "batch", "never"]

SEGMENT_MAGIC = b"TSSPOOL1"
FRAME_MAGIC = b"TSr\x01"
_FRAME = struct.Struct("<4sIQI")  # magic, length, offset, crc32
_CRC_FIELDS = struct.Struct("<IQ")  # length, offset (what the CRC covers besides the payload)
_COMMIT = struct.Struct("<8sqI")  # magic, committed offset, crc32 of the offset
_COMMIT_MAGIC = b"TSCOMMIT"
FRAME_OVERHEAD = _FRAME.size
MAX_RECORD_BYTES = 0xFFFF_FFFF
_HDR = len(SEGMENT_MAGIC)
_INDEX_EVERY = 64 << 10  # one sparse-index entry per this many bytes of a segment
_READ_CHUNK = 1 << 20
_NOSPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class SpoolFull(Exception):  # noqa: N818 - the name says the condition, like queue.Full
    """The spool cannot take the record: ``max_bytes`` would be exceeded.

    The message says how full the spool is and where it lives.
    """


class SpoolNoSpace(SpoolFull):
    """The filesystem holding the spool is full (ENOSPC/EDQUOT/EFBIG); nothing was written."""


class SpoolCorrupt(Exception):  # noqa: N818 - API name fixed for the sinks
    """A record failed its checksum after the spool was opened (the file changed on disk)."""


class SpoolLocked(RuntimeError):  # noqa: N818 - reads like SpoolFull
    """Another process has the spool directory open."""


@dataclass
class _Segment:
    base: int
    path: Path
    size: int = _HDR
    first: int = -1  # first offset present (-1: empty)
    last: int = -1  # last offset present
    count: int = 0
    lost: list[tuple[int, int]] = field(default_factory=list)  # gaps inside, after recovery
    idx_off: list[int] = field(default_factory=list)
    idx_pos: list[int] = field(default_factory=list)
    rfd: int | None = None

    def note(self, offset: int, pos: int, flen: int) -> None:
        if self.count == 0:
            self.first = offset
        if not self.idx_pos or pos - self.idx_pos[-1] >= _INDEX_EVERY:
            self.idx_off.append(offset)
            self.idx_pos.append(pos)
        self.last = offset
        self.count += 1
        self.size = pos + flen

    def present_above(self, committed: int) -> int:
        if self.count == 0 or self.last <= committed:
            return 0
        if self.first > committed:
            return self.count
        n = self.last - committed
        for a, b in self.lost:
            lo, hi = max(a, committed + 1), min(b, self.last)
            if hi >= lo:
                n -= hi - lo + 1
        return n


@dataclass
class _Scan:
    """What scanning one segment's bytes found."""

    seg: _Segment
    bad: list[tuple[int, int]] = field(default_factory=list)  # byte ranges that are not frames
    gaps: list[tuple[int, int]] = field(default_factory=list)  # missing offsets inside
    bad_header: bool = False
    torn_header: bool = False


def _frame_at(buf: bytes | memoryview, pos: int, after: int) -> tuple[int, int] | None:
    """Return ``(offset, frame length)`` if a valid frame with offset > ``after`` is at ``pos``."""
    end = len(buf)
    if pos + FRAME_OVERHEAD > end:
        return None
    magic, length, offset, crc = _FRAME.unpack_from(buf, pos)
    if magic != FRAME_MAGIC or offset <= after or pos + FRAME_OVERHEAD + length > end:
        return None
    body = memoryview(buf)[pos + FRAME_OVERHEAD : pos + FRAME_OVERHEAD + length]
    if zlib.crc32(body, zlib.crc32(_CRC_FIELDS.pack(length, offset))) != crc:
        return None
    return offset, FRAME_OVERHEAD + length


def _scan_segment(seg: _Segment, buf: bytes) -> _Scan:
    res = _Scan(seg)
    n = len(buf)
    if n < _HDR:
        res.torn_header = True
        return res
    if buf[:_HDR] != SEGMENT_MAGIC:
        res.bad_header = True
        res.bad.append((0, n))
        return res
    prev = seg.base - 1
    pos = _HDR
    while pos < n:
        hit = _frame_at(buf, pos, prev)
        if hit is None:
            # Resynchronise on the next frame magic that starts a valid frame.
            q = buf.find(FRAME_MAGIC, pos + 1)
            while q != -1 and _frame_at(buf, q, prev) is None:
                q = buf.find(FRAME_MAGIC, q + 1)
            res.bad.append((pos, n if q == -1 else q))
            if q == -1:
                break
            pos = q
            continue
        offset, flen = hit
        if offset != prev + 1 and (seg.count or offset != seg.base):
            res.gaps.append((prev + 1, offset - 1))
        seg.note(offset, pos, flen)
        prev = offset
        pos += flen
    seg.lost = list(res.gaps)
    return res


def _offset_bytes(offset: int) -> bytes:
    return offset.to_bytes(8, "little", signed=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fmt_ranges(ranges: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


class Spool:
    """Durable append-only log of byte records in segment files under ``directory``.

    Parameters
    ----------
    directory
        Where the segments live; created if missing. One process at a time (``LOCK``).
    max_bytes
        Upper bound of segment bytes on disk; ``append`` raises :class:`SpoolFull` past it.
    segment_bytes
        Roll to a new segment file past this size. Capped at ``max_bytes // 8`` (at least
        64 KiB) so delivered-but-not-yet-deleted data never holds much of the budget.
    fsync
        ``"always"``, ``"batch"`` or ``"never"`` (see the module docstring).
    fsync_interval_ms
        Upper bound of the delay between an append and its fsync with ``"batch"``.
    name
        Shown in log lines and error messages.

    Raises
    ------
    SpoolLocked
        If another process has the directory open.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        segment_bytes: int = 64 << 20,
        fsync: FsyncPolicy = "batch",
        fsync_interval_ms: int = 50,
        name: str = "spool",
    ) -> None:
        if fsync not in ("always", "batch", "never"):
            raise ValueError(f"fsync must be 'always', 'batch' or 'never', got {fsync!r}")
        if max_bytes < 4096:
            raise ValueError(f"max_bytes must be at least 4096, got {max_bytes}")
        if fsync_interval_ms < 1:
            raise ValueError(f"fsync_interval_ms must be >= 1, got {fsync_interval_ms}")
        self.directory = Path(directory)
        self.name = name
        self.max_bytes = max_bytes
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be >= 1, got {segment_bytes}")
        self.segment_bytes = min(segment_bytes, max(max_bytes // 8, min(64 << 10, max_bytes)))
        self.fsync: FsyncPolicy = fsync
        self.fsync_interval_ms = fsync_interval_ms
        self.quarantined: list[Path] = []
        self.recovered_records = 0
        self.truncated_bytes = 0

        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._active: _Segment | None = None
        self._wfd: int | None = None
        self._committed = -1
        self._next = 0
        self._disk_bytes = 0
        self._dirty = False
        self._dir_dirty = False
        self._pending_fds: list[int] = []
        self._durable = -1
        self._sync_error: OSError | None = None
        self._closed = False
        self._cursor: dict[int, tuple[int, int]] = {}
        self._commit_pos: tuple[int, int, int] | None = None  # (committed, seg base, pos)
        self._lost: list[tuple[int, int]] = []

        self.directory.mkdir(parents=True, exist_ok=True)
        self._qdir = self.directory / "quarantine"
        self._lock_fd = self._take_lock()
        try:
            self._recover()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._stop_flusher = threading.Event()
        self._flusher: threading.Thread | None = None
        if fsync == "batch":
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"spool-{name}-fsync", daemon=True
            )
            self._flusher.start()

    # ------------------------------------------------------------------ properties
    @property
    def committed_offset(self) -> int:
        """The highest delivered offset (``-1`` if none)."""
        return self._committed

    @property
    def next_offset(self) -> int:
        """The offset the next appended record gets."""
        return self._next

    @property
    def durable_offset(self) -> int:
        """The highest offset the spool has fsynced (with ``"never"``: only by ``sync()``)."""
        return self._durable

    @property
    def backlog_records(self) -> int:
        """Records appended and not yet committed."""
        with self._lock:
            return sum(s.present_above(self._committed) for s in self._segments)

    @property
    def backlog_bytes(self) -> int:
        """Frame bytes of the records appended and not yet committed."""
        with self._lock:
            total = 0
            for seg in self._segments:
                if seg.count == 0 or seg.last <= self._committed:
                    continue
                if seg.first > self._committed:
                    total += seg.size - _HDR
                else:
                    total += seg.size - self._commit_position(seg)
            return total

    @property
    def disk_bytes(self) -> int:
        """Segment bytes on disk (what ``max_bytes`` bounds)."""
        return self._disk_bytes

    @property
    def lost_ranges(self) -> list[tuple[int, int]]:
        """Offset ranges (inclusive) found missing or corrupt at recovery."""
        return list(self._lost)

    # ------------------------------------------------------------------ writing
    def append(self, record: bytes) -> int:
        """Append one record; return its offset.

        Raises
        ------
        SpoolFull
            If ``max_bytes`` would be exceeded (nothing is written).
        SpoolNoSpace
            If the filesystem is full (nothing is written).
        ValueError
            If the record can never fit (larger than ``max_bytes`` or 4 GiB).
        """
        return self.append_many((record,))

    def append_many(self, records: Sequence[bytes]) -> int:
        """Append records in one write; return the last offset (all or nothing).

        An empty sequence appends nothing and returns ``next_offset - 1``.
        """
        with self._lock:
            self._check_writable()
            if not records:
                return self._next - 1
            first = self._next
            parts: list[bytes] = []
            sizes: list[int] = []
            total = 0
            for i, rec in enumerate(records):
                length = len(rec)
                flen = FRAME_OVERHEAD + length
                if length > MAX_RECORD_BYTES or flen + _HDR > self.max_bytes:
                    raise ValueError(
                        f"spool {self.name!r}: a record of {length} bytes can never fit "
                        f"(max_bytes={self.max_bytes})"
                    )
                off = first + i
                crc = zlib.crc32(rec, zlib.crc32(_CRC_FIELDS.pack(length, off)))
                parts.append(_FRAME.pack(FRAME_MAGIC, length, off, crc))
                parts.append(rec)
                sizes.append(flen)
                total += flen
            seg = self._active
            roll = seg is not None and seg.count > 0 and seg.size + total > self.segment_bytes
            need = total + (_HDR if seg is None or roll else 0)
            if self._disk_bytes + need > self.max_bytes:
                raise SpoolFull(self._full_message(need))
            if seg is None or roll:
                seg = self._new_segment(first)
            assert self._wfd is not None
            start = seg.size
            self._write_all(self._wfd, b"".join(parts), seg, start)
            pos = start
            for i, flen in enumerate(sizes):
                seg.note(first + i, pos, flen)
                pos += flen
            self._disk_bytes += total
            self._next = first + len(records)
            last = self._next - 1
            if self.fsync == "always":
                self._sync_locked()
            elif self.fsync == "batch":
                self._dirty = True
            return last

    def sync(self) -> None:
        """Flush appended records to disk now (``fdatasync``), whatever the policy."""
        with self._lock:
            self._check_open()
            if self._sync_error is not None:
                raise self._sync_failed_error()
            fds = [os.dup(self._wfd)] if self._dirty and self._wfd is not None else []
            fds += self._pending_fds
            self._pending_fds = []
            dir_dirty = self._dir_dirty
            self._dirty = self._dir_dirty = False
            target = self._next - 1
        self._sync_fds(fds, dir_dirty, target)

    # ------------------------------------------------------------------ reading
    def read(
        self, from_offset: int, *, max_records: int = 10_000, max_bytes: int = 16 << 20
    ) -> list[tuple[int, bytes]]:
        """Return up to ``max_records`` records with offset >= ``from_offset``, in order.

        Committed records are never returned (reading starts after ``committed_offset``).
        ``max_bytes`` bounds the payload bytes returned, except that the first record is
        always returned. Offsets are consecutive except across ranges lost to corruption.

        Raises
        ------
        SpoolCorrupt
            If a record's checksum fails (the file changed on disk after it was written).
        """
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be >= 1")
        out: list[tuple[int, bytes]] = []
        got_bytes = 0
        start = from_offset
        while len(out) < max_records:
            with self._lock:
                self._check_open()
                start = max(start, self._committed + 1)
                seg = self._segment_for(start)
                if seg is None:
                    break
                pos = self._locate(seg, start)
                end = seg.size
                fd = os.dup(self._read_fd(seg))
                path = seg.path
                seg_last = seg.last
            try:
                recs, next_pos, full = self._read_frames(
                    fd, path, pos, end, max_records - len(out), max_bytes - got_bytes, not out
                )
            finally:
                os.close(fd)
            out.extend(recs)
            got_bytes += sum(len(r) for _, r in recs)
            if recs:
                nxt = recs[-1][0] + 1
                with self._lock:
                    if len(self._cursor) > 8:
                        self._cursor.clear()
                    self._cursor[nxt] = (seg.base, next_pos)
            if full:
                break
            start = seg_last + 1
        return out

    # ------------------------------------------------------------------ committing
    def commit(self, offset: int) -> None:
        """Mark every record <= ``offset`` delivered, persist that, delete spent segments.

        Committing an offset at or below ``committed_offset`` does nothing.

        Raises
        ------
        ValueError
            If ``offset`` was never appended.
        OSError
            If the marker cannot be written (the commit did not happen; retry later).
        """
        with self._commit_lock:
            with self._lock:
                self._check_open()
                if offset <= self._committed:
                    return
                if offset >= self._next:
                    raise ValueError(
                        f"spool {self.name!r}: cannot commit offset {offset}, "
                        f"the last appended is {self._next - 1}"
                    )
            self._write_marker(offset)
            with self._lock:
                self._committed = offset
                self._drop_committed_segments()

    def close(self) -> None:
        """Sync (unless ``fsync="never"``), close files and release the directory; idempotent."""
        if self._closed:
            return
        if self._flusher is not None:
            self._stop_flusher.set()
            self._flusher.join()
        try:
            if self.fsync != "never" and self._sync_error is None:
                self.sync()
        finally:
            with self._lock:
                self._closed = True
                for fd in self._pending_fds:
                    os.close(fd)
                self._pending_fds = []
                if self._wfd is not None:
                    os.close(self._wfd)
                    self._wfd = None
                for seg in self._segments:
                    self._close_rfd(seg)
                os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Spool({self.name!r}, {str(self.directory)!r}, committed={self._committed}, "
            f"next={self._next}, disk_bytes={self._disk_bytes})"
        )

    # ------------------------------------------------------------------ internals: writing
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"spool {self.name!r} at {self.directory} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._sync_error is not None:
            raise self._sync_failed_error()

    def _sync_failed_error(self) -> OSError:
        err = self._sync_error
        assert err is not None
        return OSError(
            err.errno,
            f"spool {self.name!r} at {self.directory}: an fsync failed ({err.strerror}); records "
            f"after offset {self._durable} may not be on disk. Restart to recover from the files",
        )

    def _full_message(self, need: int) -> str:
        backlog = sum(s.present_above(self._committed) for s in self._segments)
        return (
            f"spool {self.name!r} at {self.directory} is full: {self._disk_bytes} of "
            f"{self.max_bytes} bytes used ({100 * self._disk_bytes // self.max_bytes}%), "
            f"{backlog} records not yet delivered; cannot add {need} bytes"
        )

    def _new_segment(self, base: int) -> _Segment:
        if self._active is not None:
            self._retire_active()
        path = self.directory / f"{base:020d}.seg"
        # O_EXCL: offsets are never reused, so an existing file would be a bug, not a reuse.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        seg = _Segment(base=base, path=path, size=0)
        try:
            self._write_all(fd, SEGMENT_MAGIC, seg, 0)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        seg.size = _HDR
        self._disk_bytes += _HDR
        self._segments.append(seg)
        self._active = seg
        self._wfd = fd
        self._dir_dirty = True
        return seg

    def _retire_active(self) -> None:
        """Stop writing to the active segment; its fd is synced (by policy) then closed."""
        if self._wfd is None:
            return
        if self.fsync == "batch" and self._dirty:
            self._pending_fds.append(self._wfd)
        else:
            os.close(self._wfd)
        self._wfd = None
        self._active = None
        self._dirty = False

    def _write_all(self, fd: int, data: bytes, seg: _Segment, start: int) -> None:
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                done += os.write(fd, view[done:])
        except OSError as exc:
            if done:
                # Never leave a torn frame behind: cut the file back to where it was.
                try:
                    os.ftruncate(fd, start)
                except OSError as trunc_exc:
                    log.error(
                        "spool %s: could not cut %s back to %d bytes after a failed write: %s",
                        self.name,
                        seg.path,
                        start,
                        trunc_exc,
                    )
            if exc.errno in _NOSPACE:
                raise SpoolNoSpace(
                    f"spool {self.name!r}: no space left for {len(data)} bytes in "
                    f"{self.directory} ({os.strerror(exc.errno or 0)}); "
                    f"{self._disk_bytes} bytes spooled, nothing of this append was written"
                ) from exc
            raise OSError(
                exc.errno,
                f"spool {self.name!r}: write to {seg.path} failed: {exc.strerror}",
            ) from exc

    def _sync_locked(self) -> None:
        """fdatasync under the lock (``"always"``)."""
        fds = [os.dup(self._wfd)] if self._wfd is not None else []
        fds += self._pending_fds
        self._pending_fds = []
        dir_dirty = self._dir_dirty
        self._dir_dirty = self._dirty = False
        self._sync_fds(fds, dir_dirty, self._next - 1, locked=True)
        if self._sync_error is not None:
            raise self._sync_failed_error()

    def _sync_fds(self, fds: list[int], dir_dirty: bool, target: int, locked: bool = False) -> None:
        err: OSError | None = None
        for fd in fds:
            try:
                if err is None:
                    os.fdatasync(fd)
            except OSError as exc:
                err = exc
            finally:
                os.close(fd)
        if err is None and dir_dirty:
            try:
                _fsync_dir(self.directory)
            except OSError as exc:
                err = exc
        if err is not None:
            log.error("spool %s: fsync in %s failed: %s", self.name, self.directory, err)
            self._sync_error = err
            if not locked:
                raise self._sync_failed_error()
            return
        if locked:
            self._durable = max(self._durable, target)
        else:
            with self._lock:
                self._durable = max(self._durable, target)

    def _flush_loop(self) -> None:
        interval = self.fsync_interval_ms / 1000
        while not self._stop_flusher.wait(interval):
            with self._lock:
                idle = not (self._dirty or self._pending_fds or self._dir_dirty)
                failed = self._sync_error is not None or self._closed
            if idle or failed:
                continue
            try:
                self.sync()
            except Exception:  # logged in _sync_fds; appends now raise
                continue

    # ------------------------------------------------------------------ internals: commit
    def _write_marker(self, offset: int) -> None:
        tmp = self.directory / "commit.tmp"
        data = _COMMIT.pack(_COMMIT_MAGIC, offset, zlib.crc32(_offset_bytes(offset)))
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, data)
                    if self.fsync != "never":
                        os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                if exc.errno not in _NOSPACE:
                    raise
                # A full disk must not stop delivery from freeing it: overwrite the existing
                # marker in place (same 20 bytes, no new block needed; the CRC catches a tear).
                with contextlib.suppress(OSError):
                    tmp.unlink()
                fd = os.open(self.directory / "commit", os.O_WRONLY)
                try:
                    os.pwrite(fd, data, 0)
                    if self.fsync != "never":
                        os.fsync(fd)
                finally:
                    os.close(fd)
                return
            os.replace(tmp, self.directory / "commit")
            if self.fsync != "never":
                _fsync_dir(self.directory)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"spool {self.name!r}: cannot write the commit marker in {self.directory}: "
                f"{exc.strerror}",
            ) from exc

    def _read_marker(self) -> int | None:
        path = self.directory / "commit"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return -1
        if len(data) == _COMMIT.size:
            magic, offset, crc = _COMMIT.unpack(data)
            if magic == _COMMIT_MAGIC and zlib.crc32(_offset_bytes(offset)) == crc:
                return int(offset)
        log.error(
            "spool %s: commit marker %s is damaged; undelivered records are taken to start "
            "at the oldest segment (some may be delivered twice)",
            self.name,
            path,
        )
        return None

    def _drop_committed_segments(self) -> None:
        keep: list[_Segment] = []
        for seg in self._segments:
            spent = seg.count == 0 or seg.last <= self._committed
            if spent and seg is self._active:
                # Fully delivered: drop it; the next append starts a fresh segment.
                if self._wfd is not None:
                    os.close(self._wfd)
                self._wfd = None
                self._active = None
                self._dirty = False
            if spent:
                self._close_rfd(seg)
                with contextlib.suppress(FileNotFoundError):
                    seg.path.unlink()
                self._disk_bytes -= seg.size
            else:
                keep.append(seg)
        self._segments = keep
        self._cursor = {k: v for k, v in self._cursor.items() if k > self._committed}

    # ------------------------------------------------------------------ internals: reading
    def _segment_for(self, start: int) -> _Segment | None:
        bases = [s.base for s in self._segments]
        i = max(bisect.bisect_right(bases, start) - 1, 0)
        for seg in self._segments[i:]:
            if seg.count and seg.last >= start:
                return seg
        return None

    def _read_fd(self, seg: _Segment) -> int:
        if seg.rfd is None:
            try:
                seg.rfd = os.open(seg.path, os.O_RDONLY)
            except FileNotFoundError:
                raise SpoolCorrupt(
                    f"spool {self.name!r}: segment {seg.path} disappeared while open"
                ) from None
        return seg.rfd

    def _close_rfd(self, seg: _Segment) -> None:
        if seg.rfd is not None:
            os.close(seg.rfd)
            seg.rfd = None

    def _locate(self, seg: _Segment, start: int) -> int:
        """Byte position of the first frame with offset >= ``start`` in ``seg``."""
        if start <= seg.first:
            return _HDR
        hit = self._cursor.get(start)
        if hit is not None and hit[0] == seg.base:
            return hit[1]
        i = bisect.bisect_right(seg.idx_off, start) - 1
        pos = seg.idx_pos[i]
        fd = self._read_fd(seg)
        while pos < seg.size:
            buf = os.pread(fd, min(_READ_CHUNK, seg.size - pos), pos)
            if not buf:
                raise SpoolCorrupt(f"spool {self.name!r}: {seg.path} is shorter than expected")
            at = 0
            while at + FRAME_OVERHEAD <= len(buf):
                _magic, length, offset, _crc = _FRAME.unpack_from(buf, at)
                if offset >= start:
                    return pos + at
                at += FRAME_OVERHEAD + length
            pos += at
        return seg.size

    def _commit_position(self, seg: _Segment) -> int:
        c = self._committed
        cached = self._commit_pos
        if cached is not None and cached[0] == c and cached[1] == seg.base:
            return cached[2]
        pos = self._locate(seg, c + 1)
        self._commit_pos = (c, seg.base, pos)
        return pos

    def _read_frames(
        self,
        fd: int,
        path: Path,
        pos: int,
        end: int,
        max_records: int,
        max_bytes: int,
        first_free: bool,
    ) -> tuple[list[tuple[int, bytes]], int, bool]:
        """Read frames in ``[pos, end)``; return records, the next position, limits reached."""
        out: list[tuple[int, bytes]] = []
        got = 0
        while pos < end:
            want = min(end - pos, max(_READ_CHUNK, min(max_bytes - got, 64 << 20)))
            buf = os.pread(fd, want, pos)
            at = 0
            while at + FRAME_OVERHEAD <= len(buf):
                magic, length, offset, crc = _FRAME.unpack_from(buf, at)
                if magic != FRAME_MAGIC:
                    raise SpoolCorrupt(
                        f"spool {self.name!r}: no frame at byte {pos + at} of {path} "
                        "(the file changed on disk after it was written)"
                    )
                flen = FRAME_OVERHEAD + length
                if at + flen > len(buf):
                    if at == 0:  # a frame larger than the chunk: read exactly it
                        buf = os.pread(fd, flen, pos)
                        if len(buf) < flen:
                            raise SpoolCorrupt(
                                f"spool {self.name!r}: {path} is shorter than expected "
                                f"at byte {pos} (offset {offset})"
                            )
                        continue
                    break
                limited = len(out) >= max_records or got + length > max_bytes
                if (out or not first_free) and limited:
                    return out, pos + at, True
                body = buf[at + FRAME_OVERHEAD : at + flen]
                if zlib.crc32(body, zlib.crc32(_CRC_FIELDS.pack(length, offset))) != crc:
                    raise SpoolCorrupt(
                        f"spool {self.name!r}: record {offset} at byte {pos + at} of {path} "
                        "fails its checksum (the file changed on disk after it was written)"
                    )
                out.append((offset, body))
                got += length
                at += flen
                if len(out) >= max_records or got >= max_bytes:
                    return out, pos + at, True
            if at == 0:
                break
            pos += at
        return out, pos, False

    # ------------------------------------------------------------------ internals: recovery
    def _take_lock(self) -> int:
        path = self.directory / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SpoolLocked(
                f"spool {self.name!r}: {self.directory} is in use by another process "
                f"(pid {holder}); give each tickserver its own store path"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _quarantine(self, path: Path, *, copy: bool) -> Path:
        self._qdir.mkdir(exist_ok=True)
        dest = self._qdir / path.name
        n = 1
        while dest.exists():
            dest = self._qdir / f"{path.name}.{n}"
            n += 1
        if copy:
            try:
                os.link(path, dest)
            except OSError:
                shutil.copy2(path, dest)
        else:
            os.replace(path, dest)
        self.quarantined.append(dest)
        return dest

    def _recover(self) -> None:
        t0 = time.monotonic()
        for stale in self.directory.glob("*.tmp"):
            stale.unlink()
        marker = self._read_marker()
        committed = -1 if marker is None else marker
        if not (self.directory / "commit").exists():
            # Created up front so a commit on a full disk can overwrite it in place.
            try:
                self._write_marker(-1)
            except OSError as exc:
                log.warning("spool %s: %s", self.name, exc)
        if self._qdir.is_dir():
            self.quarantined = sorted(p for p in self._qdir.iterdir() if p.is_file())

        paths: list[tuple[int, Path]] = []
        for p in self.directory.glob("*.seg"):
            try:
                paths.append((int(p.stem), p))
            except ValueError:
                dest = self._quarantine(p, copy=False)
                log.error("spool %s: %s is not a segment name; moved to %s", self.name, p, dest)
        paths.sort()

        scans: list[_Scan] = []
        for i, (base, path) in enumerate(paths):
            nxt_base = paths[i + 1][0] if i + 1 < len(paths) else None
            if marker is not None and nxt_base is not None and nxt_base - 1 <= committed:
                path.unlink()  # wholly delivered before the crash; deletion was interrupted
                continue
            scans.append(_scan_segment(_Segment(base=base, path=path), path.read_bytes()))

        for i, scan in enumerate(scans):
            last_seg = i == len(scans) - 1
            seg = scan.seg
            if scan.torn_header:
                if last_seg:
                    log.warning(
                        "spool %s: %s has a torn header (crash while creating it); removed",
                        self.name,
                        seg.path,
                    )
                    seg.path.unlink()
                    seg.count = -1
                    continue
                scan.bad_header = True
                scan.bad.append((0, seg.path.stat().st_size))
            tail_only = (
                last_seg
                and not scan.bad_header
                and not scan.gaps
                and len(scan.bad) == 1
                and scan.bad[0][1] == seg.path.stat().st_size
            )
            if tail_only:
                cut = scan.bad[0][0]
                dropped = scan.bad[0][1] - cut
                os.truncate(seg.path, cut)
                self.truncated_bytes += dropped
                log.warning(
                    "spool %s: truncated a torn tail of %d bytes at byte %d of %s (crash "
                    "during a write; records after offset %d had not been synced)",
                    self.name,
                    dropped,
                    cut,
                    seg.path,
                    max(seg.last, seg.base - 1),
                )
                if seg.count == 0:
                    seg.path.unlink()
                    seg.count = -1
            elif scan.bad or scan.gaps:
                self._repair(scan, scans[i + 1].seg if not last_seg else None)

        self._segments = [s.seg for s in scans if s.seg.count >= 0]
        for seg in self._segments:
            seg.size = seg.path.stat().st_size if seg.path.exists() else 0

        if marker is None:
            firsts = [s.first for s in self._segments if s.count]
            committed = (min(firsts) - 1) if firsts else -1
        self._committed = committed
        last_present = max((s.last for s in self._segments if s.count), default=-1)
        self._next = max(committed + 1, last_present + 1)
        self._lost = sorted(r for r in self._lost if r[1] > committed)
        self._drop_committed_segments()
        self._disk_bytes = sum(s.size for s in self._segments)
        self._durable = self._next - 1

        # Keep appending to the last segment if it has room.
        if self._segments and self._segments[-1].size < self.segment_bytes:
            seg = self._segments[-1]
            self._wfd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
            self._active = seg
        self.recovered_records = sum(s.present_above(committed) for s in self._segments)
        if self.recovered_records or self._lost:
            log.info(
                "spool %s: recovered %d undelivered records (offsets %d-%d) in %d segments "
                "from %s in %.2fs",
                self.name,
                self.recovered_records,
                committed + 1,
                self._next - 1,
                len(self._segments),
                self.directory,
                time.monotonic() - t0,
            )

    def _repair(self, scan: _Scan, nxt: _Segment | None) -> None:
        """Quarantine a corrupt segment and keep its good frames in place."""
        seg = scan.seg
        lost = list(scan.gaps)
        ends_bad = bool(scan.bad) and scan.bad[-1][1] >= seg.path.stat().st_size
        upper: int | None = None
        if nxt is not None:
            upper = (nxt.first if nxt.count else nxt.base) - 1
        if seg.count == 0:
            if upper is not None and upper >= seg.base:
                lost.append((seg.base, upper))
        elif ends_bad and upper is not None and upper > seg.last:
            lost.append((seg.last + 1, upper))
        dest = self._quarantine(seg.path, copy=seg.count > 0)
        unknown_tail = ends_bad and nxt is None
        what = _fmt_ranges(lost) or "none known"
        if unknown_tail:
            what += f"; and any records after offset {max(seg.last, seg.base - 1)}"
        log.error(
            "spool %s: segment %s is corrupt (%d damaged byte ranges); copied to %s; "
            "lost offsets: %s; recovered %d records from it",
            self.name,
            seg.path,
            len(scan.bad),
            dest,
            what,
            max(seg.count, 0),
        )
        self._lost.extend(lost)
        if seg.count == 0:
            seg.count = -1  # gone (moved to quarantine)
            return
        data = seg.path.read_bytes()
        keep = [SEGMENT_MAGIC]
        at = _HDR
        for a, b in scan.bad:
            if a > at:
                keep.append(data[max(at, _HDR) : a])
            at = max(at, b)
        keep.append(data[at:])
        tmp = seg.path.with_suffix(".seg.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(b"".join(keep))
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, seg.path)
        _fsync_dir(self.directory)
        fresh = _scan_segment(_Segment(base=seg.base, path=seg.path), b"".join(keep))
        fresh.seg.lost = lost
        scan.seg = fresh.seg
