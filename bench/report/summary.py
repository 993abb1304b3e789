"""Per-item table -> long-form summary (arm, metric, mean, ci_low, ci_high, n) with 95% CIs.

The unit of the CI is the seed: every item score is first averaged within its (arm, seed)
cell, then the cell means are averaged with a Student-t interval, so n is the number of seeds.
A metric that is not applicable to an arm (all NaN, e.g. faithfulness without retrieval)
gets a NaN mean and a reason, not a number.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

QUALITY = ["exact_match", "token_f1", "rouge1", "rouge2", "rougeL", "bleu", "semantic_similarity",
           "hallucinated", "abstained", "faithfulness", "recall_at_k"]
COST = ["t_embed", "t_search", "t_prompt", "t_generate", "t_total", "prompt_tokens",
        "completion_tokens"]
METRICS = QUALITY + COST


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and t-interval of independent values (NaNs dropped); one value -> a zero-width CI."""
    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan"), 0
    m = float(v.mean())
    if len(v) == 1 or float(v.std()) == 0.0:
        return m, m, m, len(v)
    half = float(stats.t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half, len(v)


def seed_means(table: pd.DataFrame, metrics=METRICS, by=("arm",)) -> pd.DataFrame:
    cols = [m for m in metrics if m in table.columns]
    return table.groupby([*by, "seed"], sort=False)[cols].mean().reset_index()


def summarize(table: pd.DataFrame, metrics=METRICS, by=("arm",)) -> pd.DataFrame:
    rows = []
    per_seed = seed_means(table, metrics, by)
    for keys, group in per_seed.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for metric in [m for m in metrics if m in per_seed.columns]:
            mean, lo, hi, n = mean_ci(group[metric].tolist())
            rows.append({**dict(zip(by, keys)), "metric": metric, "mean": mean, "ci_low": lo,
                         "ci_high": hi, "n": n})
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "ci_low", "ci_high", "n"])


def paired_difference(table: pd.DataFrame, a: str, b: str, metric: str):
    """Mean and CI over seeds of (arm a - arm b) on one metric, paired by seed."""
    per_seed = seed_means(table, [metric]).pivot(index="seed", columns="arm", values=metric)
    if a not in per_seed or b not in per_seed:
        return None
    return mean_ci((per_seed[a] - per_seed[b]).dropna().tolist())


def lookup(summary: pd.DataFrame, arm: str, metric: str) -> float:
    hit = summary[(summary["arm"] == arm) & (summary["metric"] == metric)]
    return float(hit["mean"].iloc[0]) if len(hit) else float("nan")
