"""coldstart, the measuring half: every (arm, seed) from an empty cache folder of its own, timed
from raw documents to the first answer batch with a correct answer.

Not executor jobs, on purpose (see cold_cell): each cell uses the executor's pieces, open_arm
and answer_rows. Returns the cells and their summary.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from bench.data.dataset import build_dataset
from bench.studies.coldstart.read import CELLS_CSV, SUMMARY_CSV, summarize


def cold_cell(arm_cfg, cfg, dataset, seed: int, scratch: Path, progress: bool) -> dict:
    """One (arm, seed) from an empty cache folder. Not an executor job: the clock must cover the
    whole preparation and stop at the first correct batch, and nothing may come from a cache
    (no prediction log either); it uses the executor's pieces (open_arm, answer_rows)."""
    from bench.engine import Job, answer_rows, open_arm   # the model stack, only when measuring
    from bench.metrics.scores import exact_match

    shutil.rmtree(scratch, ignore_errors=True)      # empty caches: nothing is reused
    items = dataset.eval_items(cfg.data.eval_splits[:1], cfg.data.max_items, seed)
    job = Job(arm_cfg, seed, cfg.model, cfg.data, dataset, tuple(items))
    start = time.perf_counter()
    try:
        with open_arm(job, scratch, progress) as (arm, _):
            prepared = time.perf_counter() - start
            first_answer = first_correct = float("nan")
            scores = []
            for i in range(0, len(items), cfg.model.batch_size):
                rows = answer_rows(arm, job, items[i:i + cfg.model.batch_size])
                scores += [exact_match(r["prediction"], r["answers"]) for r in rows]
                now = time.perf_counter() - start
                if math.isnan(first_answer):
                    first_answer = now
                if math.isnan(first_correct) and any(scores):
                    first_correct = now
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"arm": arm_cfg.name, "seed": seed, "prepare_seconds": prepared,
            "first_answer_seconds": first_answer, "first_correct_seconds": first_correct,
            "exact_match": sum(scores) / len(scores)}


def measure(run) -> dict[str, pd.DataFrame]:
    from bench.runner import preflight

    cfg = run.cfg
    preflight(cfg)
    rows = []
    jobs = [(arm, seed) for seed in cfg.seeds for arm in cfg.arms]
    for arm, seed in tqdm(jobs, desc="coldstart", disable=not run.progress):
        # one folder per cell: chroma keeps a client per path in the process, so a folder
        # deleted and reused by a later cell would meet a stale client ("no such table")
        rows.append(cold_cell(arm, cfg, build_dataset(cfg.data, seed), seed,
                              run.cache_dir / "coldstart-scratch" / f"{arm.name}-s{seed}", run.progress))
    cells = pd.DataFrame(rows)
    # the summary is taken from the unrounded timings here (cells.csv of results saved before
    # base tables kept every digit holds them to 6 significant digits only)
    return {CELLS_CSV: cells, SUMMARY_CSV: summarize(cells)}
