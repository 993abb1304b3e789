"""latency, the measuring half: the plain experiment once per batch size, and once more with the
adapted arms' adapters merged into the weights, each pass through the executor into a folder of
its own (bs<N>/, bs<N>-merged/: its own prediction logs, so a rerun replays the original
timings). Returns the per-item timings of the first evaluation split and their summary."""

from __future__ import annotations

import dataclasses

import pandas as pd

from bench.runner import run_experiment
from bench.config import with_changes
from bench.studies.latency.read import ITEM_COLUMNS, ITEMS_CSV, MERGED, SUMMARY_CSV, summarize


def passes(cfg, settings, adapted) -> list[tuple]:
    """(config, sub-folder, arm-name suffix, batch size) of every runner pass, in order."""
    out = []
    for bs in settings.batch_sizes:
        sized = with_changes(cfg, batch_size=bs)
        out.append((sized, f"bs{bs}", "", bs))
        if settings.serve_merged and adapted:
            merged = dataclasses.replace(with_changes(sized, merge_adapter=True), arms=tuple(adapted))
            out.append((merged, f"bs{bs}-merged", MERGED, bs))
    return out


def measure(run) -> dict[str, pd.DataFrame]:
    from bench.arms.registry import get_arm_class

    cfg = run.cfg
    adapted = [a for a in cfg.arms if get_arm_class(a.arm).adapted]
    parts = []
    for pass_cfg, folder, suffix, bs in passes(cfg, run.settings, adapted):
        t, _ = run_experiment(pass_cfg, run.out / folder, run.cache_dir, progress=run.progress)
        t["arm"] = t["arm"] + suffix
        t["batch_size"] = bs
        t["label"] = t["arm"] + f"@bs{bs}"
        parts.append(t)
    table = pd.concat(parts, ignore_index=True)
    table = table[table["split"] == cfg.data.eval_splits[0]]
    # the summary is taken from the unrounded timings here (items.csv of results saved before
    # base tables kept every digit holds them to 6 significant digits only)
    return {ITEMS_CSV: table[[c for c in ITEM_COLUMNS if c in table]], SUMMARY_CSV: summarize(table)}
