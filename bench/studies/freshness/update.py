"""freshness, the data and the update steps (model code: the measuring half's): world v1 -> v2,
the questions asked, the RAG upsert of changed chunks into the existing collection, and
continued training of an existing LoRA adapter on the changed facts only.

Every update returns the wall seconds it took, measured here (or, for a cached adapter, the
seconds measured when it was trained, flagged `update_cached`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.config import content_hash
from bench.data.dataset import Dataset
from bench.data.schema import QAItem
from bench.data.world import WorldSpec, generate_world, next_version
from bench.io import atomic_folder
from bench.locks import entry_lock
from bench.retrieval.chunking import Chunk
from bench.studies.freshness import ContinueSettings


@dataclass(frozen=True)
class Question:
    item: QAItem          # the v2 item: answers = [the v2 value]
    group: str            # "changed" | "unchanged"
    old: str              # the v1 value (== the v2 value for unchanged facts)


@dataclass
class Versions:
    seed: int
    v1: Dataset
    v2: Dataset
    changes: list[dict]   # next_version's changes: entity, attribute, old, new, passage_ids


def _dataset(world, name: str) -> Dataset:
    passages, items = world.passages(), world.qa()
    fingerprint = content_hash([[p.to_json() for p in passages], [q.to_json() for q in items]])
    return Dataset(name, passages, items, fingerprint)


def build_versions(entities: int, changed_share: float, seed: int) -> Versions:
    """World v1 exactly as the accuracy experiment builds it for this seed, and its v2."""
    v1 = generate_world(WorldSpec(n_entities=entities, changed_share=changed_share), seed)
    v2 = next_version(v1)
    return Versions(seed, _dataset(v1, f"world-{seed}"), _dataset(v2, f"world-{seed}-v2"), v2.changes)


def _key(item: QAItem) -> tuple[str, str]:
    return item.meta["entity"], item.meta["attribute"]


def select_questions(v: Versions, splits, unchanged_per_split: int) -> list[Question]:
    """Every changed fact's question (asked against v2 truth) and a fixed sample of unchanged
    facts' questions, per split."""
    old = {(c["entity"], c["attribute"]): c["old"] for c in v.changes}
    out: list[Question] = []
    for split in splits:
        answerable = [q for q in v.v2.split(split) if q.meta.get("kind") == "answerable"]
        changed = [q for q in answerable if _key(q) in old]
        same = [q for q in answerable if _key(q) not in old]
        rng = random.Random(f"freshness:{v.seed}:{split}")
        same = rng.sample(same, min(len(same), unchanged_per_split))
        out += [Question(q, "changed", old[_key(q)]) for q in changed]
        out += [Question(q, "unchanged", q.answers[0]) for q in sorted(same, key=lambda q: q.id)]
    return out


def changed_passage_ids(changes: list[dict]) -> set[str]:
    return {pid for c in changes for pid in c["passage_ids"]}


def changed_chunks(dataset: Dataset, changes: list[dict], retrieval, embedder=None) -> list[Chunk]:
    """The chunks of `dataset` (chunked as `retrieval` says) that hold a changed passage (same
    passage ids in v1 and v2)."""
    ids = changed_passage_ids(changes)
    return [c for c in retrieval.chunks(dataset.passages, embedder) if ids.intersection(c.passage_ids)]


def _replace(store, old: list[Chunk], new: list[Chunk]) -> tuple[float, int]:
    """Upsert `new` in place, deleting chunks of `old` that `new` no longer has (a changed
    sentence count under sentence or token chunking). Returns (seconds, chunks deleted)."""
    stale = sorted({c.id for c in old} - {c.id for c in new})
    return store.delete(stale) + store.upsert(new), len(stale)


def upsert_update(store, v: Versions, retrieval) -> dict:
    """RAG's update: upsert the changed chunks' v2 texts into the open collection, in place."""
    name, count = store.collection_name, store.count()
    chunks = changed_chunks(v.v2, v.changes, retrieval, store.embedder)
    seconds, deleted = _replace(store, changed_chunks(v.v1, v.changes, retrieval, store.embedder), chunks)
    return {"update_seconds": seconds, "upserted_chunks": len(chunks),
            "collection_same": store.collection.name == name, "count_before": count,
            "count_after": store.count(), **({"deleted_chunks": deleted} if deleted else {})}


def rollback(store, v: Versions, retrieval) -> float:
    """Put the v1 texts back, so the next arm starts from the same v1 collection."""
    return _replace(store, changed_chunks(v.v2, v.changes, retrieval, store.embedder),
                    changed_chunks(v.v1, v.changes, retrieval, store.embedder))[0]


def delta_dataset(v: Versions) -> Dataset:
    """Only what changed: the v2 sentences that state a changed fact (grouped by document when
    used as documents) and the v2 QA items of the changed facts (train split ones are trained)."""
    ids = changed_passage_ids(v.changes)
    keys = {(c["entity"], c["attribute"]) for c in v.changes}
    passages = [p for p in v.v2.passages if p.id in ids]
    items = [q for q in v.v2.items if q.meta.get("entity") and _key(q) in keys]
    return Dataset(f"{v.v2.name}-delta", passages, items,
                   content_hash([[p.to_json() for p in passages], [q.to_json() for q in items]]))


def continue_lora(peft_model, tokenizer, examples, replay, settings: ContinueSettings, seed: int,
                  progress: bool = True) -> dict:
    """Keep training the adapter already on `peft_model` (the loop of train_lora)."""
    from bench.models.lora import fit_adapter

    for name, p in peft_model.named_parameters():
        p.requires_grad_("lora_" in name)
    if not any(p.requires_grad for p in peft_model.parameters()):
        raise ValueError("continue_lora: the model has no LoRA parameters to train")
    torch.manual_seed(seed)
    fit = fit_adapter(peft_model, tokenizer, examples, steps=settings.steps,
                      batch_size=settings.batch_size, lr=settings.lr,
                      replay_share=settings.replay_share, rng=random.Random(f"continue:{seed}"),
                      replay=(lambda r: r.choice(replay)) if replay else None,
                      progress=progress, desc="LoRA continue")
    return {"update_seconds": fit["seconds"], "train_tokens": fit["tokens"],
            "final_loss": fit["final_loss"], "train_examples": len(examples),
            "replay_examples": len(replay)}


def continue_update(generator, training, v: Versions, settings: ContinueSettings, v1_key: str,
                    cache_dir: Path, progress: bool = True) -> dict:
    """Continue the v1 adapter on the delta; cached by hash like attach_adapter (a cached
    adapter keeps the seconds measured when it was trained, flagged update_cached)."""
    from bench.arms.adapter import training_examples

    examples, replay = training_examples(training, delta_dataset(v), v.seed, generator.answer_style,
                                         generator.chat)
    key = content_hash({"v1_adapter": v1_key, "examples": examples, "replay": replay,
                        "settings": vars(settings), "seed": v.seed})
    folder = Path(cache_dir) / "adapters" / f"continue-{key}"
    with entry_lock(cache_dir, f"adapter-continue-{key}"):   # one run trains it, others wait
        return _load_or_continue(generator, folder, examples, replay, settings, v, progress)


def _load_or_continue(generator, folder: Path, examples, replay, settings, v, progress: bool) -> dict:
    from peft import PeftModel

    if (folder / "stats.json").exists():
        base = generator.model.unload()          # drop the v1 adapter, load the continued one
        generator.model = PeftModel.from_pretrained(base, folder).eval()
        return {**json.loads((folder / "stats.json").read_text()), "update_cached": True}
    stats = continue_lora(generator.model, generator.tokenizer, examples, replay, settings,
                          v.seed, progress)
    with atomic_folder(folder) as tmp:
        generator.model.save_pretrained(tmp)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1))
    return {**stats, "update_cached": False}
