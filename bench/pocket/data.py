"""Training examples for the pocket model, each a (prompt, target) pair of text.

A pair with an empty prompt is plain language modelling (loss on every token); otherwise the
loss is on the target only. Three lessons of the prototypes shape these streams:
- reading examples use *fresh random* people and values every time, so memory cannot answer
  and the model must copy from the passages;
- distractor passages are what a retriever returns: other people with the same attribute
  and other attributes of the same person, so the model must bind value to name;
- one sentence states one fact, the same unit the corpus uses as a passage.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Iterator

from bench.data import names
from bench.data.world import (ATTRIBUTES, ATTRIBUTE_BY_NAME, UNKNOWN, World, WorldSpec,
                              generate_world, render_question, render_statement)
from bench.prompts import closed_book_prompt, completion, context_prompt, quoted_completion

Example = tuple[str, str]


def _statement(rng: random.Random, attribute: str, name: str, value: str) -> str:
    attr = ATTRIBUTE_BY_NAME[attribute]
    return render_statement(attr, rng.randrange(len(attr.statements)), name, value)


def _question(rng: random.Random, attribute: str, name: str) -> str:
    attr = ATTRIBUTE_BY_NAME[attribute]
    return render_question(attr, rng.randrange(len(attr.questions)), name)


def reading_example(rng: random.Random, max_k: int = 4, abstain_share: float = 0.15,
                    same_attribute_share: float = 0.6, partition: int = 0,
                    answer_style: str = "value") -> Example:
    """A question, k passages as a retriever would return them, and the answer or UNKNOWN
    (written in `answer_style`, see bench.prompts.ANSWER_STYLES)."""
    k = rng.randint(1, max_k)
    attr = rng.choice(ATTRIBUTES)
    name = names.person_name(rng, partition)
    value = attr.sample(rng)
    abstain = rng.random() < abstain_share
    gold = None if abstain else _statement(rng, attr.name, name, value)
    passages = [] if abstain else [gold]
    used_attrs = {attr.name}
    while len(passages) < k:
        if rng.random() < same_attribute_share:
            other = names.person_name(rng, partition)
            passages.append(_statement(rng, attr.name, other, attr.sample(rng)))
        else:
            free = [a for a in ATTRIBUTES if a.name not in used_attrs]
            other_attr = rng.choice(free)
            used_attrs.add(other_attr.name)
            passages.append(_statement(rng, other_attr.name, name, other_attr.sample(rng)))
    rng.shuffle(passages)
    question = _question(rng, attr.name, name)
    if abstain or answer_style == "value":
        return context_prompt(question, passages), completion(UNKNOWN if abstain else value)
    return context_prompt(question, passages), quoted_completion(gold, value, name)


def reverse_example(rng: random.Random, max_k: int = 3, partition: int = 0) -> Example:
    """Passages about k people with one attribute and a question that names the value and asks
    whose it is ("Whose favourite color is teal?" -> the name).

    Meant to train the first hop of binding on its own (the value's position must carry its
    line's name). Off in the shipped recipe: a full build with it at 15% of the mix read no
    better (README, "Where the targets are missed")."""
    k, attr = rng.randint(1, max_k), rng.choice(ATTRIBUTES)
    people: dict[str, str] = {}
    while len(people) < k:
        people[names.person_name(rng, partition)] = attr.sample(rng)
    # values must be unique in the passages or the question has two answers
    by_value = {v: n for n, v in people.items()}
    passages = [_statement(rng, attr.name, n, v) for v, n in by_value.items()]
    rng.shuffle(passages)
    value = rng.choice(sorted(by_value))
    question = f"Whose {attr.name.replace('_', ' ')} is {value}?"
    return context_prompt(question, passages), completion(by_value[value])


def biography(rng: random.Random, world: World, entity: str) -> Example:
    """A fresh rendering of everything the world says about one person (order, templates)."""
    attrs = [a.name for a in ATTRIBUTES if (entity, a.name) in world.facts]
    rng.shuffle(attrs)
    text = " ".join(_statement(rng, a, entity, world.facts[(entity, a)]) for a in attrs)
    return "", text


def closed_book_example(rng: random.Random, world: World, entity: str, attribute: str) -> Example:
    return (closed_book_prompt(_question(rng, attribute, entity)),
            completion(world.facts[(entity, attribute)]))


def rehearsal_example(rng: random.Random, world: World, trained: list[tuple[str, str]],
                      max_k: int, answer_style: str) -> Example:
    """What an adapter replays to keep old skills while it learns a new world: half reading
    examples, a quarter biographies and a quarter closed-book questions of the background world.
    The probe's earlier adapter, replaying reading alone, cut background recall from 100% to 68%;
    with this mix it stays at 99-100% (scripts/pocket_prototypes/README.md)."""
    draw = rng.random()
    if draw < 0.5:
        return reading_example(rng, max_k=max_k, answer_style=answer_style)
    if draw < 0.75:
        return biography(rng, world, rng.choice(world.entities))
    return closed_book_example(rng, world, *rng.choice(trained))


def induction_example(rng: random.Random, vocab_size: int, length: int = 48) -> tuple[list[int], int]:
    """Random tokens with a span repeated later: teaches the copy circuit reading relies on.

    Returns the ids and where the repeat starts: only the repeat is predictable, so only the
    repeat carries loss (loss on random tokens is pure noise)."""
    span = rng.randint(6, 16)
    prefix = [rng.randrange(16, vocab_size) for _ in range(length - span)]
    start = rng.randrange(0, len(prefix) - span)
    return prefix + prefix[start:start + span], len(prefix) + 1


def background_qa_facts(world: World) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(trained, held-out) facts of the background world: QA is trained on the first half only,
    so the held-out half measures whether facts learnt from documents can be recalled."""
    train, held = [], []
    for item in world.qa():
        if item.meta["kind"] != "answerable":
            continue
        key = (item.meta["entity"], item.meta["attribute"])
        (train if item.split == "train" else held).append(key)
    return train, held


def mixture(rng: random.Random, world: World, weights: dict[str, float],
            max_k: int, answer_style: str = "value") -> Iterator[tuple[str, Example]]:
    """An endless stream of (kind, example) drawn by weight; 'induction' yields None examples.
    Context examples answer in `answer_style`."""
    kinds = list(weights)
    probs = [weights[k] for k in kinds]
    trained, _ = background_qa_facts(world)
    while True:
        kind = rng.choices(kinds, probs)[0]
        if kind == "reading":
            yield kind, reading_example(rng, max_k=max_k, answer_style=answer_style)
        elif kind == "copy":
            yield kind, reading_example(rng, max_k=1, abstain_share=0.0, answer_style=answer_style)
        elif kind == "binding":
            yield kind, reading_example(rng, max_k=max_k, abstain_share=0.0,
                                        same_attribute_share=1.0, answer_style=answer_style)
        elif kind == "reverse":
            yield kind, reverse_example(rng, max_k=max_k)
        elif kind == "biography":
            yield kind, biography(rng, world, rng.choice(world.entities))
        elif kind == "closed_book":
            yield kind, closed_book_example(rng, world, *rng.choice(trained))
        elif kind == "induction":
            yield kind, None
        else:
            raise ValueError(f"unknown example kind '{kind}'")


def background_world(recipe) -> World:
    """The pocket model's own knowledge: partition 0 names, never shared with a test world."""
    return generate_world(WorldSpec(n_entities=recipe.background_entities, partition=0), recipe.seed)


def fingerprint(recipe, n: int = 300) -> str:
    """A hash of what the pocket model is trained on: its world and each stream's first examples."""
    world = background_world(recipe)
    h = hashlib.sha256()
    h.update(json.dumps([p.to_json() for p in world.passages()]).encode())
    h.update(json.dumps([q.to_json() for q in world.qa()]).encode())
    rng = random.Random(0)
    kinds = ["reading", "copy", "binding", "biography", "closed_book"]
    # newer kinds only when a recipe uses them, so older recipes keep their hash
    kinds += [k for k in ("reverse",) if k in recipe.weights]
    for kind in kinds:
        stream = mixture(rng, world, {kind: 1.0}, recipe.max_k, recipe.answer_style)
        h.update(json.dumps([next(stream) for _ in range(n)]).encode())
    h.update(json.dumps(induction_example(random.Random(0), 1000)).encode())
    return h.hexdigest()
