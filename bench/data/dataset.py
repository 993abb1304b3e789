"""What one run cell sees: a corpus and its QA items, from the synthetic world or user files."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from bench.data.schema import Passage, QAItem


@dataclass
class Dataset:
    name: str
    passages: list[Passage]
    items: list[QAItem]
    fingerprint: str            # content hash of passages and items: keys every cache
    # the synthetic World it was rendered from (None for a corpus of your own): the injection
    # recipes re-render its facts (bench.injection.writers.WorldWriter)
    world: object = field(default=None, compare=False, repr=False)

    def split(self, name: str) -> list[QAItem]:
        return [q for q in self.items if q.split == name]

    def eval_items(self, splits, max_items: int | None, seed: int,
                   paraphrases: bool = False) -> list[QAItem]:
        """The items to answer: per split, all or a sample that is fixed for a given seed.
        With `paraphrases`, each sampled question is followed by one item per paraphrase."""
        out = []
        for split in splits:
            items = self.split(split)
            if max_items is not None and len(items) > max_items:
                keep = set(q.id for q in random.Random(f"sample:{seed}:{split}").sample(items, max_items))
                items = [q for q in items if q.id in keep]
            out.extend(q for item in items for q in (paraphrase_items(item) if paraphrases else [item]))
        return out


def paraphrase_items(item: QAItem) -> list[QAItem]:
    """The question and each paraphrase as its own item `<id>.p<j>` (j = 0: the question itself),
    sharing gold answers, gold ids, split and meta, with meta.group = the question's id."""
    return [replace(item, id=f"{item.id}.p{j}", question=text, paraphrases=[],
                    meta={**item.meta, "group": item.id, "paraphrase": j})
            for j, text in enumerate([item.question, *item.paraphrases])]


def build_dataset(data_cfg, seed: int) -> Dataset:
    from bench.config import content_hash

    if data_cfg.world is not None:
        from bench.data.world import WorldSpec, generate_world

        world_seed = seed + data_cfg.world.seed_offset
        world = generate_world(WorldSpec(n_entities=data_cfg.world.entities), world_seed)
        passages, items, name = world.passages(), world.qa(), f"world-{world_seed}"
    else:
        world = None
        from bench.data.loaders import load_dataset

        passages, items = load_dataset(data_cfg.corpus, data_cfg.qa)
        name = data_cfg.corpus
    fingerprint = content_hash([[p.to_json() for p in passages], [q.to_json() for q in items]])
    return Dataset(name, passages, items, fingerprint, world)
