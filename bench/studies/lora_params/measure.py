"""lora-params, the measuring half: the parameter counts and adapter sizes (peft on each model's
module tree, built on the meta device), the article's example, and accuracy vs rank with the
forgetting study's rank-sweep adapters (the same arms, so the executor loads them from the
adapter cache)."""

from __future__ import annotations

import dataclasses
import time

import pandas as pd

from bench.studies.forgetting.shared import adapter_cells, em_by_split, template_arm, variant_arm
from bench.studies.lora_params.counts import count_table, example_check, hf_config


def measure(run) -> dict[str, pd.DataFrame]:
    from transformers import AutoConfig

    from bench.models.resolve import resolve_model

    cfg, s = run.cfg, run.settings
    start = time.perf_counter()
    bench_config = AutoConfig.from_pretrained(resolve_model(cfg.model.name),
                                              trust_remote_code=cfg.model.trust_remote_code)
    models = {cfg.model.name: ("bench", bench_config)}
    models.update({name: ("hf_config", hf_config(conf)) for name, conf in s.hf_configs.items()})
    tables = {"params.csv": count_table(models, s, run.progress),
              "example.csv": pd.DataFrame([example_check(*s.example)])}
    run.timings["counts"] = round(time.perf_counter() - start, 1)
    if s.accuracy_ranks:
        acc = accuracy_per_seed(cfg, s, run.out, run.cache_dir, run.progress)
        trained = acc.loc[~acc["adapter_cached"], "train_seconds"].sum()
        run.timings["lora_train_seconds_by_this_study"] = round(float(trained), 1)
        tables["accuracy_per_seed.csv"] = acc
    return tables


def accuracy_per_seed(cfg, s, out, cache_dir, progress: bool) -> pd.DataFrame:
    """Per (rank, seed): test-world EM of the lora adapter (closed-book, trained and held-out
    facts) and of the hybrid arm reading one retrieved passage, answerable items only."""
    from bench.runner import run_plain, stats_table

    kinds = [k for k in ("lora", "hybrid") if any(a.arm == k for a in cfg.arms)]
    arms = [variant_arm(template_arm(cfg, k, cfg.source), s.accuracy_steps, r)
            for k in kinds for r in s.accuracy_ranks]
    results = run_plain(dataclasses.replace(cfg, arms=tuple(arms)), out, cache_dir, progress)
    em = {(r.job.arm.name, r.job.seed): em_by_split(r.rows) for r in results}
    stats = stats_table(results).set_index(["arm", "seed"])
    rows = []
    for rank in s.accuracy_ranks:
        name = f"lora_s{s.accuracy_steps}_r{rank}"
        for seed in cfg.seeds:
            rows.append({"rank": rank, "steps": s.accuracy_steps, "seed": seed,
                         **adapter_cells(em, stats, name, f"hybrid_s{s.accuracy_steps}_r{rank}", seed)})
    return pd.DataFrame(rows)
