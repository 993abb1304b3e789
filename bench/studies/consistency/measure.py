"""consistency, the measuring half: every arm on every paraphrase item, once per temperature,
through the executor; the per-paraphrase answers become per-question agreement (group_table) and
per-(arm, seed, temperature, split) cells (cells.csv) here.

Agreement across a question's wordings is a study-level metric (bench/metrics/study.py, group
`consistency`), computed here per question.
"""

from __future__ import annotations

import json
import math
import time

import pandas as pd

from bench.metrics.study import agree_all, pairwise_agreement
from bench.config import with_changes
from bench.studies.consistency.read import CELL_KEYS, t_label


def _top_chunk(retrieved_ids) -> tuple | None:
    if retrieved_ids is None or (isinstance(retrieved_ids, float) and math.isnan(retrieved_ids)):
        return None
    return tuple(retrieved_ids[0]) if len(retrieved_ids) else ()


def group_table(items: pd.DataFrame) -> pd.DataFrame:
    """Per-paraphrase rows (arm, arm_kind, seed, temperature, split, group, kind, prediction,
    exact_match, abstained, retrieved_ids, gold_ids) -> one row per question and cell.
    A table without `split` is taken as all 'test'."""
    if "split" not in items:
        items = items.assign(split="test")
    keys = [*CELL_KEYS, "group"]
    rows = []
    for key, g in items.groupby(keys, sort=False):
        predictions = list(g["prediction"])
        em = g["exact_match"].astype(float)
        row = dict(zip(keys, key), kind=g["kind"].iloc[0], n_paraphrases=len(g),
                   agree_all=agree_all(predictions), pairwise_agree=pairwise_agreement(predictions),
                   all_correct=float(em.min() == 1.0), any_correct=float(em.max() == 1.0),
                   exact_match=float(em.mean()), abstained=float(g["abstained"].astype(float).mean()))
        tops = [_top_chunk(r) for r in g["retrieved_ids"]] if "retrieved_ids" in g else [None]
        if any(t is None for t in tops):
            row.update(top_chunk_differs=math.nan, gold_hit_differs=math.nan)
        else:
            hits = {bool(set(t) & set(gold)) for t, gold in zip(tops, g["gold_ids"])}
            row.update(top_chunk_differs=float(len(set(tops)) > 1), gold_hit_differs=float(len(hits) > 1))
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_where(values: pd.Series, mask: pd.Series) -> float:
    return float(values[mask].mean()) if mask.any() else math.nan


def cell_table(groups: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, seed, temperature, split): the question-level metrics averaged."""
    rows = []
    for key, g in groups.groupby(CELL_KEYS, sort=False):
        differs = g["top_chunk_differs"]
        retrieves = differs.notna().all()
        rows.append({
            **dict(zip(CELL_KEYS, key)), "n_groups": len(g),
            "agree_all": g["agree_all"].mean(), "pairwise_agree": g["pairwise_agree"].mean(),
            "all_correct": g["all_correct"].mean(),
            "agree_given_any_correct": _mean_where(g["agree_all"], g["any_correct"] == 1),
            "exact_match": g["exact_match"].mean(), "abstained": g["abstained"].mean(),
            "top_chunk_differs": differs.mean() if retrieves else math.nan,
            "gold_hit_differs": g["gold_hit_differs"].mean() if retrieves else math.nan,
            "agree_same_top": _mean_where(g["agree_all"], differs == 0) if retrieves else math.nan,
            "agree_diff_top": _mean_where(g["agree_all"], differs == 1) if retrieves else math.nan,
        })
    return pd.DataFrame(rows)


def items_table(table: pd.DataFrame, temperature: float) -> pd.DataFrame:
    """The scored per-item table with its temperature, question (group) and wording number."""
    meta = table["meta"].map(json.loads)
    return table.assign(temperature=float(temperature), group=meta.map(lambda m: m["group"]),
                        paraphrase=meta.map(lambda m: m["paraphrase"]))


def run_config(cfg, temperature: float):
    """The experiment as run at one temperature (the sampling temperature joins the job keys)."""
    return with_changes(cfg, temperature=float(temperature))


def measure(run) -> dict[str, pd.DataFrame]:
    from bench.runner import run_experiment

    parts = []
    for t in sorted(run.settings.temperatures):
        start = time.perf_counter()
        table, _ = run_experiment(run_config(run.cfg, t), run.out / "runs", run.cache_dir, progress=run.progress)
        parts.append(items_table(table, t))
        run.timings[t_label(t)] = round(time.perf_counter() - start, 1)
    return {"cells.csv": cell_table(group_table(pd.concat(parts, ignore_index=True)))}
