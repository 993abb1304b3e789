"""Write a results folder from a scored table: items.parquet, summary.csv, breakdown.csv,
cells.csv, plots and a manifest. Every file is written to a temporary name and renamed, so an
interrupted write never leaves a half-written result behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.io import atomic_write
from bench.report import plots
from bench.report.manifest import write_manifest
from bench.report.tables import METRICS, QUALITY, seed_means, summarize


def save_table(table: pd.DataFrame, path: Path) -> None:
    flat = table.copy()
    for col in ("answers", "gold_ids", "contexts", "retrieved_ids", "retrieval_scores"):
        if col in flat:   # nested lists -> JSON text: parquet-safe and readable in any tool
            flat[col] = flat[col].map(json.dumps)
    atomic_write(path, lambda p: flat.to_parquet(p, index=False))


def load_table(path: Path) -> pd.DataFrame:
    table = pd.read_parquet(path)
    for col in ("answers", "gold_ids", "contexts", "retrieved_ids", "retrieval_scores"):
        if col in table:
            table[col] = table[col].map(json.loads)
    return table


def primary_split(table: pd.DataFrame) -> str:
    splits = list(dict.fromkeys(table["split"]))
    return "test" if "test" in splits else splits[0]


def draw_plots(summary: pd.DataFrame, out_dir: Path, name: str, split: str) -> list[Path]:
    return [plots.grouped_bars(summary, out_dir / "quality.png", f"{name}: answer quality ({split} split)"),
            plots.latency_stages(summary, out_dir / "latency_stages.png", f"{name}: latency by stage")]


def write_outputs(cfg, table: pd.DataFrame, cells: pd.DataFrame, out_dir: Path,
                  timings: dict) -> pd.DataFrame:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_table(table, out_dir / "items.parquet")
    split = primary_split(table)
    summary = summarize(table[table["split"] == split], METRICS)
    per_seed = seed_means(table[table["split"] == split], METRICS)   # what paired CIs need
    breakdown = summarize(table, QUALITY, by=("arm", "split", "kind"))
    atomic_write(out_dir / "summary.csv", lambda p: summary.to_csv(p, index=False, float_format="%.6g"))
    atomic_write(out_dir / "breakdown.csv", lambda p: breakdown.to_csv(p, index=False, float_format="%.6g"))
    atomic_write(out_dir / "per_seed.csv", lambda p: per_seed.to_csv(p, index=False, float_format="%.6g"))
    atomic_write(out_dir / "cells.csv", lambda p: cells.to_csv(p, index=False))
    draw_plots(summary, out_dir, cfg.name, split)
    write_manifest(out_dir / "manifest.json", cfg.name, cfg.to_json(), cfg.source, timings,
                   {"items_per_cell": table.groupby(["arm", "seed"]).size().max(),
                    "summary_split": split})
    return summary
