"""The LoRA adapter the `lora` and `hybrid` arms share: its training data, and a cache keyed by
a hash of (base model, training examples, hyper-parameters, seed).

A cached adapter keeps the train time and token count measured when it was trained (as HELM
keeps original timings when replaying), marked `adapter_cached: true`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace

from bench.config import CACHE_DIR, KEY_OMIT_DEFAULT, ConfigError, content_hash
from bench.data.dataset import Dataset
from bench.data.world import UNKNOWN
from bench.injection.recipe import Recipe
from bench.io import atomic_folder
from bench.models.lora import train_lora
from bench.models.resolve import model_identity
from bench.prompts import (ANSWER_FORMATS, closed_book_prompt, completion, context_prompt,
                           format_answer, quoted_completion)


@dataclass(frozen=True)
class TrainingData:
    documents: bool = True          # every source document as plain language-modelling text
    train_questions: bool = True    # the 'train' split QA items, closed-book
    paraphrases: bool = True        # ... each also in every paraphrase (Ovadia et al. augmentation)
    reading_replay: bool = True     # mix in context-QA on train questions so reading survives
    max_train_questions: int | None = None
    # how QA targets (closed-book and reading replay) are written: plain text, or the JSON object
    # {json_key: answer} (the format experiment); documents stay plain text
    answer_format: str = field(default="plain", metadata=KEY_OMIT_DEFAULT)
    json_key: str = field(default="answer", metadata=KEY_OMIT_DEFAULT)
    # knowledge-injection components added to the above (bench.injection): renderings,
    # synthetic_qa, distill, raft
    recipe: Recipe = field(default_factory=Recipe, metadata=KEY_OMIT_DEFAULT)

    def validate(self, where: str) -> None:
        if not (self.documents or self.train_questions or self.recipe.active):
            raise ConfigError(f"{where}: documents, train_questions and recipe are all off: nothing to train on")
        if self.answer_format not in ANSWER_FORMATS:
            raise ConfigError(f"{where}.answer_format: expected one of {list(ANSWER_FORMATS)}, "
                              f"got {self.answer_format!r}")
        if not self.json_key:
            raise ConfigError(f"{where}.json_key: expected a non-empty key name")


def trained_items(data: TrainingData, dataset: Dataset, seed: int):
    """The 'train' split QA items an adapter learns from: all, or a sample of max_train_questions
    that is fixed for a given seed."""
    train = dataset.split("train")
    if data.max_train_questions is not None:
        train = random.Random(f"train:{seed}").sample(train, min(len(train), data.max_train_questions))
    return train


def training_examples(data: TrainingData, dataset: Dataset, seed: int, answer_style: str = "value",
                      chat=None, writer=None, teacher=None, k: int = 1, stats: dict | None = None):
    """(examples, replay examples) as (prompt, target) pairs; only 'train' items' questions are
    used (a recipe adds generated ones, bench.injection). Reading replay answers in the model's
    `answer_style` (a quote-style model quotes the gold passage first), so an adapter does not
    teach the model a second way to read. With a chat format (an instruct model:
    bench.models.chat.ChatFormat) every QA prompt is wrapped in the same chat turns the arm asks
    in; documents stay plain text. `stats` (a dict) receives what the recipe generated."""
    texts: list[tuple[str, str]] = []
    closed: list[tuple[str, str]] = []
    if data.documents:
        docs: dict[str, list[str]] = {}
        for p in dataset.passages:
            docs.setdefault(p.doc_id or p.id, []).append(p.text)
        texts += [("", " ".join(t)) for t in docs.values()]
    train = trained_items(data, dataset, seed)
    by_id = {p.id: p.text for p in dataset.passages}

    def target(answer: str) -> str:
        return completion(format_answer(answer, data.answer_format, data.json_key))

    replay: list[tuple[str, str]] = []
    rng = random.Random(f"replay:{seed}")
    for q in train:
        answer = target(q.answers[0] if q.answers else UNKNOWN)
        if data.train_questions:
            questions = [q.question, *q.paraphrases] if data.paraphrases else [q.question]
            closed += [(closed_book_prompt(text), answer) for text in questions]
        if data.reading_replay:
            gold = [by_id[g] for g in q.gold_ids if g in by_id][:1]
            others = rng.sample(dataset.passages, 3)
            context = gold + [p.text for p in others[: rng.randint(0, 2)]]
            reply = answer
            if not gold:   # an item without gold passages teaches abstention from context
                context, reply = [p.text for p in others], target(UNKNOWN)
            elif answer_style == "quote":
                reply = quoted_completion(gold[0], reply.strip(), (q.meta or {}).get("entity"))
            rng.shuffle(context)
            replay.append((context_prompt(q.question, context), reply))
    reading: list[tuple[str, str]] = []
    if data.recipe.active:
        from bench.injection.build import recipe_examples
        from bench.injection.writers import pick_writer

        extra = recipe_examples(data.recipe, dataset, seed, writer or pick_writer(data.recipe, dataset, CACHE_DIR),
                                target, answer_style=answer_style, teacher=teacher, k=k)
        texts, closed, reading = texts + extra.texts, closed + extra.closed_book, extra.context
        if stats is not None:
            stats.update(extra.stats)
    if chat is not None:
        closed = [(chat.wrap(p, False), chat.target(t)) for p, t in closed]
        reading = [(chat.wrap(p, True), chat.target(t)) for p, t in reading]
        replay = [(chat.wrap(p, True), chat.target(t)) for p, t in replay]
    return texts + closed + reading, replay


def attach_adapter(generator, settings, env) -> dict:
    """Load the cached adapter for this (model, data, settings, seed) or train and cache it; a
    second run that needs the same adapter waits while the first trains it, then loads it."""
    import time

    from bench.injection.leaks import check_no_leak
    from bench.locks import entry_lock

    start, recipe_stats = time.perf_counter(), {}
    parts = _recipe_parts(generator, settings, env)
    try:
        examples, replay = training_examples(settings.training, env.dataset, env.seed,
                                             generator.answer_style, generator.chat, **parts,
                                             stats=recipe_stats)
    finally:
        if hasattr(parts.get("writer"), "close"):   # a model writer's model goes before training
            parts["writer"].close()
    if not examples:
        raise ValueError(f"{env.dataset.name}: no training examples (no documents and no train split)")
    check_no_leak(examples + replay, env.dataset)
    recipe_stats["recipe_seconds"] = round(time.perf_counter() - start, 3)
    lora = replace(settings.lora, seed=env.seed,
                   replay_share=settings.lora.replay_share if replay else 0.0)
    key = content_hash({"model": model_identity(env.model.name), "examples": examples,
                        "replay": replay, "settings": lora.to_json()})
    with entry_lock(env.cache_dir, f"adapter-{key}"):
        return _load_or_train(generator, env, key, examples, replay, lora, recipe_stats)


def _recipe_parts(generator, settings, env) -> dict:
    """The writer, teacher and retrieval depth a recipe needs (none without a recipe)."""
    recipe = settings.training.recipe
    if not recipe.active:
        return {}
    from bench.injection.teacher import make_teacher
    from bench.injection.writers import pick_writer

    retrieval = getattr(settings, "retrieval", None)
    return {"writer": pick_writer(recipe, env.dataset, env.cache_dir),
            "teacher": make_teacher(generator, env.model, env.cache_dir) if recipe.distill else None,
            "k": retrieval.k if retrieval is not None else 1}


def _load_or_train(generator, env, key: str, examples, replay, lora, recipe_stats: dict) -> dict:
    from peft import PeftModel

    from bench.engine import current_machine_share

    folder = env.cache_dir / "adapters" / key
    if (folder / "stats.json").exists():
        generator.model = PeftModel.from_pretrained(generator.model, folder).eval()
        stats = json.loads((folder / "stats.json").read_text())
        return {**stats, "adapter_cached": True, "adapter_key": key}
    peft_model, stats = train_lora(
        generator.model, generator.tokenizer, examples, lora,
        replay=(lambda r: r.choice(replay)) if replay else None, progress=env.progress)
    generator.model = peft_model
    stats = {k: v for k, v in stats.items() if k != "settings"}
    # what building the recipe's examples cost (writer, teacher) is kept as measured then, and
    # the share of the machine the training held (bench.engine.machine_share)
    stats.update(train_examples=len(examples), replay_examples=len(replay), **recipe_stats,
                 train_machine_share=round(current_machine_share(), 4))
    with atomic_folder(folder) as tmp:   # a killed run never leaves a half-written adapter
        peft_model.save_pretrained(tmp)
        stats["adapter_disk_bytes"] = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1))
    return {**stats, "adapter_cached": False, "adapter_key": key}

