"""The table toolkit every study reads its results with: summaries with 95% intervals over seeds,
seed-paired differences, lookups, and the first arm of a kind.

The unit of a confidence interval is the seed: item scores are first averaged within their
(arm, seed) cell, then the cell means get a Student-t interval, so n is the number of seeds.
Two shapes of per-seed table occur and both are served:
- wide: one row per (keys..., seed), one column per metric (`seed_means` makes it);
- long: one row per (keys..., seed, metric) with the number in `value`.
A metric that is not applicable (all NaN, e.g. faithfulness without retrieval) gets a NaN mean.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

QUALITY = ["exact_match", "contains", "token_f1", "rouge1", "rouge2", "rougeL", "bleu", "semantic_similarity",
           "hallucinated", "abstained", "faithfulness", "recall_at_k"]
COST = ["t_embed", "t_search", "t_prompt", "t_generate", "t_total", "prompt_tokens",
        "completion_tokens"]
METRICS = QUALITY + COST
SUMMARY_COLUMNS = ["metric", "mean", "ci_low", "ci_high", "n"]
NAN4 = (math.nan, math.nan, math.nan, 0)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and t-interval of independent values (NaNs dropped). One value has no interval (NaN
    bounds: no verdict rests on it); equal values have a zero-width one."""
    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan"), 0
    m = float(v.mean())
    if len(v) == 1:
        return m, float("nan"), float("nan"), 1
    if float(v.std()) == 0.0:
        return m, m, m, len(v)
    half = float(stats.t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half, len(v)


def _row(keys: dict, metric: str, stat) -> dict:
    m, lo, hi, n = stat
    return {**keys, "metric": metric, "mean": m, "ci_low": lo, "ci_high": hi, "n": n}


# -- wide per-seed tables ----------------------------------------------------------------------

def seed_means(table: pd.DataFrame, metrics=METRICS, by=("arm",)) -> pd.DataFrame:
    """Per-item table -> wide per-seed table: the mean of each metric per (by..., seed)."""
    cols = [m for m in metrics if m in table.columns]
    return table.groupby([*by, "seed"], sort=False)[cols].mean().reset_index()


def summarize_wide(per_seed: pd.DataFrame, metrics, by=("arm",), name=lambda m: m) -> pd.DataFrame:
    """Wide per-seed table -> long summary (by..., metric, mean, ci_low, ci_high, n); `name`
    renames a metric in the output (e.g. prefixes a split)."""
    rows = []
    for keys, group in per_seed.groupby(list(by), sort=False):
        keys = dict(zip(by, keys if isinstance(keys, tuple) else (keys,)))
        for metric in [m for m in metrics if m in per_seed.columns]:
            rows.append(_row(keys, name(metric), mean_ci(group[metric].tolist())))
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS])


def summarize(table: pd.DataFrame, metrics=METRICS, by=("arm",)) -> pd.DataFrame:
    """Per-item table -> long summary, seed as the unit."""
    return summarize_wide(seed_means(table, metrics, by), metrics, by)


# -- long per-seed tables ----------------------------------------------------------------------

def summarize_long(seeds: pd.DataFrame, by="arm", extra=None) -> pd.DataFrame:
    """Long per-seed rows (by..., seed, metric, value) -> (by..., metric, mean, ci_low, ci_high,
    n); `by` is a column or a tuple of them; `extra` maps a column name to a function of the
    group (e.g. items per seed)."""
    by = (by,) if isinstance(by, str) else tuple(by)
    rows = []
    for keys, g in seeds.groupby([*by, "metric"], sort=False):
        rows.append({**_row(dict(zip(by, keys[:-1])), keys[-1], mean_ci(g["value"].tolist())),
                     **{col: f(g) for col, f in (extra or {}).items()}})
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS, *(extra or {})])


def seed_ci(per_seed: pd.DataFrame, key, metric: str, by: str = "arm"):
    """Mean and 95% CI over the seeds of one arm (or other key) in a wide per-seed table."""
    return mean_ci(per_seed.loc[per_seed[by] == key, metric].tolist())


# -- seed-paired differences -------------------------------------------------------------------

def paired(per_seed: pd.DataFrame, a, b, metric: str, by: str = "arm"):
    """Mean and 95% CI over seeds of (a - b) on one metric, paired by seed; NAN4 when a or b is
    missing. Reads a wide per-seed table (a column per metric) or a long one (metric, value)."""
    if "value" in per_seed and metric not in per_seed:
        p = per_seed[per_seed["metric"] == metric].pivot_table(index="seed", columns=by, values="value",
                                                               dropna=False)
    else:
        p = per_seed.pivot_table(index="seed", columns=by, values=metric, dropna=False)
    if a not in p or b not in p:
        return NAN4
    return mean_ci((p[a] - p[b]).dropna().tolist())


def paired_difference(table: pd.DataFrame, a: str, b: str, metric: str):
    """`paired` on a per-item table (seed means first); None when an arm is missing."""
    per_seed = seed_means(table, [metric])
    if not {a, b} <= set(per_seed["arm"]):
        return None
    return paired(per_seed, a, b, metric)


# -- lookups -----------------------------------------------------------------------------------

def ci_of(summary: pd.DataFrame, key, metric: str, by: str = "arm") -> tuple[float, float, float, int]:
    """(mean, ci_low, ci_high, n) of one summary row; NAN4 when there is none."""
    hit = summary[(summary[by] == key) & (summary["metric"] == metric)]
    if not len(hit):
        return NAN4
    r = hit.iloc[0]
    return float(r["mean"]), float(r["ci_low"]), float(r["ci_high"]), int(r["n"])


def lookup(summary: pd.DataFrame, key, metric: str, col: str = "mean", by: str = "arm") -> float:
    hit = summary[(summary[by] == key) & (summary["metric"] == metric)]
    return float(hit[col].iloc[0]) if len(hit) else float("nan")


def arm_of_kind(df: pd.DataFrame, kind: str, kind_col: str = "arm_kind") -> str | None:
    """The first arm (in table order) of a registered kind, or None."""
    hit = df.loc[df[kind_col] == kind, "arm"]
    return str(hit.iloc[0]) if len(hit) else None
