"""latency: per-query latency of every arm, stage by stage, at batch size 1 and N.

Claim tested: retrieval adds latency ("typically 100-300 ms") while a fine-tuned model answers
at once. Each batch size is one runner pass (its own prediction logs, so a rerun replays the
original timings). Batch size 1 is what one user waits; batch size N is amortised per query.
The adapted arms are served a second time with the adapter merged into the weights, as deployed
(`<arm>_merged`): peft's unmerged layers add per-layer work at answer time, and the verdicts
count the merged ones where they were measured. Both claims are judged on seed-paired
differences of the mean total latency per query at the smallest batch size.

measure.py runs the passes through the executor; read.py turns the saved items.csv and
summary.csv into the wide table, claims, plot and report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.config import ConfigError
from bench.studies.latency import read
from bench.studies.registry import Study, register_study


@dataclass(frozen=True)
class Settings:
    batch_sizes: tuple[int, ...] = (1, 64)
    # also serve each adapted arm with its adapter merged into the weights, as deployed
    # (label `<arm>_merged`): peft's unmerged layers add per-layer work at answer time
    serve_merged: bool = True

    def validate(self, where: str) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"{where}.batch_sizes: expected a list of sizes >= 1")


@register_study("latency")
class Latency(Study):
    order = 20
    timed = True      # its jobs' wall times are the measurement: run here, not on workers
    Settings = Settings
    topics = (("latency", "retrieval adds latency; fine-tuned models have no retrieval step"),)
    summary = "per-query latency of every arm by stage, batch size 1 and 64"
    measure = "bench.studies.latency.measure"
    # the summary is a base table: it is taken from the unrounded timings, which items.csv of
    # the committed results holds to 6 significant digits only
    base_tables = (read.ITEMS_CSV, read.SUMMARY_CSV)

    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        return {read.WIDE_CSV: read.wide(pd.read_csv(folder / read.SUMMARY_CSV))}

    claims = staticmethod(read.claims)
    redraw = staticmethod(read.redraw)
    report = staticmethod(read.report_md)    # (folder, run) -> report.md
