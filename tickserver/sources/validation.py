"""Validation and normalisation at the source boundary: nothing invalid reaches the core.

Every :class:`~tickserver.sources.base.Source` runs its batches through a :class:`Validator`
inside ``publish_trades`` / ``publish_quotes`` / ``publish_book``. The checks are vectorised
over the batch (numpy): a clean batch (time increasing, prices near their reference) takes
a few array passes without grouping by symbol; otherwise rows are grouped by symbol and only
the rows around a suspicious jump take a per-row pass; one- and two-row batches (a live
message) take a plain loop. ``tickserver bench validation`` compares this with the obvious
per-row loop, which the unit tests use as the oracle.

======================  =====================================  ================================
check                   what                                   policy (counter ``action``)
======================  =====================================  ================================
``bad_price``           non-finite, zero or negative price     reject (always)
``bad_size``            negative or non-finite size            reject (always)
``crossed``             quote with bid above ask               reject (always)
``out_of_order``        older than the newest event already    drop (default) or ``pass`` (the
                        seen for that symbol from this source  core then counts it as late)
``duplicate``           same symbol, timestamp, price and      drop (default) or ``pass``
                        size as the symbol's previous event
``jump``                price more than ``max_jump_pct`` away  reject (default), ``flag``
                        from the last accepted price, within   (kept with ``Flag.FLAGGED``) or
                        ``jump_reference_max_age_s``           ``off``
======================  =====================================  ================================

A genuine move is not rejected forever: ``jump_confirm`` consecutive ticks that agree with each
other at the new level (each within the band of the first) confirm it; the confirming tick is
accepted and becomes the new reference. Earlier suspects stay rejected (or flagged). A
reference older than ``jump_reference_max_age_s`` (an overnight gap) does not constrain the next
tick, so an opening gap passes. Quotes are checked on their mid price with their own reference.

Every decision is counted per source, event type, check and action (``Validator.counts`` and
``tickserver_source_validation_total``).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from tickserver.config import ValidationConfig
from tickserver.events import BookDeltaBatch, Flag, QuoteBatch, TradeBatch

if TYPE_CHECKING:
    from tickserver.metrics import Counter

log = logging.getLogger(__name__)

I64_MIN = np.iinfo(np.int64).min
SMALL_BATCH = 2  # up to this many rows (a live message), a Python loop beats array passes
Bool = NDArray[np.bool_]
CountHook = Callable[[str, str, str, int], None]


@dataclass
class _Track:
    """Per-symbol state of one event stream (trades or quotes) of one source."""

    max_ts: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    last: list[NDArray[Any]] = field(default_factory=list)  # columns compared for duplicates
    ref_px: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    ref_ts: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    pend_px: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    pend_n: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))

    def ensure(self, n: int, dtypes: list[np.dtype[Any]]) -> None:
        size = len(self.max_ts)
        if not self.last:
            # Timestamps stay int64: as float64, ns timestamps 256 ns apart would compare equal.
            self.last = [np.empty(0, dt) for dt in dtypes]
        if n <= size:
            return
        grow = max(n, 2 * size, 16) - size
        self.max_ts = np.concatenate([self.max_ts, np.full(grow, I64_MIN, np.int64)])
        self.last = [
            np.concatenate([c, np.full(grow, _missing(c.dtype), c.dtype)]) for c in self.last
        ]
        self.ref_px = np.concatenate([self.ref_px, np.full(grow, np.nan)])
        self.ref_ts = np.concatenate([self.ref_ts, np.full(grow, I64_MIN, np.int64)])
        self.pend_px = np.concatenate([self.pend_px, np.full(grow, np.nan)])
        self.pend_n = np.concatenate([self.pend_n, np.zeros(grow, np.int64)])


class Validator:
    """Checks one source's batches; keeps the per-symbol state the checks need.

    Parameters
    ----------
    source
        Source name (for counters and log lines).
    cfg
        Policies (``[sources.validation]``).
    counter
        Optional metrics counter labelled ``source, type, check, action``.
    """

    def __init__(
        self, source: str, cfg: ValidationConfig | None = None, counter: Counter | None = None
    ) -> None:
        self.source = source
        self.cfg = cfg or ValidationConfig()
        self.band = self.cfg.max_jump_pct / 100.0
        self.max_age_ns = int(self.cfg.jump_reference_max_age_s * 1e9)
        self.counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._counter = counter
        self._logged: dict[tuple[str, str, str], float] = {}
        self._trades = _Track()
        self._quotes = _Track()

    # ------------------------------------------------------------------ public
    def trades(self, batch: TradeBatch) -> TradeBatch:
        """Return the rows of ``batch`` that pass (suspects flagged per policy)."""
        n = len(batch)
        if n == 0:
            return batch
        bad_px = ~np.isfinite(batch.price) | (batch.price <= 0)
        bad_sz = ~np.isfinite(batch.size) | (batch.size < 0)
        ok = ~(bad_px | bad_sz)
        self._count("trade", "bad_price", "reject", int(bad_px.sum()))
        self._count("trade", "bad_size", "reject", int((bad_sz & ~bad_px).sum()))
        keep, flag = self._sequence(
            "trade",
            self._trades,
            ok,
            batch.symbol_id,
            batch.ts_event,
            batch.price,
            [batch.ts_event, batch.price, batch.size],
        )
        return _apply(batch, keep, flag, n)

    def quotes(self, batch: QuoteBatch) -> QuoteBatch:
        """Return the valid quotes of ``batch``.

        A side may be empty (NaN price with zero size); a present side needs a finite, positive
        price and a non-negative size; both sides present must not cross.
        """
        n = len(batch)
        if n == 0:
            return batch
        bad_px = np.zeros(n, dtype=bool)
        bad_sz = np.zeros(n, dtype=bool)
        for px, sz in ((batch.bid_px, batch.bid_sz), (batch.ask_px, batch.ask_sz)):
            empty = np.isnan(px) & (sz == 0)
            bad_px |= ~empty & (~np.isfinite(px) | (px <= 0))
            bad_sz |= ~np.isfinite(sz) | (sz < 0)
        both = np.isfinite(batch.bid_px) & np.isfinite(batch.ask_px)
        crossed = both & (batch.bid_px > batch.ask_px) & ~bad_px & ~bad_sz
        self._count("quote", "bad_price", "reject", int(bad_px.sum()))
        self._count("quote", "bad_size", "reject", int((bad_sz & ~bad_px).sum()))
        self._count("quote", "crossed", "reject", int(crossed.sum()))
        ok = ~(bad_px | bad_sz | crossed)
        mid = np.where(
            both, (batch.bid_px + batch.ask_px) / 2.0, np.fmax(batch.bid_px, batch.ask_px)
        )
        keep, flag = self._sequence(
            "quote",
            self._quotes,
            ok & np.isfinite(mid),
            batch.symbol_id,
            batch.ts_event,
            mid,
            [batch.ts_event, batch.bid_px, batch.bid_sz, batch.ask_px, batch.ask_sz],
        )
        # A quote with both sides empty carries nothing; drop it with the bad prices.
        empty_both = ok & ~np.isfinite(mid)
        self._count("quote", "bad_price", "reject", int(empty_both.sum()))
        return _apply(batch, keep, flag, n)

    def book(self, batch: BookDeltaBatch) -> BookDeltaBatch:
        """Return the well-formed L2 deltas (order and gaps are the book's own business)."""
        n = len(batch)
        if n == 0:
            return batch
        bad_px = ~np.isfinite(batch.price) | (batch.price <= 0)
        bad_sz = ~np.isfinite(batch.size) | (batch.size < 0)
        bad_side = batch.side > 1
        self._count("book", "bad_price", "reject", int(bad_px.sum()))
        self._count("book", "bad_size", "reject", int((bad_sz & ~bad_px).sum()))
        self._count("book", "bad_side", "reject", int((bad_side & ~bad_px & ~bad_sz).sum()))
        ok = ~(bad_px | bad_sz | bad_side)
        if ok.all():
            return batch
        return batch.take(ok)

    def summary(self) -> dict[str, int]:
        """Counts as ``{"trade.jump.reject": 3, …}`` for health reports."""
        return {f"{k}.{c}.{a}": v for (k, c, a), v in sorted(self.counts.items())}

    # ------------------------------------------------------------------ internals
    def _count(self, kind: str, check: str, action: str, n: int) -> None:
        if n <= 0:
            return
        self.counts[(kind, check, action)] += n
        if self._counter is not None:
            self._counter.inc(n, source=self.source, type=kind, check=check, action=action)
        # One INFO line per check and minute with the running total; details at DEBUG.
        key = (kind, check, action)
        now = time.monotonic()
        if now - self._logged.get(key, -1e9) >= 60.0:
            self._logged[key] = now
            log.info(
                "%s: %d %s event(s) %s (%s); %d so far",
                self.source,
                n,
                kind,
                _past(action),
                check,
                self.counts[key],
            )
        else:
            log.debug("%s: %d %s event(s) %s: %s", self.source, n, kind, _past(action), check)

    def _sequence(
        self,
        kind: str,
        track: _Track,
        ok: Bool,
        sym_all: NDArray[np.uint32],
        ts_all: NDArray[np.int64],
        px_all: NDArray[np.float64],
        dup_cols: list[NDArray[Any]],
    ) -> tuple[Bool, Bool]:
        """Order, duplicate and jump checks on the well-formed rows ``ok``."""
        n = len(ok)
        keep_out = np.zeros(n, dtype=bool)
        flag_out = np.zeros(n, dtype=bool)
        rows = np.flatnonzero(ok)
        if len(rows) == 0:
            return keep_out, flag_out
        cfg = self.cfg
        track.ensure(int(sym_all[rows].max()) + 1, [c.dtype for c in dup_cols])
        if n <= SMALL_BATCH:
            return self._rows(kind, track, ok, sym_all, ts_all, px_all, dup_cols)
        if len(rows) == n and self._clean(track, sym_all, ts_all, px_all, dup_cols):
            keep_out[:] = True
            return keep_out, flag_out
        # Group rows by symbol, keeping arrival order inside each group (a radix sort on
        # 16-bit ids when they fit).
        keys = sym_all[rows]
        if len(track.max_ts) <= 65536:
            keys = keys.astype(np.uint16)
        order = rows[np.argsort(keys, kind="stable")]
        sym = sym_all[order].astype(np.int64)
        ts = ts_all[order]
        px = px_all[order]
        m = len(order)
        new_group = np.ones(m, dtype=bool)
        new_group[1:] = sym[1:] != sym[:-1]
        gstart = np.maximum.accumulate(np.where(new_group, np.arange(m), 0))
        alive = np.ones(m, dtype=bool)

        # -- out of order: older than the newest timestamp seen for the symbol
        if cfg.out_of_order == "drop":
            prior = track.max_ts[sym]
            unsorted_in_group = np.zeros(m, dtype=bool)
            unsorted_in_group[1:] = (ts[1:] < ts[:-1]) & ~new_group[1:]
            if not unsorted_in_group.any():
                ooo = ts < prior
            else:
                ooo = np.zeros(m, dtype=bool)
                starts = np.flatnonzero(new_group)
                ends = np.append(starts[1:], m)
                for g, end in zip(starts.tolist(), ends.tolist(), strict=True):
                    seg = ts[g:end]
                    run = np.maximum.accumulate(np.concatenate([[prior[g]], seg]))[:-1]
                    ooo[g:end] = seg < run
            alive &= ~ooo
            self._count(kind, "out_of_order", "drop", int(ooo.sum()))
        np.maximum.at(track.max_ts, sym[alive], ts[alive])

        # -- duplicates: equal to the previous event of the symbol that passed the order and
        #    duplicate checks (whether or not the jump check then rejected it)
        cols = [c[order] for c in dup_cols]
        if cfg.duplicates == "drop" and alive.any():
            prev = _prev_alive(alive, gstart)
            dup = alive.copy()
            for c, last in zip(cols, track.last, strict=True):
                before = np.where(prev >= 0, c[np.maximum(prev, 0)], last[sym])
                dup &= c == before
            alive &= ~dup
            self._count(kind, "duplicate", "drop", int(dup.sum()))
        if alive.any():
            last_rows = _last_per_group(alive, sym)
            for c, last in zip(cols, track.last, strict=True):
                last[sym[last_rows]] = c[last_rows]

        # -- sanity band on price jumps
        flagged = np.zeros(m, dtype=bool)
        if cfg.jump_policy != "off" and alive.any():
            prev = _prev_alive(alive, gstart)
            has_prev = prev >= 0
            pidx = np.maximum(prev, 0)
            ref_px = np.where(has_prev, px[pidx], track.ref_px[sym])
            ref_ts = np.where(has_prev, ts[pidx], track.ref_ts[sym])
            fresh = (ts - ref_ts) <= self.max_age_ns
            with np.errstate(invalid="ignore", divide="ignore"):
                out = alive & fresh & (np.abs(px / ref_px - 1.0) > self.band)
            suspect_groups = np.unique(sym[out])
            # Symbols without a suspect: every row is within the band of its predecessor.
            for s in suspect_groups.tolist():
                idx = np.flatnonzero((sym == s) & alive)
                self._jump_pass(kind, track, s, idx, ts, px, out, alive, flagged)
            calm = alive & ~np.isin(sym, suspect_groups)
            if calm.any():
                last_rows = _last_per_group(calm, sym)
                track.ref_px[sym[last_rows]] = px[last_rows]
                track.ref_ts[sym[last_rows]] = ts[last_rows]
                track.pend_n[sym[last_rows]] = 0
        elif alive.any():
            last_rows = _last_per_group(alive, sym)
            track.ref_px[sym[last_rows]] = px[last_rows]
            track.ref_ts[sym[last_rows]] = ts[last_rows]

        keep_out[order[alive]] = True
        flag_out[order[flagged & alive]] = True
        return keep_out, flag_out

    def _rows(
        self,
        kind: str,
        track: _Track,
        ok: Bool,
        sym_a: NDArray[np.uint32],
        ts_a: NDArray[np.int64],
        px_a: NDArray[np.float64],
        dup_cols: list[NDArray[Any]],
    ) -> tuple[Bool, Bool]:
        """The same checks row by row, for small batches (one live message, a few ticks),
        where a Python loop costs less than the fixed cost of a dozen array operations."""
        cfg = self.cfg
        band, max_age, confirm = self.band, self.max_age_ns, cfg.jump_confirm
        drop_late = cfg.out_of_order == "drop"
        drop_dup = cfg.duplicates == "drop"
        jumps = cfg.jump_policy
        n = len(ok)
        keep = [False] * n
        flag = [False] * n
        late = dups = rejected = flagged = 0
        cols = [c.tolist() for c in dup_cols]
        oks, syms, tss, pxs = ok.tolist(), sym_a.tolist(), ts_a.tolist(), px_a.tolist()
        last_cols = track.last
        for i in range(n):
            if not oks[i]:
                continue
            s, t, p = syms[i], tss[i], pxs[i]
            if drop_late and t < track.max_ts[s]:
                late += 1
                continue
            if t > track.max_ts[s]:
                track.max_ts[s] = t
            row = [c[i] for c in cols]
            if drop_dup and all(v == lc[s] for v, lc in zip(row, last_cols, strict=True)):
                dups += 1
                continue
            for v, lc in zip(row, last_cols, strict=True):
                lc[s] = v
            if jumps == "off":
                track.ref_px[s], track.ref_ts[s] = p, t
                keep[i] = True
                continue
            ref = float(track.ref_px[s])
            if ref != ref or t - int(track.ref_ts[s]) > max_age or abs(p / ref - 1.0) <= band:
                track.ref_px[s], track.ref_ts[s], track.pend_n[s] = p, t, 0
                keep[i] = True
                continue
            pend = int(track.pend_n[s])
            if pend > 0 and abs(p / float(track.pend_px[s]) - 1.0) <= band:
                pend += 1
            else:
                track.pend_px[s] = p
                pend = 1
            if pend >= confirm:
                track.ref_px[s], track.ref_ts[s], track.pend_n[s] = p, t, 0
                keep[i] = True
                continue
            track.pend_n[s] = pend
            if jumps == "reject":
                rejected += 1
            else:
                keep[i] = flag[i] = True
                flagged += 1
        self._count(kind, "out_of_order", "drop", late)
        self._count(kind, "duplicate", "drop", dups)
        self._count(kind, "jump", "reject", rejected)
        self._count(kind, "jump", "flag", flagged)
        return np.array(keep, dtype=bool), np.array(flag, dtype=bool)

    def _clean(
        self,
        track: _Track,
        sym: NDArray[np.uint32],
        ts: NDArray[np.int64],
        px: NDArray[np.float64],
        dup_cols: list[NDArray[Any]],
    ) -> bool:
        """The common case in a few array passes, without grouping by symbol.

        True (and the state updated) when every row is provably fine: timestamps strictly
        increasing and newer than anything seen for the symbol (so neither late nor a resend),
        and every price within ``band / (2 + band)`` of the symbol's reference (so any two
        prices of a symbol are within the band of each other). Otherwise False, state untouched.
        """
        n = len(ts)
        cfg = self.cfg
        si = sym.astype(np.intp)
        strict = cfg.duplicates == "drop"  # ties could be resends
        if strict or cfg.out_of_order == "drop":
            if n > 1:
                step_ok = ts[1:] > ts[:-1] if strict else ts[1:] >= ts[:-1]
                if not bool(step_ok.all()):
                    return False
            seen = track.max_ts[si]
            if not bool((ts > seen).all() if strict else (ts >= seen).all()):
                return False
        if cfg.jump_policy != "off":
            ref = track.ref_px[si]
            half = self.band / (2.0 + self.band)
            with np.errstate(invalid="ignore"):
                if not bool((np.abs(px - ref) <= half * ref).all()):  # NaN ref: no
                    return False
        last = np.full(len(track.max_ts), -1, np.int64)
        np.maximum.at(last, si, np.arange(n))
        syms = np.flatnonzero(last >= 0)
        rows = last[syms]
        np.maximum.at(track.max_ts, si, ts)
        track.ref_px[syms] = px[rows]
        track.ref_ts[syms] = ts[rows]
        track.pend_n[syms] = 0
        for c, col in zip(dup_cols, track.last, strict=True):
            col[syms] = c[rows]
        return True

    def _jump_pass(
        self,
        kind: str,
        track: _Track,
        s: int,
        idx: NDArray[np.intp],
        ts: NDArray[np.int64],
        px: NDArray[np.float64],
        out: Bool,
        alive: Bool,
        flagged: Bool,
    ) -> None:
        """Exact per-row pass for one symbol with a suspect price.

        Rows run one by one from the first suspect. Once a row is accepted as the reference
        with nothing pending, the rows up to the next vector suspect are within the band of
        their (accepted) predecessors, so they are skipped as accepted: the Python loop only
        visits rows around suspects.
        """
        band, max_age = self.band, self.max_age_ns
        confirm = self.cfg.jump_confirm
        reject = self.cfg.jump_policy == "reject"
        ref_px, ref_ts = float(track.ref_px[s]), int(track.ref_ts[s])
        pend_px, pend_n = float(track.pend_px[s]), int(track.pend_n[s])
        rejected = flagged_n = 0
        suspects = np.flatnonzero(out[idx])
        pos, end = int(suspects[0]), len(idx)
        if pos > 0:  # a calm prefix: accepted, the last of it is the reference
            last = int(idx[pos - 1])
            ref_px, ref_ts, pend_n = float(px[last]), int(ts[last]), 0
        while pos < end:
            i = int(idx[pos])
            pos += 1
            p, t = float(px[i]), int(ts[i])
            if np.isnan(ref_px) or t - ref_ts > max_age or abs(p / ref_px - 1.0) <= band:
                ref_px, ref_ts, pend_n = p, t, 0
            else:
                if pend_n > 0 and abs(p / pend_px - 1.0) <= band:
                    pend_n += 1
                else:
                    pend_px, pend_n = p, 1
                if pend_n >= confirm:
                    ref_px, ref_ts, pend_n = p, t, 0  # a confirmed new level
                else:
                    if reject:
                        alive[i] = False
                        rejected += 1
                    else:
                        flagged[i] = True
                        flagged_n += 1
                    continue
            # In step again: skip to the row before the next vector suspect.
            k = int(np.searchsorted(suspects, pos))
            nxt = int(suspects[k]) if k < len(suspects) else end
            if nxt > pos:
                last = int(idx[nxt - 1])
                ref_px, ref_ts = float(px[last]), int(ts[last])
                pos = nxt
        track.ref_px[s], track.ref_ts[s] = ref_px, ref_ts
        track.pend_px[s], track.pend_n[s] = pend_px, pend_n
        self._count(kind, "jump", "reject", rejected)
        self._count(kind, "jump", "flag", flagged_n)


def _missing(dtype: np.dtype[Any]) -> Any:
    return I64_MIN if np.issubdtype(dtype, np.integer) else np.nan


def _prev_alive(alive: Bool, gstart: NDArray[np.int64]) -> NDArray[np.int64]:
    """Index of the previous alive row in the same group, or -1."""
    m = len(alive)
    last = np.maximum.accumulate(np.where(alive, np.arange(m), -1))
    prev = np.full(m, -1, dtype=np.int64)
    prev[1:] = last[:-1]
    prev[prev < gstart] = -1
    return prev


def _last_per_group(mask: Bool, sym: NDArray[np.int64]) -> NDArray[np.intp]:
    """Index of the last ``mask`` row of each symbol group (rows are grouped by symbol)."""
    idx = np.flatnonzero(mask)
    s = sym[idx]
    is_last = np.ones(len(idx), dtype=bool)
    is_last[:-1] = s[1:] != s[:-1]
    return idx[is_last]


def _past(action: str) -> str:
    return {"reject": "rejected", "drop": "dropped", "flag": "flagged"}.get(action, action)


B = TypeVar("B", TradeBatch, QuoteBatch)


def _apply(batch: B, keep: Bool, flag: Bool, n: int) -> B:
    if flag.any():
        flags = batch.flags.copy()
        flags[flag] |= np.uint8(Flag.FLAGGED)
        batch = _with_flags(batch, flags)
    if keep.all():
        return batch
    return batch.take(keep)


def _with_flags(batch: B, flags: NDArray[np.uint8]) -> B:
    cols = {name: getattr(batch, name) for name in batch._dtypes}
    cols["flags"] = flags
    return type(batch)(**batch._scalars(), **cols)
