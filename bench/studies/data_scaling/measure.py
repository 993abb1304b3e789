"""data-scaling, the measuring half: for every seed, the sweep's settings (what each adapter
trains on, its steps, the items it is asked) as executor jobs on a view of the data (the full
world for the closed-book and RAG references, the training view without each train item's last
wording for the lora and hybrid arms of a setting, which share one adapter), scored per item;
then the per-(arm, setting, seed, eval set) cell table."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pandas as pd

from bench.config import content_hash
from bench.data.dataset import Dataset
from bench.data.schema import QAItem
from bench.studies.data_scaling.read import NAME, Point, cell_table


# -- the sweep: what each setting trains on and is asked -------------------------------------------

def training_view(dataset: Dataset) -> Dataset:
    """The dataset the adapters train on: every train item without its last paraphrase (held out
    for the `reworded` evaluation). Passages and test items are unchanged."""
    items = [replace(q, paraphrases=list(q.paraphrases[:-1])) if q.split == "train" and q.paraphrases
             else q for q in dataset.items]
    fingerprint = content_hash([[p.to_json() for p in dataset.passages], [q.to_json() for q in items]])
    return Dataset(f"{dataset.name}~heldout-wording", dataset.passages, items, fingerprint, dataset.world)


def reworded(q: QAItem) -> QAItem:
    """A trained item asked in its held-out wording (the last paraphrase of the full dataset)."""
    return replace(q, id=f"{q.id}/reworded", question=q.paraphrases[-1], paraphrases=[],
                   meta={**(q.meta or {}), "eval_set": "reworded"})


def as_trained(q: QAItem) -> QAItem:
    """A trained item asked in its canonical question, the wording every setting trains on."""
    return replace(q, id=f"{q.id}/trained", paraphrases=[], meta={**(q.meta or {}), "eval_set": "trained"})


def point_settings(base, point: Point, view: Dataset, seed: int, s):
    """(arm settings with this point's training data and steps, facts about its training set)."""
    from bench.arms.adapter import trained_items, training_examples   # torch: off the report path

    training = replace(base.training, max_train_questions=point.size, paraphrases=point.augmentation)
    if point.variant == "recipe":
        training = replace(training, recipe=s.recipe)
    examples, replay = training_examples(training, view, seed)
    n_replay = round(base.lora.batch_size * base.lora.replay_share) if replay else 0
    per_step = base.lora.batch_size - n_replay
    epochs, cap, lora = s.epochs, s.max_steps, base.lora
    if point.variant == "passes":     # is the fall the number of passes (and the cap with it)?
        epochs, cap = 3 * epochs, 3 * cap
    if point.variant == "rank":       # ... or the adapter's capacity?
        lora = replace(lora, rank=4 * lora.rank, alpha=4 * lora.alpha)
    steps = max(s.min_steps, min(cap, math.ceil(epochs * len(examples) / per_step)))
    n_docs = sum(1 for prompt, _ in examples if prompt == "")
    facts = {"trained_items": len(trained_items(training, view, seed)), "train_examples": len(examples),
             "train_qa_examples": len(examples) - n_docs, "steps": steps, "rank": lora.rank}
    return replace(base, training=training, lora=replace(lora, steps=steps)), facts


def eval_sets(dataset: Dataset, point: Point, training, s, seed: int) -> dict[str, list[QAItem]]:
    """The items a setting is asked: its trained facts reworded and as trained (at most
    reworded_items, a fixed sample) and the seed's fixed sample of held-out answerable test facts."""
    from bench.arms.adapter import trained_items

    full = {q.id: q for q in dataset.items}
    view = training_view(dataset)
    trained = [full[q.id] for q in trained_items(training, view, seed) if len(full[q.id].paraphrases)]
    if len(trained) > s.reworded_items:
        trained = random.Random(f"{NAME}:reworded:{seed}:{point.size}").sample(trained, s.reworded_items)
        trained.sort(key=lambda q: q.id)
    return {"reworded": [reworded(q) for q in trained], "trained": [as_trained(q) for q in trained],
            "test": test_items(dataset, s, seed)}


def test_items(dataset: Dataset, s, seed: int) -> list[QAItem]:
    test = [q for q in dataset.split("test") if q.answerable]
    if len(test) > s.test_items:
        test = sorted(random.Random(f"{NAME}:test:{seed}").sample(test, s.test_items), key=lambda q: q.id)
    return test


# -- answering: jobs for the executor ------------------------------------------------------------

def job(arm_cfg, settings, dataset, seed, items, cfg, tag=""):
    """One executor job: this arm with these settings on a view of the data (the full world for
    the references, the training view for a sweep point), keyed by the view's name too."""
    from bench.config import ArmConfig
    from bench.engine import Job

    arm = ArmConfig(arm_cfg.name, arm_cfg.arm, settings)
    return Job(arm, seed, cfg.model, cfg.data, dataset, tuple(items), view=dataset.name, tag=tag)


def eval_set_of(item_id: str) -> str:
    return next((name for name in ("reworded", "trained") if item_id.endswith(f"/{name}")), "test")


def score(rows: list[dict], **fields) -> list[dict]:
    from bench.metrics.scores import exact_match, token_f1

    keep = ("item_id", "question", "answers", "prediction")
    return [{**fields, "eval_set": eval_set_of(r["item_id"]),
             **{k: r[k] for k in keep}, "exact_match": exact_match(r["prediction"], r["answers"]),
             "token_f1": token_f1(r["prediction"], r["answers"])} for r in rows]


def sweep_points(s) -> list[Point]:
    """The plain curve(s), the recipe curve (with paraphrases), then the two checks at the
    largest size (with paraphrases when the sweep has them)."""
    points = [Point(n, aug) for aug in s.augmentation for n in sorted(s.sizes)]
    if s.recipe is not None:
        points += [Point(n, True, "recipe") for n in sorted(s.sizes)]
    if s.diagnose:
        aug = True in s.augmentation
        points += [Point(max(s.sizes), aug, "passes"), Point(max(s.sizes), aug, "rank")]
    return points


def run_sweep(cfg, s, kinds: dict, datasets: dict, out, cache_dir, progress: bool) -> pd.DataFrame:
    """Every (setting, seed) through lora and hybrid, references once per seed: per-item rows."""
    from bench.engine import run_jobs

    points = sweep_points(s)
    refs = [kinds[k] for k in ("closed_book", "rag") if k in kinds]
    swept = [kinds[k] for k in ("lora", "hybrid") if k in kinds]
    jobs, fields = [], []
    for seed in cfg.seeds:
        dataset = datasets[seed]
        view = training_view(dataset)
        plan = []
        for p in points:
            settings, facts = point_settings(kinds["lora"].settings, p, view, seed, s)
            plan.append((p, settings, facts, eval_sets(dataset, p, settings.training, s, seed)))
        pool = {q.id: q for *_, sets in plan for q in sets["reworded"] + sets["trained"]}
        asked = test_items(dataset, s, seed) + [pool[i] for i in sorted(pool)]
        for arm_cfg in refs:
            jobs.append(job(arm_cfg, arm_cfg.settings, dataset, seed, asked, cfg))
            fields.append({"arm": arm_cfg.name, "kind": arm_cfg.arm, "seed": seed})
        for p, settings, facts, sets in plan:
            for arm_cfg in swept:
                arm_settings = replace(arm_cfg.settings, training=settings.training, lora=settings.lora)
                questions = sets["reworded"] + sets["trained"] + sets["test"]
                jobs.append(job(arm_cfg, arm_settings, view, seed, questions, cfg, tag=f"-{p.label}"))
                fields.append({"arm": arm_cfg.name, "kind": arm_cfg.arm, "seed": seed, "size": p.size,
                               "augmentation": p.augmentation, "variant": p.variant, **facts, "sweep": True})
    rows = []
    for result, f in zip(run_jobs(jobs, out, cache_dir, progress, desc=NAME), fields):
        if f.pop("sweep", False):
            st = result.stats
            f.update(train_seconds=st.get("train_seconds"), final_loss=st.get("final_loss"),
                     adapter_cached=st.get("adapter_cached"))
        rows += score(result.rows, **f)
    return pd.DataFrame(rows)


def measure(run) -> dict[str, pd.DataFrame]:
    """items.parquet (every scored answer, for inspection) and cells.csv (the base table)."""
    from bench.runner import preflight

    cfg = run.cfg
    datasets = preflight(cfg)   # the model resolves and every seed's data loads, before any training
    kinds = {a.arm: a for a in cfg.arms}
    items = run_sweep(cfg, run.settings, kinds, datasets, run.out, run.cache_dir, run.progress)
    cells = cell_table(items)
    lora = cells[cells["kind"] == "lora"].drop_duplicates(["size", "augmentation", "variant", "seed"])
    run.timings["adapter_training"] = round(float(pd.to_numeric(lora["train_seconds"], errors="coerce").sum()), 1)
    return {"items.parquet": items, "cells.csv": cells}
