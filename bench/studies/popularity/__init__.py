"""popularity: accuracy per popularity bucket of the entity a question is about, per arm.

Claim tested (Soudani et al. 2024): RAG helps the least popular facts most. An entity's
popularity is the number of documents that mention it (the world draws it from a Zipf-like
law: most people have one document, a few have many). Every answerable test question is put
in the bucket of its person's popularity; per (arm, seed, bucket) exact match and token F1 are
averaged, then means over seeds with 95% t-intervals. The arms and their settings are the
accuracy experiment's, so its LoRA adapters come from the cache.

measure.py runs the arms (model code); read.py turns the saved items.csv into the tables,
claims, plot and report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.config import ConfigError
from bench.report.outputs import load_item_table
from bench.studies.popularity import read
from bench.studies.registry import Study, register_study


@dataclass(frozen=True)
class Settings:
    bucket_starts: tuple[int, ...] = (1, 2, 3, 5)   # buckets [1], [2], [3, 4], [5, ...]
    min_items_per_bucket: int = 20                  # per seed; fewer is flagged in the report

    def validate(self, where: str) -> None:
        starts = list(self.bucket_starts)
        if len(starts) < 2 or starts[0] != 1 or starts != sorted(set(starts)):
            raise ConfigError(f"{where}.bucket_starts: expected at least two increasing lower bounds "
                              f"starting at 1, got {starts}")


@register_study("popularity")
class Popularity(Study):
    order = 100
    Settings = Settings
    topics = (("popularity", "RAG helps rare (less popular) facts most (Soudani et al. 2024)"),)
    summary = "accuracy per entity-popularity bucket, per arm"
    measure = "bench.studies.popularity.measure"
    base_tables = (read.ITEMS_CSV, "cells.csv", "world_popularity.csv")

    def check(self, cfg, settings, source):
        if cfg.data.world is None:
            raise ConfigError(f"{source}: data.world: the popularity study needs the synthetic world "
                              "(popularity = documents per person)")

    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        seeds = read.seed_metrics(load_item_table(folder / read.ITEMS_CSV), run.settings.bucket_starts)
        buckets = read.bucket_summary(seeds)
        return {read.SEEDS_CSV: seeds, read.BUCKETS_CSV: buckets, "summary.csv": read.long_summary(buckets)}

    def claims(self, folder: Path):
        return read.claims(folder)

    def redraw(self, folder: Path):
        return read.redraw(folder)

    def report(self, folder: Path, run) -> str:
        seeds = pd.read_csv(folder / read.SEEDS_CSV, dtype={"bucket": str})
        return read.report_md(run.cfg, run.settings, run.quick, seeds, read.bucket_summary(seeds),
                              pd.read_csv(folder / "world_popularity.csv"), pd.read_csv(folder / "cells.csv"),
                              read.claims(folder), run.timings)
