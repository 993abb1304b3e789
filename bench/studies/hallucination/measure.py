"""hallucination, the measuring half: every arm on the test and train items, then the `lora` arm
retrained for each of `gekhman_steps`, through the executor; the per-item table becomes per
(arm, seed) rates here (seeds.csv, gekhman_seeds.csv), with citation accuracy computed per item.

Citation accuracy is a study-level metric (bench/metrics/study.py, group `citation`): computed
here per item, not in every scored table.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter

import pandas as pd

from bench.metrics.study import citation_accuracy, citation_na_reason
from bench.studies.hallucination import gekhman_arm
from bench.studies.hallucination.read import sweep_label
from bench.config import with_lora_steps

UNANSWERABLE_KINDS = ("unknown_entity", "missing_attribute")


# -- per (arm, seed) rates ---------------------------------------------------------------------

# name -> (item subset, per-item column, what it means)
RATES: dict[str, tuple[str, str, str]] = {
    "hallucination_rate": ("test", "hallucinated", "all test questions"),
    "hallucination_answerable": ("answerable", "hallucinated", "held-out answerable facts"),
    "hallucination_unanswerable": ("unanswerable", "hallucinated", "unanswerable questions"),
    "hallucination_unknown_entity": ("unknown_entity", "hallucinated", "questions about unknown people"),
    "hallucination_missing_attribute": ("missing_attribute", "hallucinated", "questions about missing attributes"),
    "hallucination_trained": ("trained", "hallucinated", "train-split facts (LoRA's QA training data)"),
    "abstention_unanswerable": ("unanswerable", "abstained", "unanswerable questions"),
    "abstention_answerable": ("answerable", "abstained", "held-out answerable facts"),
    "exact_match_answerable": ("answerable", "exact_match", "held-out answerable facts"),
    "exact_match_trained": ("trained", "exact_match", "train-split facts"),
    "faithfulness": ("test", "faithfulness", "all test questions the arm answered"),
    "citation_accuracy": ("answerable", "citation_accuracy", "held-out answerable facts"),
}
NA_REASON_COLUMN = {"faithfulness": "faithfulness_na", "citation_accuracy": "citation_na"}
GEKHMAN_METRICS = ["hallucination_answerable", "hallucination_unanswerable", "abstention_unanswerable",
                   "hallucination_trained", "exact_match_trained", "exact_match_answerable"]


def _subsets(cell: pd.DataFrame) -> dict[str, pd.DataFrame]:
    test = cell[cell["split"] == "test"]
    return {"test": test,
            "answerable": test[test["kind"] == "answerable"],
            "unanswerable": test[test["kind"].isin(UNANSWERABLE_KINDS)],
            "unknown_entity": test[test["kind"] == "unknown_entity"],
            "missing_attribute": test[test["kind"] == "missing_attribute"],
            "trained": cell[(cell["split"] == "train") & (cell["kind"] == "answerable")]}


def add_citation(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["citation_accuracy"] = [citation_accuracy(r, g) for r, g in zip(table["retrieved_ids"], table["gold_ids"])]
    table["citation_na"] = [citation_na_reason(r, g) for r, g in zip(table["retrieved_ids"], table["gold_ids"])]
    return table


def seed_metrics(table: pd.DataFrame, metrics=tuple(RATES)) -> pd.DataFrame:
    """Scored per-item table -> one row per (arm, seed, metric): value, items it averages over,
    and na_reason (why the value is NaN, "" when it is a number)."""
    if {"retrieved_ids", "gold_ids"} <= set(table.columns):   # recomputed: a pure function of the row
        table = add_citation(table)
    rows = []
    for (arm, seed), cell in table.groupby(["arm", "seed"], sort=False):
        kind = cell["arm_kind"].iloc[0] if "arm_kind" in cell else arm
        subsets = _subsets(cell)
        for name in metrics:
            subset, column, _ = RATES[name]
            items = subsets[subset]
            values = items[column].astype(float)
            defined = values.dropna()
            reason = ""
            if not len(items):
                reason = f"no {subset} items evaluated"
            elif not len(defined):
                reasons = items[NA_REASON_COLUMN[column]] if column in NA_REASON_COLUMN else []
                reason = Counter(reasons).most_common(1)[0][0] if len(reasons) else "undefined"
            rows.append({"arm": arm, "arm_kind": kind, "seed": int(seed), "metric": name,
                         "value": float(defined.mean()) if len(defined) else math.nan,
                         "items": int(len(defined)), "na_reason": reason})
    return pd.DataFrame(rows, columns=["arm", "arm_kind", "seed", "metric", "value", "items", "na_reason"])


# -- the Gekhman sweep -------------------------------------------------------------------------

def sweep_plan(cfg, s, arm):
    """(config of the sweep cells still to run, steps reused from the main run's arm)."""
    base = arm.settings.lora.steps
    reuse = base in s.gekhman_steps and set(s.gekhman_seeds) <= set(cfg.seeds)
    arms = tuple(with_lora_steps(arm, st, sweep_label(arm.name, st)) for st in s.gekhman_steps
                 if not (reuse and st == base))
    return dataclasses.replace(cfg, arms=arms, seeds=tuple(s.gekhman_seeds)), base if reuse else None


def _with_steps(cells: pd.DataFrame, cfg) -> pd.DataFrame:
    """The per-job stats with each job's LoRA steps (None for an arm that does not train)."""
    return cells.assign(steps=[a.settings.lora.steps if hasattr(a.settings, "lora") else None
                               for a in cfg.arms for _ in cfg.seeds])


def measure(run) -> dict[str, pd.DataFrame]:
    from bench.runner import run_experiment

    cfg, s = run.cfg, run.settings
    arm = gekhman_arm(cfg, s, run.config)
    sweep_cfg, reused = sweep_plan(cfg, s, arm)
    start = time.perf_counter()
    table, cells = run_experiment(cfg, run.out, run.cache_dir, progress=run.progress)
    t_main = time.perf_counter() - start
    parts, sweep_cells = [], pd.DataFrame()
    if sweep_cfg.arms:
        sweep_table, sweep_cells = run_experiment(sweep_cfg, run.out, run.cache_dir, progress=run.progress)
        parts.append(sweep_table)
        sweep_cells = _with_steps(sweep_cells, sweep_cfg)
    if reused is not None:
        parts.append(table[(table["arm"] == arm.name) & table["seed"].isin(s.gekhman_seeds)]
                     .assign(arm=sweep_label(arm.name, reused)))
    steps_of = {sweep_label(arm.name, st): st for st in s.gekhman_steps}
    g = seed_metrics(pd.concat(parts, ignore_index=True), GEKHMAN_METRICS)
    g.insert(0, "steps", g["arm"].map(steps_of))
    g = g.drop(columns=["arm", "arm_kind"]).sort_values(["steps", "seed"], kind="stable")
    run.timings.update(main_run=round(t_main, 1),
                       gekhman_sweep=round(time.perf_counter() - start - t_main, 1))
    return {"seeds.csv": seed_metrics(table), "gekhman_seeds.csv": g,
            "cells.csv": pd.concat([_with_steps(cells, cfg), sweep_cells], ignore_index=True)}
