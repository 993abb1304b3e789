"""popularity, the measuring half: the plain experiment's jobs (every arm x seed on the
answerable test questions) through the executor, and each seed's world's popularity counts."""

from __future__ import annotations

import pandas as pd

from bench.report.outputs import item_table
from bench.runner import run_experiment


def measure(run) -> dict[str, pd.DataFrame]:
    table, cells = run_experiment(run.cfg, run.out, run.cache_dir, progress=run.progress)
    return {"items.csv": item_table(table), "cells.csv": cells, "world_popularity.csv": world_distribution(run.cfg)}


def world_distribution(cfg) -> pd.DataFrame:
    """Entities per popularity value in each seed's world (no model needed)."""
    from bench.data.world import WorldSpec, generate_world

    rows = []
    for seed in cfg.seeds:
        world = generate_world(WorldSpec(n_entities=cfg.data.world.entities), seed + cfg.data.world.seed_offset)
        for pop, count in pd.Series(world.popularity).value_counts().sort_index().items():
            rows.append({"seed": seed, "documents": int(pop), "entities": int(count)})
    return pd.DataFrame(rows)


