"""format, the measuring half: every arm on the test and train items through the executor; each
answer scored for the format here (valid JSON, schema-valid, the value's exact match, the raw
output as a plain answer) and kept as per-(arm, split, seed) cells, the commonest failure
reasons per arm and a few sample outputs (cells.csv, reasons.csv, examples.csv).

JSON and schema validity and the value's exact match are study-level metrics
(bench/metrics/study.py, group `format`, on bench/metrics/json_schema.py), computed here per item.
"""

from __future__ import annotations

import re

import pandas as pd

from bench.metrics.json_schema import assess
from bench.metrics.scores import exact_match
from bench.metrics.study import schema_valid, valid_json, value_em
from bench.studies.format.read import CELL_KEYS, METRICS

_JSON_DETAIL = re.compile(r": line \d+ column \d+ \(char \d+\)$")


def format_source(arm) -> str:
    """'fine-tuning' when the adapter is trained on JSON targets, 'prompt' when a custom
    template asks for it, 'none' otherwise."""
    training = getattr(arm.settings, "training", None)
    if training is not None and training.answer_format != "plain":
        return "fine-tuning"
    return "prompt" if arm.settings.template != "default" else "none"


def reason_class(reason: str) -> str:
    """A failure reason without its position detail, to count failures by kind."""
    return _JSON_DETAIL.sub("", reason) if reason else "conforms"


def score_items(items: pd.DataFrame, schema: dict, value_key: str) -> pd.DataFrame:
    """Per-item rows (prediction, answers) -> the format columns added."""
    rows = []
    for pred, answers in zip(items["prediction"], items["answers"]):
        rows.append({"valid_json": valid_json(pred), "schema_valid": schema_valid(pred, schema),
                     "value_em": value_em(pred, answers, schema, value_key),
                     "em_plain": exact_match(pred, answers),
                     "reason": reason_class(assess(pred, schema, value_key).reason)})
    return pd.concat([items.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def cell_table(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, split, seed): the item metrics averaged (a table without `split` is
    taken as all 'test')."""
    if "split" not in scored:
        scored = scored.assign(split="test")
    cells = scored.groupby(CELL_KEYS, sort=False)[list(METRICS)].mean().reset_index()
    cells["n_items"] = scored.groupby(CELL_KEYS, sort=False).size().values
    return cells


def reason_table(scored: pd.DataFrame, arms) -> pd.DataFrame:
    """The three commonest failure reasons per arm (share of its items, both splits, all seeds),
    arms in config order."""
    reasons = (scored.groupby(["arm", "reason"], sort=False).size() / scored.groupby("arm", sort=False).size())
    reasons = reasons.rename("share").reset_index().sort_values(["arm", "share"], ascending=[True, False])
    reasons = reasons.groupby("arm", sort=False).head(3)
    order = {a.name: i for i, a in enumerate(arms)}
    return reasons.sort_values("arm", key=lambda c: c.map(order), kind="stable")


def example_table(scored: pd.DataFrame, per_arm: int) -> pd.DataFrame:
    """The first outputs of each arm and split in the first seed, for the report."""
    first = scored[scored["seed"] == scored["seed"].min()]
    examples = first.groupby(["arm", "split"], sort=False).head(per_arm)
    examples = examples.assign(gold=examples["answers"].map(lambda a: a[0] if len(a) else "unknown"))
    return examples[["arm", "split", "seed", "question", "gold", "prediction", "reason"]]


def adapter_timings(stats: pd.DataFrame) -> dict:
    """Training seconds of every distinct adapter the run used (as measured when it was
    trained) and how many were trained by this run rather than loaded from the cache."""
    if "adapter_key" not in stats:
        return {}
    a = stats.dropna(subset=["adapter_key"]).drop_duplicates("adapter_key")
    fresh = stats.dropna(subset=["adapter_key"])
    fresh = fresh[fresh["adapter_cached"] == False].drop_duplicates("adapter_key")  # noqa: E712
    return {"adapter_training_seconds": round(float(a["train_seconds"].sum()), 1),
            "adapters_used": int(len(a)), "adapters_trained_now": int(len(fresh))}


def measure(run) -> dict[str, pd.DataFrame]:
    from bench.runner import run_experiment

    cfg, s = run.cfg, run.settings
    table, stats = run_experiment(cfg, run.out / "runs", run.cache_dir, progress=run.progress)
    source = {a.name: format_source(a) for a in cfg.arms}
    scored = score_items(table.assign(format_source=table["arm"].map(source)), s.schema, s.value_key)
    run.timings.update(adapter_timings(stats))
    return {"cells.csv": cell_table(scored), "reasons.csv": reason_table(scored, cfg.arms),
            "examples.csv": example_table(scored, s.examples_per_arm)}
