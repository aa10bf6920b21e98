"""``tickserver bench validation``: the source-boundary checks, vectorised vs row by row.

``tickserver`` is :class:`tickserver.sources.validation.Validator` (numpy over the batch, a
per-row pass only around a suspicious jump); ``per-row`` is
:func:`reference_trades`, the same policies written as the obvious Python loop — the way a
feed handler usually validates, and the oracle the unit tests compare against. 200k trades
over 8 symbols, streamed in batches of 8, 1000 and 50000 through one validator: ``faults``
has 0.1 % bad prints, resends and late rows, ``clean`` has none. Figures are ns per event;
both implementations must keep exactly the same rows.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tickserver.benchmarks.harness import Report, measure
from tickserver.config import ValidationConfig

NAME = "validation"
HELP = "ns/event of source-boundary validation: vectorised vs a per-row Python loop"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of this benchmark."""
    p.add_argument("--repeat", type=int, default=5, help="runs (median reported)")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")


@dataclass
class _Sym:
    max_ts: int = -(2**63)
    last: tuple[int, float, float] | None = None
    ref_px: float = math.nan
    ref_ts: int = -(2**63)
    pend_px: float = math.nan
    pend_n: int = 0


def reference_trades(
    cfg: ValidationConfig,
    sym: NDArray[Any],
    ts: NDArray[Any],
    px: NDArray[Any],
    sz: NDArray[Any],
    state: dict[int, _Sym] | None = None,
) -> tuple[list[bool], list[bool]]:
    """The validation policies as a plain loop: (kept, flagged) per row.

    ``state`` carries per-symbol state across calls (batches).
    """
    st_all = {} if state is None else state
    band = cfg.max_jump_pct / 100.0
    max_age = int(cfg.jump_reference_max_age_s * 1e9)
    keep: list[bool] = []
    flag: list[bool] = []
    for s, t, p, z in zip(sym.tolist(), ts.tolist(), px.tolist(), sz.tolist(), strict=True):
        if not (math.isfinite(p) and p > 0) or not (math.isfinite(z) and z >= 0):
            keep.append(False)
            flag.append(False)
            continue
        st = st_all.setdefault(s, _Sym())
        if cfg.out_of_order == "drop" and t < st.max_ts:
            keep.append(False)
            flag.append(False)
            continue
        st.max_ts = max(st.max_ts, t)
        if cfg.duplicates == "drop" and st.last == (t, p, z):
            keep.append(False)
            flag.append(False)
            continue
        st.last = (t, p, z)
        ok, flagged = True, False
        if cfg.jump_policy != "off":
            if math.isnan(st.ref_px) or t - st.ref_ts > max_age or abs(p / st.ref_px - 1) <= band:
                st.ref_px, st.ref_ts, st.pend_n = p, t, 0
            else:
                if st.pend_n > 0 and abs(p / st.pend_px - 1) <= band:
                    st.pend_n += 1
                else:
                    st.pend_px, st.pend_n = p, 1
                if st.pend_n >= cfg.jump_confirm:
                    st.ref_px, st.ref_ts, st.pend_n = p, t, 0
                elif cfg.jump_policy == "reject":
                    ok = False
                else:
                    flagged = True
        else:
            st.ref_px, st.ref_ts = p, t
        keep.append(ok)
        flag.append(flagged)
    return keep, flag


def make_batch(n: int, seed: int = 1) -> dict[str, NDArray[Any]]:
    """``n`` trades over 8 symbols: a random walk with ~0.1 % bad prints, resends and
    late rows."""
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, 8, n).astype(np.uint32)
    ts = 1_795_530_600_000_000_000 + np.cumsum(rng.integers(1, 1_000_000, n))
    px = np.round(100.0 * (1 + 0.1 * sym) + np.cumsum(rng.normal(0, 0.01, n)), 2)
    sz = rng.integers(1, 500, n).astype(np.float64)
    k = max(1, n // 1000)
    bad = rng.choice(n, k, replace=False)
    px[bad[: k // 3 + 1]] *= 100.0  # unit slips
    late = bad[k // 3 + 1 : 2 * k // 3 + 1]
    ts[late] -= 5_000_000_000
    dup = bad[2 * k // 3 + 1 :]
    dup = dup[dup > 0]
    ts[dup], px[dup], sz[dup], sym[dup] = ts[dup - 1], px[dup - 1], sz[dup - 1], sym[dup - 1]
    return {"sym": sym, "ts": ts, "px": px, "sz": sz}


def run(args: argparse.Namespace) -> Report:
    """Stream the same events through both implementations in batches of several sizes."""
    from tickserver.events import trades_from_columns
    from tickserver.sources.validation import Validator

    cfg = ValidationConfig()
    report = Report(NAME, "ns/event", baseline="tickserver")
    total = 20_000 if args.quick else 200_000
    b = make_batch(total)
    clean = make_batch(total, seed=2)  # the same symbols and sizes, without faults
    clean["ts"] = 1_795_530_600_000_000_000 + np.arange(total, dtype=np.int64) * 1_000
    clean["px"] = np.round(100.0 * (1 + 0.1 * clean["sym"]) + np.cumsum(np.full(total, 1e-4)), 4)
    checks = {}
    for label, data in (("faults", b), ("clean", clean)):
        for n in (8, 1_000, 50_000):
            batches = [
                trades_from_columns(
                    "bench",
                    data["sym"][i : i + n],
                    data["ts"][i : i + n],
                    data["px"][i : i + n],
                    data["sz"][i : i + n],
                    np.arange(i, min(i + n, total)),
                )
                for i in range(0, total, n)
            ]
            case = f"{label}, batch={n}"
            kept: list[Any] = []

            def vectorised(batches: list[Any] = batches, kept: list[Any] = kept) -> None:
                v = Validator("bench", cfg)
                kept[:] = [v.trades(x).seq for x in batches]

            def per_row(data: dict[str, Any] = data, n: int = n) -> None:
                state: dict[int, _Sym] = {}
                for i in range(0, total, n):
                    sl = slice(i, i + n)
                    reference_trades(
                        cfg, data["sym"][sl], data["ts"][sl], data["px"][sl], data["sz"][sl], state
                    )

            report.add("tickserver", case, measure(vectorised, ops=total, repeat=args.repeat))
            report.add("per-row", case, measure(per_row, ops=total, repeat=args.repeat))
            ref_keep, _ = reference_trades(cfg, data["sym"], data["ts"], data["px"], data["sz"])
            same = np.array_equal(np.concatenate(kept), np.flatnonzero(ref_keep))
            checks[case] = f"{int(np.sum(ref_keep))}/{total} kept; same rows: {same}"
    report.extra["checks"] = checks
    return report
