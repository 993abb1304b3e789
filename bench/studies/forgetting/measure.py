"""forgetting, the measuring half: the test world through the executor (references and the
accuracy adapter at every seed, the other adapters at sweep_seeds), then the background sample
asked of the base model and of every adapter as a job view; one row per (variant, seed)."""

from __future__ import annotations

import dataclasses
import random

import pandas as pd

from bench.config import ExperimentConfig, content_hash
from bench.studies.forgetting import background_of
from bench.studies.forgetting.read import BASE, METRICS
from bench.studies.forgetting.shared import (adapter_cells, em_by_split, general_knowledge_items,
                                             template_arm)
from bench.studies.forgetting.sweep import run_config, seeds_of, sweep_seeds, variants

NAME = "forgetting"


def background_items(n: int) -> list:
    """A fixed sample of n answerable background questions per split: 'train' = facts the pocket
    model was drilled on as QA, 'test' = facts it only read in documents."""
    from bench.pocket.data import background_world
    from bench.pocket.recipe import PocketRecipe

    world = background_world(PocketRecipe())
    items = []
    for split in ("train", "test"):
        pool = [q for q in world.qa() if q.answerable and q.split == split]
        keep = {q.id for q in random.Random(f"background:{split}").sample(pool, min(n, len(pool)))}
        items += [q for q in pool if q.id in keep]
    return items


def known_split(rows: list[dict], base: list[dict]) -> list[dict]:
    """General-knowledge rows relabelled: split 'train' = the questions the base model answered
    (its answer contains a gold answer), 'test' = every question; duplicated rows for the known
    ones, so em_by_split(..., contains) gives (known recalled, all answered)."""
    from bench.metrics.scores import contains

    known = {r["item_id"] for r in base if contains(r["prediction"], r["answers"])}
    return ([{**r, "split": "train"} for r in rows if r["item_id"] in known]
            + [{**r, "split": "test"} for r in rows])


def background_jobs(rcfg: ExperimentConfig, arms_seeds, datasets, items) -> list:
    """Closed-book questions about the pocket model's background world, asked of each (arm, seed)
    model: a view of its own (the background sample), so the logs sit beside the test-world ones;
    a lora arm loads its adapter from the cache the test-world pass filled."""
    from bench.engine import Job

    view = "background:" + content_hash([q.id for q in items], n=12)
    return [Job(arm, seed, rcfg.model, rcfg.data, datasets[seed], tuple(items), view=view, tag="-background")
            for arm, seed in arms_seeds]


def measure(run) -> dict[str, pd.DataFrame]:
    per_seed = measure_rows(run.cfg, run.settings, run.out, run.cache_dir, run.progress)
    trained = per_seed[per_seed["variant"] != BASE]
    cached = trained["adapter_cached"].astype(bool)
    run.timings["lora_train_seconds_by_this_study"] = round(float(trained.loc[~cached, "train_seconds"].sum()), 1)
    run.extra.update(adapters_cached=int(cached.sum()), adapters_total=len(trained),
                     adapter_train_seconds_all=round(float(trained["train_seconds"].sum()), 1))
    return {"per_seed.csv": per_seed}


def measure_rows(cfg: ExperimentConfig, s, out, cache_dir, progress: bool = True) -> pd.DataFrame:
    """One row per (variant, seed): background EM, the drop from the base model, test-world EM."""
    from bench.engine import run_jobs
    from bench.runner import plan, preflight, stats_table

    rcfg = run_config(cfg, s)
    datasets = preflight(rcfg)
    # two test-world passes: references and the base adapter at every seed, the rest at sweep_seeds
    swept = {f"{k}_s{st}_r{r}" for k in ("lora", "hybrid") for st, r in variants(s)
             if seeds_of(cfg, s, st, r) != cfg.seeds}
    passes = [dataclasses.replace(rcfg, arms=tuple(a for a in rcfg.arms if a.name not in swept)),
              dataclasses.replace(rcfg, arms=tuple(a for a in rcfg.arms if a.name in swept),
                                  seeds=sweep_seeds(cfg, s))]
    results = run_jobs([job for p in passes for job in plan(p, datasets)], out, cache_dir, progress,
                       desc=f"{NAME}: test world")
    world = {(r.job.arm.name, r.job.seed): em_by_split(r.rows) for r in results}   # answerable items
    stats = stats_table(results).set_index(["arm", "seed"])
    general = background_of(cfg, s) == "general_knowledge"
    items = general_knowledge_items() if general else background_items(s.background_items)
    by_name = {a.name: a for a in rcfg.arms}
    base_arm = template_arm(cfg, "closed_book", cfg.source)
    first = cfg.seeds[0]   # the base model does not depend on the seed: asked once
    asked = [(base_arm, first)] + [(by_name[f"lora_s{st}_r{r}"], seed) for st, r in variants(s)
                                   for seed in seeds_of(cfg, s, st, r)]
    jobs = background_jobs(rcfg, asked, datasets, items)
    if general:   # the base model asked as the adapters are: no worked turns (bench.arms.base)
        jobs[0] = dataclasses.replace(jobs[0], model=dataclasses.replace(rcfg.model, demos=0))
    answered = run_jobs(jobs, out, cache_dir, progress, desc=f"{NAME}: background")
    if general:
        from bench.metrics.scores import contains

        base_rows = answered[0].rows
        background = {(r.job.arm.name, r.job.seed): em_by_split(known_split(r.rows, base_rows), metric=contains)
                      for r in answered}
    else:
        background = {(r.job.arm.name, r.job.seed): em_by_split(r.rows) for r in answered}
    before = background.pop((base_arm.name, first))
    rag_name = template_arm(cfg, "rag", cfg.source).name if s.reading else None
    rows = []
    for seed in cfg.seeds:
        rows.append({"variant": BASE, "steps": 0, "rank": 0, "seed": seed,
                     "background_trained_em": before["train"], "background_heldout_em": before["test"],
                     "background_trained_drop": 0.0, "background_heldout_drop": 0.0,
                     "world_trained_em": world[(base_arm.name, seed)]["train"],
                     "world_heldout_em": world[(base_arm.name, seed)]["test"],
                     "world_reading_em": world.get((rag_name, seed), {}).get("test", float("nan")),
                     "epochs": 0.0, "train_seconds": 0.0, "trainable_parameters": 0})
        for st, r in variants(s):
            if seed not in seeds_of(cfg, s, st, r):
                continue
            name = f"lora_s{st}_r{r}"
            lora = by_name[name].settings.lora
            per_step = lora.batch_size - round(lora.batch_size * lora.replay_share)
            bg = background[(name, seed)]
            rows.append({"variant": name, "steps": st, "rank": r, "seed": seed,
                         "background_trained_em": bg["train"], "background_heldout_em": bg["test"],
                         "background_trained_drop": before["train"] - bg["train"],
                         "background_heldout_drop": before["test"] - bg["test"],
                         "epochs": st * per_step / float(stats.loc[(name, seed), "train_examples"]),
                         **adapter_cells(world, stats, name, f"hybrid_s{st}_r{r}", seed)})
    table = pd.DataFrame(rows, columns=["variant", "steps", "rank", "seed", *METRICS, "adapter_cached"])
    return table.assign(background="general_knowledge" if general else "world")
