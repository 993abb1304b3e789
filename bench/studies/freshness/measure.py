"""freshness, the measuring half: per seed world v1 and v2, one chroma collection of v1, and
every study arm answering before and after its update step (items.csv), with what each update
cost (cells.csv).

Not executor jobs: an arm answers, is updated in place (upsert, continued training or a
retrain) and answers again, so it uses the executor's pieces (open_arm, answer_rows). The whole
measurement runs with the experiment's `model.threads` torch threads.
"""

from __future__ import annotations

import contextlib
import time

import pandas as pd
from tqdm import tqdm

from bench.engine import Job, answer_rows, open_arm, torch_threads
from bench.locks import entry_lock
from bench.metrics.scores import exact_match
from bench.studies.freshness.read import arm_of
from bench.studies.freshness.update import (build_versions, continue_update, rollback,
                                            select_questions, upsert_update)


def arm_job(cfg, kind: str, dataset, seed: int, store) -> Job:
    """The experiment's arm of `kind` on one world version; a retrieving arm answers from the
    study's shared store (handed in through the store seam), so the update goes into the
    collection it reads."""
    return Job(arm_of(cfg, kind), seed, cfg.model, cfg.data, dataset, store=store)


def answer(arm, job: Job, name: str, phase: str, questions) -> list[dict]:
    """All questions in one call (the generator batches them), scored against v2 and v1."""
    rows = []
    for q, r in zip(questions, answer_rows(arm, job, [q.item for q in questions])):
        changed = q.group == "changed"
        rows.append({"arm": name, "seed": job.seed, "phase": phase, "group": q.group, "split": q.item.split,
                     "item_id": q.item.id, "question": q.item.question, "new": q.item.answers[0],
                     "old": q.old, "prediction": r["prediction"],
                     "em": exact_match(r["prediction"], q.item.answers),
                     "stale": exact_match(r["prediction"], [q.old]) if changed else float("nan")})
    return rows


def run_arm(name, run, v, questions, store) -> tuple[list[dict], dict]:
    """One study arm: answer, update in place, answer again (the executor's pieces)."""
    cfg, s, cache_dir, progress = run.cfg, run.settings, run.cache_dir, run.progress
    kind, *steps = name.split("+")
    upserted = False
    try:
        with contextlib.ExitStack() as stack:
            job = arm_job(cfg, kind, v.v1, v.seed, store)
            arm, stats = stack.enter_context(open_arm(job, cache_dir, progress))
            cell = {"arm": name, "seed": v.seed, "update_seconds": 0.0, "update_cached": False,
                    "v1_adapter_cached": stats.get("adapter_cached"), "v1_train_seconds": stats.get("train_seconds")}
            rows = answer(arm, job, name, "before", questions)
            for step in steps:
                if step == "upsert":
                    u = upsert_update(store, v, job.arm.settings.retrieval)
                    upserted = True
                    cell["update_seconds"] += u.pop("update_seconds")
                    cell.update(u)
                elif step == "continue":
                    u = continue_update(arm.generator, job.arm.settings.training, v, s.continue_training,
                                        stats["adapter_key"], cache_dir, progress)
                    cell["update_seconds"] += u["update_seconds"]
                    cell["update_cached"] |= u["update_cached"]
                    cell["continue_examples"] = u["train_examples"]
                elif step == "retrain":   # the arm's normal path on the v2 data: a fresh adapter
                    stack.close()         # free the v1 model before the v2 one loads
                    job = arm_job(cfg, kind, v.v2, v.seed, store)
                    arm, u = stack.enter_context(open_arm(job, cache_dir, progress))
                    cell["update_seconds"] += u["train_seconds"]
                    cell["update_cached"] |= bool(u["adapter_cached"])
                    cell["retrain_examples"] = u["train_examples"]
            after = answer(arm, job, name, "after", questions) if steps else \
                [{**r, "phase": "after"} for r in rows]
    finally:
        if upserted:
            cell["rollback_seconds"] = rollback(store, v, job.arm.settings.retrieval)
    return rows + after, cell


def open_store(run, v):
    """(embedder, the seed's v1 collection), or (None, None) when no study arm retrieves; in a
    study-private root, so the shared index is never edited."""
    from bench.arms.registry import get_arm_class
    from bench.retrieval.embedder import Embedder
    from bench.retrieval.store import VectorStore

    retrieving = [arm_of(run.cfg, a.split("+")[0]) for a in run.settings.arms]
    retrieving = [a for a in retrieving if get_arm_class(a.arm).retrieves]
    if not retrieving:
        return None, None
    r = retrieving[0].settings.retrieval   # the study checks that every retrieving arm agrees
    embedder = Embedder.load(r.embedder)
    store = VectorStore.open_or_build(r.chunks(v.v1.passages, embedder), embedder,
                                      run.cache_dir / "freshness" / "chroma",
                                      chunking=r.chunking_key(), progress=run.progress, search=r.search)
    return embedder, store


def measure(run) -> dict[str, pd.DataFrame]:
    cfg, s = run.cfg, run.settings
    items, cells, seed_seconds = [], [], {}
    bar = tqdm(total=len(cfg.seeds) * len(s.arms), desc="freshness", disable=not run.progress)
    with torch_threads(cfg.model.threads):
        for seed in cfg.seeds:
            t0 = time.perf_counter()
            v = build_versions(cfg.data.world.entities, s.changed_share, seed)
            questions = select_questions(v, s.splits, s.unchanged_per_split)
            # the seed's v1 collection is edited in place and deleted after: one run at a time
            with entry_lock(run.cache_dir, f"freshness-seed{seed}"):
                embedder, store = open_store(run, v)
                try:
                    for name in s.arms:
                        bar.set_postfix_str(f"seed {seed} {name}")
                        rows, cell = run_arm(name, run, v, questions, store)
                        cell.update(index_build_seconds=store.build_seconds if store else None,
                                    n_changes=len(v.changes), n_questions=len(questions))
                        items += rows
                        cells.append(cell)
                        bar.update()
                finally:
                    if store is not None:
                        store.client.delete_collection(store.collection_name)
                        embedder.close()
            seed_seconds[seed] = round(time.perf_counter() - t0, 2)
    bar.close()
    cells = pd.DataFrame(cells)
    run.timings["per_seed"] = seed_seconds
    run.extra["cells"] = cells.to_dict("records")
    return {"items.csv": pd.DataFrame(items), "cells.csv": cells}
