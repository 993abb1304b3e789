"""freshness: world v1 -> v2 with a share of facts changed; each arm answers the same questions
before and after its own update step, and the update step is timed.

Arms (each a name `kind+update`): closed_book (no update, the floor); rag+upsert (upsert the
changed chunks' v2 texts into the existing chroma collection, no rebuild); lora+retrain (a fresh
adapter trained from scratch on v2 with the arm's normal recipe); lora+continue (keep training
the v1 adapter on the changed facts only); hybrid+upsert (v1 adapter, updated index);
hybrid+upsert+continue (both). Per seed, one chroma collection of v1 is built; each retrieving
arm upserts into it and the v1 texts are upserted back afterwards (rollback, also timed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import yaml
from tqdm import tqdm

from bench.arms.adapter import TrainingData
from bench.arms.base import RetrievalSettings
from bench.arms.registry import get_arm_class
from bench.config import CACHE_DIR, ConfigError, ModelConfig, build
from bench.engine import Job, answer_rows, open_arm
from bench.io import write_csv, write_text
from bench.metrics.scores import exact_match
from bench.models.lora import LoraSettings
from bench.studies import freshness_report as fr
from bench.studies.freshness_report import claims, redraw  # noqa: F401  (the study convention)
from bench.studies.freshness_update import (ContinueSettings, build_versions, continue_update,
                                            rollback, select_questions, upsert_update)

ARMS = {"closed_book": "none (the base model; the floor)",
        "rag+upsert": "upsert changed chunks into the existing collection",
        "lora+retrain": "fresh adapter trained from scratch on v2 (same recipe as v1)",
        "lora+continue": "continue the v1 adapter on the changed facts only",
        "hybrid+upsert": "upsert only; the v1 adapter is kept",
        "hybrid+upsert+continue": "upsert, then continue the v1 adapter on the changed facts"}


@dataclass(frozen=True)
class WorldSection:
    entities: int = 200
    changed_share: float = 0.2


@dataclass(frozen=True)
class QuestionSection:
    splits: tuple[str, ...] = ("test", "train")
    unchanged_per_split: int = 100        # a fixed sample; every changed fact is asked


@dataclass(frozen=True)
class QuickSection:
    entities: int = 40
    unchanged_per_split: int = 20
    lora_steps: int = 30
    continue_steps: int = 10
    seeds: tuple[int, ...] = (0, 1)


@dataclass(frozen=True)
class FreshnessConfig:
    name: str = "freshness"
    claim: str = ""
    description: str = ""
    world: WorldSection = field(default_factory=WorldSection)
    questions: QuestionSection = field(default_factory=QuestionSection)
    model: ModelConfig = field(default_factory=ModelConfig)
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = tuple(ARMS)
    retrieval: RetrievalSettings = field(default_factory=lambda: RetrievalSettings(k=1))
    training: TrainingData = field(default_factory=TrainingData)
    lora: LoraSettings = field(default_factory=LoraSettings)
    continue_training: ContinueSettings = field(default_factory=ContinueSettings)
    quick: QuickSection = field(default_factory=QuickSection)
    torch_threads: int | None = None      # None: torch's default; 1 avoids OpenMP thrashing on a busy CPU

    def validate(self, where: str) -> None:
        bad = [a for a in self.arms if a not in ARMS]
        if bad or not self.arms:
            raise ConfigError(f"{where}.arms: unknown {bad}; expected some of {list(ARMS)}")
        if not self.seeds:
            raise ConfigError(f"{where}.seeds: expected at least one seed")
        if not 0 < self.world.changed_share < 1:
            raise ConfigError(f"{where}.world.changed_share: expected 0 < x < 1")
        if [s for s in self.questions.splits if s not in ("train", "test")]:
            raise ConfigError(f"{where}.questions.splits: expected 'train'/'test'")


def load_config(path: Path, quick: bool = False) -> FreshnessConfig:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    cfg = build(FreshnessConfig, yaml.safe_load(path.read_text()), f"{path}: config")
    if quick:
        q = cfg.quick
        cfg = replace(cfg, seeds=q.seeds, world=replace(cfg.world, entities=q.entities),
                      questions=replace(cfg.questions, unchanged_per_split=q.unchanged_per_split),
                      lora=replace(cfg.lora, steps=q.lora_steps),
                      continue_training=replace(cfg.continue_training, steps=q.continue_steps))
    return cfg


def arm_settings(kind: str, cfg: FreshnessConfig):
    """The registered arm's own settings, filled from the study's shared sections."""
    cls = get_arm_class(kind).Settings
    shared = {"retrieval": cfg.retrieval, "training": cfg.training, "lora": cfg.lora}
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in shared.items() if k in names})


def arm_job(kind: str, cfg: FreshnessConfig, dataset, seed: int, store) -> Job:
    """The registered arm on one world version; a retrieving arm answers from the study's shared
    store (handed in through the store seam), so the update goes into the collection it reads."""
    from bench.config import ArmConfig, DataConfig, WorldData

    return Job(ArmConfig(kind, kind, arm_settings(kind, cfg)), seed, cfg.model,
               DataConfig(world=WorldData(entities=cfg.world.entities)), dataset, store=store)


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


def run_arm(name, cfg, v, questions, store, cache_dir, progress) -> tuple[list[dict], dict]:
    """Not an executor job: the arm answers, is updated in place (upsert, continued training or
    a retrain), and answers again; it uses the executor's pieces (open_arm, answer_rows)."""
    kind, *updates = name.split("+")
    upserted = False
    try:
        with contextlib.ExitStack() as stack:
            job = arm_job(kind, cfg, v.v1, v.seed, store)
            arm, stats = stack.enter_context(open_arm(job, cache_dir, progress))
            cell = {"arm": name, "seed": v.seed, "update_seconds": 0.0, "update_cached": False,
                    "v1_adapter_cached": stats.get("adapter_cached"), "v1_train_seconds": stats.get("train_seconds")}
            rows = answer(arm, job, name, "before", questions)
            for u in updates:
                if u == "upsert":
                    s = upsert_update(store, v, cfg.retrieval.chunk_size)
                    upserted = True
                    cell["update_seconds"] += s.pop("update_seconds")
                    cell.update(s)
                elif u == "continue":
                    s = continue_update(arm.generator, cfg.training, v, cfg.continue_training,
                                        stats["adapter_key"], cache_dir, progress)
                    cell["update_seconds"] += s["update_seconds"]
                    cell["update_cached"] |= s["update_cached"]
                    cell["continue_examples"] = s["train_examples"]
                elif u == "retrain":   # the arm's normal path on the v2 data: a fresh adapter
                    stack.close()      # free the v1 model before the v2 one loads
                    job = arm_job(kind, cfg, v.v2, v.seed, store)
                    arm, s = stack.enter_context(open_arm(job, cache_dir, progress))
                    cell["update_seconds"] += s["train_seconds"]
                    cell["update_cached"] |= bool(s["adapter_cached"])
                    cell["retrain_examples"] = s["train_examples"]
            after = answer(arm, job, name, "after", questions) if updates else \
                [{**r, "phase": "after"} for r in rows]
    finally:
        if upserted:
            cell["rollback_seconds"] = rollback(store, v, cfg.retrieval.chunk_size)
    return rows + after, cell


def run(config: Path, out: Path, quick: bool = False, progress: bool = True,
        cache_dir: Path = CACHE_DIR) -> Path:
    from bench.report.manifest import write_manifest
    from bench.retrieval.chunking import chunk_passages, chunking_key
    from bench.retrieval.embedder import Embedder
    from bench.retrieval.store import VectorStore

    start = time.perf_counter()
    cfg = load_config(config, quick)
    if cfg.torch_threads:
        import torch
        torch.set_num_threads(cfg.torch_threads)
    out, cache_dir = Path(out), Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    items, cells, seed_seconds = [], [], {}
    bar = tqdm(total=len(cfg.seeds) * len(cfg.arms), desc="freshness", disable=not progress)
    for seed in cfg.seeds:
        t0 = time.perf_counter()
        v = build_versions(cfg.world.entities, cfg.world.changed_share, seed)
        questions = select_questions(v, cfg.questions.splits, cfg.questions.unchanged_per_split)
        embedder = store = None
        if any(get_arm_class(a.split("+")[0]).retrieves for a in cfg.arms):
            embedder = Embedder.load(cfg.retrieval.embedder)
            store = VectorStore.open_or_build(   # a study-private root: the shared index is never edited
                chunk_passages(v.v1.passages, cfg.retrieval.chunk_size), embedder,
                cache_dir / "freshness" / "chroma", chunking=chunking_key(cfg.retrieval.chunk_size),
                progress=progress)
        try:
            for name in cfg.arms:
                bar.set_postfix_str(f"seed {seed} {name}")
                rows, cell = run_arm(name, cfg, v, questions, store, cache_dir, progress)
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
    return write(cfg, str(config), quick, pd.DataFrame(items), pd.DataFrame(cells), out,
                 {"total": round(time.perf_counter() - start, 2), "per_seed": seed_seconds}, write_manifest)


def write(cfg, source, quick, items, cells, out, timings, write_manifest) -> Path:
    per_seed = fr.cell_metrics(items, cells)
    summary = fr.summarize(per_seed)
    updates = {a: ARMS[a] for a in cfg.arms}
    write_csv(summary, out / "summary.csv")
    write_csv(fr.wide(summary, updates), out / "freshness.csv")
    write_csv(cells, out / "cells.csv", float_format=None)
    write_csv(items, out / "items.csv", float_format=None)
    fr.redraw(out)
    checks = fr.claims(out)    # the verdicts the claims report shows, from the saved tables
    in_place = fr.updated_in_place(cells)
    first = cells.iloc[0] if len(cells) else {}
    setup = [
        f"Per seed ({list(cfg.seeds)}{', --quick' if quick else ''}): world v1 = generate_world({cfg.world.entities} people), "
        f"v2 = next_version(v1) changing {100 * cfg.world.changed_share:.0f}% of facts "
        f"({int(cells['n_changes'].mean()) if len(cells) else 0} changes per seed on average; passage ids kept).",
        f"Questions ({int(cells['n_questions'].mean()) if len(cells) else 0} per seed): every changed fact's question "
        f"in splits {list(cfg.questions.splits)}, scored against the v2 value (EM) and the v1 value (stale), plus "
        f"{cfg.questions.unchanged_per_split} unchanged facts per split.",
        f"Model {cfg.model.name}; retrieval k = {cfg.retrieval.k}, chunk size {cfg.retrieval.chunk_size}; LoRA r = "
        f"{cfg.lora.rank}, {cfg.lora.steps} steps, batch {cfg.lora.batch_size}, lr {cfg.lora.lr}, training data "
        f"{dataclasses.asdict(cfg.training)} (the accuracy experiment's recipe).",
        f"Continue: {cfg.continue_training.steps} steps (batch {cfg.continue_training.batch_size}, lr "
        f"{cfg.continue_training.lr}, replay {cfg.continue_training.replay_share}) on only the v2 sentences that "
        f"state a changed fact and the changed train-split facts' v2 questions (with paraphrases).",
        "Update seconds: RAG = embedding + chroma upsert of the changed chunks; retrain = the fresh adapter's "
        "training loop; continue = the continued training loop; hybrid+upsert+continue = both. Model loading "
        "is not counted.",
        *[f"{a}: {ARMS[a]}" for a in cfg.arms]]
    notes = [f"Index: one chroma collection per seed built on v1 ({first.get('index_build_seconds', 0) or 0:.1f} s "
             f"for seed {first.get('seed', '')}); each retrieving arm upserts into it and the v1 texts are "
             "upserted back afterwards; collection name and count stay the same (checked: "
             f"{in_place}). v2 removes no passage, so `delete` is not exercised.",
             f"Adapters cached from an earlier run (they keep the train seconds measured then): v1 "
             f"{int(cells['v1_adapter_cached'].fillna(False).astype(bool).sum())} of "
             f"{int(cells['v1_adapter_cached'].notna().sum())} arm-seeds; update step "
             f"{int(cells['update_cached'].astype(bool).sum())} of {len(cells)}.",
             "closed_book has no update: its 'after' is its 'before'; it is the floor line in the plot.",
             f"Timings: total {timings['total']:.0f} s; per seed {timings['per_seed']}."]
    write_text(fr.markdown(summary, updates, checks, setup, cfg.claim, notes), out / "report.md")
    cfg_json = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    write_manifest(out / "manifest.json", cfg.name, cfg_json, source, timings,
                   {"quick": quick, "verdicts": [dataclasses.asdict(c) for c in checks],
                    "cells": cells.to_dict("records")})
    return out / "report.md"
