"""injection, the measuring half: every arm x seed on a training view of the world (each train
item's last wording held out, as in data-scaling), asked held-out test facts and trained facts in
their held-out wording; then the background questions (the pocket model's pretraining world, or
general knowledge for a real model) asked of the base model and of every adapter that answers
closed-book. One row per (arm, seed) with what its training cost."""

from __future__ import annotations

import dataclasses
import random

import pandas as pd

from bench.studies.injection.read import NAME

SCORES = {"em": "exact_match", "contains": "contains"}


def samples(dataset, s, seed: int) -> tuple[list, list]:
    """(held-out test facts, trained facts in their held-out wording): fixed samples per seed."""
    from bench.studies.data_scaling.measure import reworded

    test = [q for q in dataset.split("test") if q.answerable]
    trained = [q for q in dataset.split("train") if q.answerable and q.paraphrases]
    rng = random.Random(f"{NAME}:{seed}")
    test = sorted(rng.sample(test, min(s.test_items, len(test))), key=lambda q: q.id)
    trained = sorted(rng.sample(trained, min(s.reworded_items, len(trained))), key=lambda q: q.id)
    return test, [reworded(q) for q in trained]


def rates(rows: list[dict], metric_fn) -> float:
    scores = [metric_fn(r["prediction"], r["answers"]) for r in rows if r["answers"]]
    return sum(scores) / len(scores) if scores else float("nan")


def measure(run) -> dict[str, pd.DataFrame]:
    from bench.engine import Job, run_jobs
    from bench.metrics import scores as sc
    from bench.runner import preflight
    from bench.studies.data_scaling.measure import eval_set_of, training_view
    from bench.studies.forgetting import background_of
    from bench.studies.forgetting.measure import background_items, background_jobs, known_split
    from bench.studies.forgetting.shared import em_by_split, general_knowledge_items

    cfg, s = run.cfg, run.settings
    views = {seed: training_view(ds) for seed, ds in preflight(cfg).items()}
    jobs = []
    for seed, view in views.items():
        test, reworded = samples(view, s, seed)
        jobs += [Job(arm, seed, cfg.model, cfg.data, view, tuple(test + reworded), view=view.name)
                 for arm in cfg.arms]
    results = run_jobs(jobs, run.out, run.cache_dir, run.progress, desc=f"{NAME}: test world")

    # background: the base model once (it does not depend on the seed), every closed-book adapter
    general = background_of(cfg, s) == "general_knowledge"
    items = general_knowledge_items() if general else background_items(s.background_items)
    base = next(a for a in cfg.arms if a.arm == "closed_book")
    closed = [a for a in cfg.arms if a.arm == "lora"]
    asked = [(base, cfg.seeds[0])] + [(a, seed) for a in closed for seed in cfg.seeds]
    bg_jobs = background_jobs(cfg, asked, views, items)
    if general:   # the base model asked as the adapters are: no worked turns (bench.arms.base)
        bg_jobs[0] = dataclasses.replace(bg_jobs[0], model=dataclasses.replace(cfg.model, demos=0))
    answered = run_jobs(bg_jobs, run.out, run.cache_dir, run.progress, desc=f"{NAME}: background")
    base_rows = answered[0].rows
    if general:   # recall of what the base model knew (contains), as the forgetting study reads it
        background = {(r.job.arm.name, r.job.seed): em_by_split(known_split(r.rows, base_rows),
                                                                metric=sc.contains)["train"]
                      for r in answered}
    else:
        background = {(r.job.arm.name, r.job.seed): rates(r.rows, sc.exact_match) for r in answered}
    before = background[(base.name, cfg.seeds[0])]

    rows = []
    for r in results:
        arm, seed, st = r.job.arm, r.job.seed, r.stats
        row = {"arm": arm.name, "kind": arm.arm, "seed": seed,
               "recipe": recipe_label(arm.settings)}
        for eval_set in ("test", "reworded"):
            subset = [x for x in r.rows if eval_set_of(x["item_id"]) == eval_set]
            row[f"{eval_set}_items"] = len(subset)
            for short, name in SCORES.items():
                row[f"{eval_set}_{short}"] = rates(subset, getattr(sc, name))
        if arm.arm == "closed_book":
            row["background_recall"] = before
        elif (arm.name, seed) in background:
            row["background_recall"] = background[(arm.name, seed)]
            row["background_drop"] = before - row["background_recall"]
        lora = getattr(arm.settings, "lora", None)
        if lora is not None:
            row.update(steps=lora.steps, rank=lora.rank, train_examples=st.get("train_examples"),
                       train_tokens=st.get("train_tokens"), train_seconds=st.get("train_seconds"),
                       recipe_seconds=st.get("recipe_seconds", 0.0),
                       adapter_cached=st.get("adapter_cached"))
        rows.append(row)
    cached = [r for r in rows if r.get("adapter_cached") is not None]
    run.timings["lora_train_seconds_by_this_study"] = round(
        sum(r["train_seconds"] or 0 for r in cached if not r["adapter_cached"]), 1)
    run.extra.update(background="general_knowledge" if general else "pocket pretraining world",
                     background_questions=len(items))
    return {"per_seed.csv": pd.DataFrame(rows)}


def recipe_label(settings) -> str:
    from bench.injection.recipe import training_label

    training = getattr(settings, "training", None)
    return "none" if training is None else training_label(training)
