"""cost, the measuring half: the plain experiment through the executor (adapters and indexes
come from the cache with the times measured when they were built), reduced to what the price
model needs per (arm, seed): serving seconds and tokens per query on the first evaluation split,
training and index-building seconds, bytes stored."""

from __future__ import annotations

import pandas as pd

from bench.runner import run_experiment
from bench.studies.cost.prices import measured
from bench.studies.cost.read import INPUTS_CSV


def measure(run) -> dict[str, pd.DataFrame]:
    table, stats = run_experiment(run.cfg, run.out, run.cache_dir, progress=run.progress)
    table = table[table["split"] == run.cfg.data.eval_splits[0]]
    return {INPUTS_CSV: measured(table, stats)}
