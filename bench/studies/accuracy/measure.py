"""accuracy, the measuring half: every arm x seed on the configured evaluation items, through the
executor; the scored per-item table and what each job's preparation cost."""

from __future__ import annotations

import pandas as pd

from bench.report.outputs import item_table, primary_split
from bench.runner import run_experiment


def measure(run) -> dict[str, pd.DataFrame]:
    table, cells = run_experiment(run.cfg, run.out, run.cache_dir, progress=run.progress)
    run.extra.update(items_per_cell=int(table.groupby(["arm", "seed"]).size().max()),
                     summary_split=primary_split(table))
    return {"items.csv": item_table(table), "cells.csv": cells}
