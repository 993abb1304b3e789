"""The per-item table as a study commits it (items.csv), and the head-to-head's summaries of it:
summary, breakdown by question kind, per-seed means, and the two standard plots."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.report import plots
from bench.report.tables import METRICS, QUALITY, seed_means, summarize, summarize_wide


# bulky or derivable columns left out of the committed per-item table (the prediction logs keep them)
ITEM_TABLE_DROP = ("contexts", "retrieved_ids", "retrieval_scores", "meta", "question")
LIST_COLUMNS = ("answers", "gold_ids")


def item_table(table: pd.DataFrame) -> pd.DataFrame:
    """The per-item table a study commits (items.csv): one row per (arm, seed, item) with the
    prediction, the gold answers and every score and timing; lists as JSON text."""
    out = table.drop(columns=[c for c in ITEM_TABLE_DROP if c in table.columns])
    for col in LIST_COLUMNS:
        if col in out:
            out[col] = out[col].map(lambda v: json.dumps(list(v)))
    return out


def load_item_table(path: Path) -> pd.DataFrame:
    # only an empty field is missing (a prediction "NA" stays text); CSV cannot tell an empty
    # string from a missing one, and text columns hold no missing values, so both read as ""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in table.columns:
        if not pd.api.types.is_numeric_dtype(table[col]):   # object or string dtype
            table[col] = table[col].fillna("")
    for col in LIST_COLUMNS:
        if col in table:
            table[col] = table[col].map(json.loads)
    return table


def primary_split(table: pd.DataFrame) -> str:
    splits = list(dict.fromkeys(table["split"]))
    return "test" if "test" in splits else splits[0]


def draw_plots(summary: pd.DataFrame, out_dir: Path, name: str, split: str) -> list[Path]:
    return [plots.grouped_bars(summary, out_dir / "quality.png", f"{name}: answer quality ({split} split)"),
            plots.latency_stages(summary, out_dir / "latency_stages.png", f"{name}: latency by stage")]


def head_to_head_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """summary.csv (primary split), per_seed.csv (what paired CIs need), breakdown.csv (every
    split and question kind) of a scored per-item table."""
    primary = table[table["split"] == primary_split(table)]
    per_seed = with_corpus_bleu(seed_means(primary, METRICS), primary)
    return {"summary.csv": summarize_wide(per_seed, [*METRICS, "corpus_bleu"]), "per_seed.csv": per_seed,
            "breakdown.csv": summarize(table, QUALITY, by=("arm", "split", "kind"))}


def with_corpus_bleu(per_seed: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """A per-seed table plus each (arm, seed)'s corpus BLEU over its items (not a mean of items)."""
    from bench.metrics.scores import corpus_bleu

    value = {key: corpus_bleu(g["prediction"].fillna("").tolist(), g["answers"].tolist())
             for key, g in table.groupby(["arm", "seed"], sort=False)}
    out = per_seed.copy()
    out["corpus_bleu"] = [value.get((a, s), float("nan")) for a, s in zip(out["arm"], out["seed"])]
    return out
