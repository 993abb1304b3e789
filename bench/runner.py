"""An experiment config -> its jobs (arm x seed) -> the executor -> the scored per-item table.

Everything that can be wrong with a config or its data is checked before the first model
loads (`preflight`). The plain experiment (accuracy, popularity, ...) is the simplest plan: one
job per (arm, seed) answering the configured evaluation items of that seed's dataset.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench.config import CACHE_DIR, ConfigError, ExperimentConfig
from bench.data.dataset import Dataset, build_dataset
from bench.engine import Job, JobResult, run_jobs


def eval_items(cfg: ExperimentConfig, dataset: Dataset, seed: int):
    d = cfg.data
    return dataset.eval_items(d.eval_splits, d.max_items, seed, paraphrases=d.paraphrases_as_items)


def preflight(cfg: ExperimentConfig) -> dict[int, Dataset]:
    """Fail before any training: the model must resolve and every seed's data must load."""
    from bench.models.resolve import resolve_model

    resolve_model(cfg.model.name)
    check_recipes(cfg)
    datasets = {seed: build_dataset(cfg.data, seed) for seed in cfg.seeds}
    for seed, ds in datasets.items():
        if not eval_items(cfg, ds, seed):
            where = cfg.data.qa or f"the world of seed {seed}"
            raise ConfigError(f"{where}: no QA items in data.eval_splits {list(cfg.data.eval_splits)} "
                              f"(its splits: {sorted({q.split for q in ds.items})})")
        check_retrieval(cfg, ds)
    return datasets


def check_recipes(cfg: ExperimentConfig) -> None:
    """A knowledge-injection recipe's writer must exist for this data before anything trains: the
    world's renderers need the synthetic world; a writer model must resolve."""
    from bench.injection.recipe import DEFAULT_WRITER_MODEL
    from bench.models.resolve import ModelNotFound, resolve_model

    for i, arm in enumerate(cfg.arms):
        training = getattr(arm.settings, "training", None)
        if training is None or not training.recipe.active:
            continue
        writer, where = training.recipe.writer, f"{cfg.source}: arms[{i}].training.recipe.writer"
        if writer == "world" and cfg.data.world is None:
            raise ConfigError(f"{where}: world, but the data is a corpus of your own; use auto or a model name")
        if writer not in ("auto", "world") or (writer == "auto" and cfg.data.world is None):
            try:
                resolve_model(DEFAULT_WRITER_MODEL if writer == "auto" else writer)
            except (ModelNotFound, OSError, ValueError) as e:
                raise ConfigError(f"{where}: {e}") from None


# MiniLM reads 256 word pieces, about 1,000 characters of English; well past that, text is unread
EMBEDDER_READS_CHARS = 1500


# (data fingerprint, retrieval settings) already checked in this process: a user's files are the
# same dataset for every seed, and the driver checks them before the measuring half does again
_CHECKED: set = set()


def check_retrieval(cfg: ExperimentConfig, ds: Dataset) -> None:
    """Every retrieving arm asks for at most as many chunks as the corpus has (counted without a
    tokenizer: token chunking is checked when its index is built)."""
    for arm in cfg.arms:
        r = getattr(arm.settings, "retrieval", None)
        if r is None or r.chunking == "tokens" or (ds.fingerprint, r) in _CHECKED:
            continue
        chunks = r.chunks(ds.passages)
        n = len(chunks)
        long = sum(len(c.text) > EMBEDDER_READS_CHARS for c in chunks)
        if long:
            print(f"warning: arms: {arm.name}: {long} of {n} chunks of {cfg.data.corpus or 'the corpus'} are "
                  f"longer than ~{EMBEDDER_READS_CHARS:,} characters, past what the embedder reads (its "
                  f"first 256 tokens); set retrieval.chunking: sentences (or tokens) to search all of "
                  f"their text", file=sys.stderr, flush=True)
        if r.k > n:
            raise ConfigError(f"arms: {arm.name}: retrieval.k: {r.k} is more than the {n} chunks of "
                              f"{cfg.data.corpus or 'the corpus'} ({r.chunking_key()})")
        _CHECKED.add((ds.fingerprint, r))


def plan(cfg: ExperimentConfig, datasets: dict[int, Dataset]) -> list[Job]:
    """One job per (arm, seed), arms in config order."""
    return [Job(arm, seed, cfg.model, cfg.data, datasets[seed], tuple(eval_items(cfg, datasets[seed], seed)))
            for arm in cfg.arms for seed in cfg.seeds]


def job_keys(cfg: ExperimentConfig) -> list[str]:
    """The prediction-log keys of the plan, without building any data."""
    return [Job(arm, seed, cfg.model, cfg.data).key() for arm in cfg.arms for seed in cfg.seeds]


def run_plain(cfg: ExperimentConfig, out_dir: Path | str, cache_dir: Path | str = CACHE_DIR,
              progress: bool = True) -> list[JobResult]:
    """Preflight, then every (arm, seed) job through the executor (resuming finished work)."""
    return run_jobs(plan(cfg, preflight(cfg)), out_dir, cache_dir, progress, desc=cfg.name)


def stats_table(results: list[JobResult]) -> pd.DataFrame:
    """One row per job: arm, arm_kind, seed and what its prepare() measured."""
    return pd.DataFrame([r.stats_row() for r in results])


def scored(results: list[JobResult], progress: bool = False) -> pd.DataFrame:
    """The scored per-item table of the jobs' rows, in job order then item id."""
    from bench.metrics.table import score_rows

    order = {}
    for r in results:
        order.setdefault(r.job.arm.name, len(order))
    rows = [row for r in results for row in r.rows]
    rows.sort(key=lambda r: (order[r["arm"]], r["seed"], r["item_id"]))
    return score_rows(rows, progress=progress)


def run_experiment(cfg: ExperimentConfig, out_dir: Path | str, cache_dir: Path | str = CACHE_DIR,
                   progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scored per-item table, per-job stats) of a plain experiment."""
    results = run_plain(cfg, out_dir, cache_dir, progress)
    return scored(results, progress), stats_table(results)
