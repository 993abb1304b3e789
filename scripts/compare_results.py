"""Did a rerun reproduce the tables? Compares every CSV two results folders share, leaving out what
is measured time (and what is priced or sized from it), so only what the arms answered and how it
scored is compared: per file `same`, or the columns (or, in a long table, the metrics) that differ,
with how many rows and by how much; for a per-item table also the predictions that differ per arm.

Left out: columns and metric rows named like a timing or a price (t_*, *seconds*, *_s, *_ms*, qps,
throughput, load*, written*, *cost*, *usd*, break_even*, *bytes*, disk_mb, cached/reused flags
and cache keys, train_machine_share), and results/perf. Numbers within --tolerance (1e-6: the
embedder's similarities move in the last bits between runs) count as equal; a missing value
equals a missing value. A file in one folder only, or with other columns, is
listed as such. Exit status 0 when every shared file is the same, 1 otherwise.

Run: .venv/bin/python scripts/compare_results.py <rerun>/results results [--tolerance 1e-6]
(e.g. a fresh clone's `make all` against the committed results, or a Ray run against a local one).
Whether two runs differ beyond chance (two models, two configs) is `python -m bench compare A B`:
per-arm differences with paired intervals; this asks whether they are the same table at all.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

TIMING = re.compile(r"^t_|seconds|_s$|_ms(?:$|_)|qps|throughput|^load|written|cost|usd|break_even|bytes|"
                    r"disk_mb|_cached$|_reused$|adapter_key|machine_share|^collection_same$", re.I)


def compared_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if not TIMING.search(str(c))]


def science(df: pd.DataFrame) -> pd.DataFrame:
    """The table without its timing columns, and without its timing rows in a long table (one row
    per metric: summary.csv and the like)."""
    if "metric" in df.columns:
        df = df[~df["metric"].astype(str).str.contains(TIMING)].reset_index(drop=True)
    return df[compared_columns(df)]


def _strings(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "<missing>").astype(str)


def differences(a: pd.DataFrame, b: pd.DataFrame, tolerance: float) -> list[str]:
    """What differs between two tables of the same shape and columns, one phrase per column."""
    # a CSV's last printed digit apart is `tolerance` plus float noise (0.123457 - 0.123456 is
    # 1.000000000001e-06): within a part in a million of the tolerance counts as within it
    tolerance *= 1 + 1e-6
    out = []
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y) \
                and not pd.api.types.is_bool_dtype(x):
            d = (x.astype(float) - y.astype(float)).abs()
            bad = (d > tolerance) | (x.isna() != y.isna())
            if bad.any():
                out.append(f"{col}: {int(bad.sum())} rows, max |d| {d[bad].max():.3g}")
        else:
            bad = _strings(x).values != _strings(y).values
            if bad.any():
                out.append(f"{col}: {int(bad.sum())} rows")
    if "metric" in a.columns and out:   # name the metrics, not just the value columns
        rows = pd.Series(False, index=a.index)
        for col in ("mean", "value"):
            if col in a.columns:
                rows |= (a[col].astype(float) - b[col].astype(float)).abs().gt(tolerance)
        names = sorted(set(a.loc[rows, "metric"].astype(str)))
        if names:
            out.append(f"metrics: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
    return out


def predictions_by_arm(a: pd.DataFrame, b: pd.DataFrame) -> str:
    if not {"prediction", "arm"} <= set(a.columns):
        return ""
    bad = _strings(a["prediction"]).values != _strings(b["prediction"]).values
    if not bad.any():
        return ""
    per_arm = a[bad].groupby("arm").size()
    return "predictions differ: " + ", ".join(f"{arm} {n} of {int((a['arm'] == arm).sum())}"
                                              for arm, n in per_arm.items())


def _tables(folder: Path) -> set[Path]:
    """The CSVs under `folder`, relative to it, results/perf's timings left out."""
    return {p.relative_to(folder) for p in folder.glob("**/*.csv") if "perf" not in p.relative_to(folder).parts}


def compare(rerun: Path, reference: Path, tolerance: float = 1e-6) -> tuple[list[str], bool]:
    """(one line per file, whether every shared file is the same)."""
    lines, same = [], True
    ours, theirs = _tables(rerun), _tables(reference)
    for rel in sorted(ours | theirs):
        if rel not in ours or rel not in theirs:
            lines.append(f"{rel}: only in {rerun if rel in ours else reference}")
            continue
        a, b = pd.read_csv(rerun / rel), pd.read_csv(reference / rel)
        a, b = science(a), science(b)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            extra = sorted(set(a.columns) ^ set(b.columns))
            lines.append(f"{rel}: other columns or rows ({len(a)} x {len(a.columns)} against "
                         f"{len(b)} x {len(b.columns)}{'; columns in one only: ' + ', '.join(extra) if extra else ''})")
            same = False
            continue
        found = differences(a, b, tolerance)
        by_arm = predictions_by_arm(a, b)
        same &= not found
        lines.append(f"{rel}: " + ("same" if not found else "; ".join(found + ([by_arm] if by_arm else []))))
    return lines, same


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rerun", type=Path)
    p.add_argument("reference", type=Path)
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest numeric difference counted as equal")
    args = p.parse_args(argv)
    for folder in (args.rerun, args.reference):
        if not folder.is_dir():
            print(f"error: {folder}: not a folder", file=sys.stderr)
            return 2
    lines, same = compare(args.rerun, args.reference, args.tolerance)
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
