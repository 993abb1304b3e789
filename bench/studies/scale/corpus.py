"""scale, the corpora (no model): the asked base world, distractor worlds appended in a fixed
order until a size is covered, and the question sample asked at every size."""

from __future__ import annotations

import random

from bench.data.schema import Passage
from bench.data.world import WorldSpec, generate_world

DISTRACTOR_SEED0 = 1_000_000   # distractor world seeds start here, far from any base seed


def base_world(s, seed: int):
    return generate_world(WorldSpec(n_entities=s.base_entities), seed)


def _tagged(passages: list[Passage], tag: str) -> list[Passage]:
    # world generators reuse ids (e00000-d0-s0 in every world), so distractor ids get a prefix
    return [Passage(f"{tag}{p.id}", p.text, f"{tag}{p.doc_id}", p.meta) for p in passages]


def corpus_worlds(s, seed: int, size: int) -> list[tuple[list[Passage], list[int]]]:
    """[(passages of the whole world, indices kept in the corpus)]: the base world first, then
    distractor worlds until `size` is covered. A distractor world is kept whole beside the
    indices of its passages about entities nobody asks about, so its cached embeddings serve
    every seed (the dropped passages differ by seed) and every size (the last world may be
    used only in part, see corpus)."""
    world = base_world(s, seed)
    asked = set(world.entities) | {q["entity"] for q in world.qa_plan}   # incl. unknown names
    base = world.passages()
    worlds = [(base, list(range(len(base))))]
    total, i = len(base), 0
    while total < size:
        w = generate_world(WorldSpec(n_entities=s.distractor_entities), DISTRACTOR_SEED0 + i)
        ps = _tagged(w.passages(), f"x{i}:")
        kept = [j for j, p in enumerate(ps) if p.meta["entity"] not in asked]
        worlds.append((ps, kept))
        total += len(kept)
        i += 1
    return worlds


def corpus(s, seed: int, size: int) -> list[Passage]:
    return [ps[j] for ps, kept in corpus_worlds(s, seed, size) for j in kept][:size]


def questions(s, seed: int):
    """A fixed sample of answerable test questions (recall needs a gold passage)."""
    items = [q for q in base_world(s, seed).qa() if q.split == "test" and q.answerable]
    return random.Random(f"scale:{seed}").sample(items, min(s.queries, len(items)))
