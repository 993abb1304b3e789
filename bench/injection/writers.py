"""Writers: where a recipe's rewritings and generated questions come from.

- `WorldWriter`: the synthetic world's own renderers (fresh templates and sentence order per
  rendering) and question templates that word no evaluation question (`TRAINING_QUESTIONS`,
  disjoint from bench.data.world's; tests/test_injection.py checks it).
- `ModelWriter`: for a corpus of your own, an instruct model (SmolLM2-135M by default, any model
  name) paraphrases each document and writes a question per passage; what it writes is cached by
  content hash (writer model, prompts, seed), so a second adapter never generates it again.

A generated question is `Synthetic(question, answer, passage_id)`: the fact's passage is the one
the question was written from (the teacher reads it in distillation, RAFT puts it in context).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from bench.data.world import ATTRIBUTE_BY_NAME, render_statement

# Training-only question wordings per attribute: none of them is a question or paraphrase of
# bench.data.world.ATTRIBUTES, which word every evaluation question.
TRAINING_QUESTIONS = {
    "birth_year": ("In which year was {name} born?", "What year did {name} come into the world?",
                   "{name} was born in which year?"),
    "hometown": ("Which town does {name} come from?", "Where did {name} grow up?",
                 "{name} is from which town?"),
    "occupation": ("What is {name}'s job?", "What does {name} do for a living?",
                   "{name} works in which profession?"),
    "employer": ("Which company employs {name}?", "Where is {name} employed?",
                 "{name} is employed by which company?"),
    "instrument": ("What instrument does {name} play?", "Which instrument can {name} play?",
                   "{name} plays which instrument?"),
    "color": ("Which color is the favorite of {name}?", "What is {name}'s favorite color?",
              "{name} likes which color best?"),
}


@dataclass(frozen=True)
class Synthetic:
    question: str
    answer: str
    passage_id: str


class WorldWriter:
    name = "world"

    def __init__(self, world):
        self.world = world

    def renderings(self, dataset, n: int, seed: int) -> list[str]:
        """n fresh renderings of every document: the same facts, each sentence in a random
        template, the sentences in a random order."""
        rng = random.Random(f"renderings:{seed}")
        docs: dict[str, list[tuple[str, str]]] = {}
        for p in dataset.passages:
            docs.setdefault(p.doc_id or p.id, []).append((p.meta["entity"], p.meta["attribute"]))
        out = []
        for facts in docs.values():
            for _ in range(n):
                order = list(facts)
                rng.shuffle(order)
                out.append(" ".join(self._statement(rng, e, a) for e, a in order))
        return out

    def _statement(self, rng, entity: str, attribute: str) -> str:
        attr = ATTRIBUTE_BY_NAME[attribute]
        value = self.world.facts[(entity, attribute)]
        return render_statement(attr, rng.randrange(len(attr.statements)), entity, value)

    def questions(self, dataset, n: int, seed: int, kind: str = "qa") -> list[Synthetic]:
        """n questions about every fact the documents state (n distinct wordings while they
        last), each tied to one passage that states it."""
        rng = random.Random(f"questions:{kind}:{seed}")
        facts: dict[tuple[str, str], str] = {}
        for p in dataset.passages:
            facts.setdefault((p.meta["entity"], p.meta["attribute"]), p.id)
        out = []
        for (entity, attribute), pid in facts.items():
            templates = list(TRAINING_QUESTIONS[attribute])
            rng.shuffle(templates)
            for j in range(n):
                out.append(Synthetic(templates[j % len(templates)].format(name=entity),
                                     self.world.facts[(entity, attribute)], pid))
        return out


PARAPHRASE = ("Rewrite the following text in other words. Keep every name, number and fact; "
              "write one paragraph and nothing else.\n\n{text}")


def _shots() -> str:
    """Worked passage/question/answer triples (the chat module's fictional, person-free ones):
    a small model continues this pattern far more reliably than it follows an instruction."""
    from bench.models.chat import CONTEXT_DEMOS

    return "".join(f"Passage: {p}\nQuestion: {q}\nAnswer: {a}\n\n" for q, p, a in CONTEXT_DEMOS)


class ModelWriter:
    """An instruct model writing rewritings and questions for a corpus of your own (sampled at
    temperature 0.7, seeded; cached under <cache>/synthetic/ by content hash)."""

    def __init__(self, model_name: str, cache_dir: Path):
        self.name, self.cache_dir = model_name, Path(cache_dir)
        self._generator = None

    def renderings(self, dataset, n: int, seed: int) -> list[str]:
        docs: dict[str, list[str]] = {}
        for p in dataset.passages:
            docs.setdefault(p.doc_id or p.id, []).append(p.text)
        texts = [" ".join(t) for t in docs.values()]
        prompts = [PARAPHRASE.format(text=t) for t in texts for _ in range(n)]
        # room for a rewrite twice the longest document (~4 characters a token), at most 512 tokens
        budget = min(512, max((len(t) for t in texts), default=0) // 2 + 16)
        return [r for r in self._write(prompts, seed, "renderings", max_new_tokens=budget) if r]

    def questions(self, dataset, n: int, seed: int, kind: str = "qa") -> list[Synthetic]:
        """n questions per passage (sampled), each answered greedily from its passage; a pair is
        kept only when the answer is in the passage (a generated question the passage does not
        answer would teach a wrong fact)."""
        passages = [p for p in dataset.passages for _ in range(n)]
        asks = [f"{_shots()}Passage: {p.text}\nQuestion:" for p in passages]
        questions = [q.strip() for q in self._write(asks, seed, f"questions-{kind}", chat=False)]
        keep = [(p, q) for p, q in zip(passages, questions) if q.endswith("?")]
        answers = self._write([f"{_shots()}Passage: {p.text}\nQuestion: {q}\nAnswer:" for p, q in keep],
                              seed, f"answers-{kind}", chat=False, temperature=0.0)
        return [Synthetic(q, a.strip(" ."), p.id) for (p, q), a in zip(keep, answers)
                if a.strip(" .") and a.strip(" .").lower() in p.text.lower()]

    def _write(self, prompts: list[str], seed: int, kind: str, chat: bool = True,
               temperature: float = 0.7, max_new_tokens: int = 32) -> list[str]:
        from bench.config import content_hash
        from bench.io import write_json
        from bench.locks import entry_lock
        from bench.models.resolve import model_identity

        key = content_hash({"writer": model_identity(self.name), "kind": kind, "prompts": prompts,
                            "seed": seed, "chat": chat, "sampling": [temperature, max_new_tokens]})
        path = self.cache_dir / "synthetic" / f"{kind}-{key}.json"
        with entry_lock(self.cache_dir, f"synthetic-{key}"):
            if path.exists():
                return json.loads(path.read_text())
            replies = self._generate(prompts, seed, chat, temperature, max_new_tokens)
            write_json(replies, path)
        return replies

    def _generate(self, prompts: list[str], seed: int, chat: bool, temperature: float,
                  max_new_tokens: int) -> list[str]:
        from bench.models.generator import Generator

        if self._generator is None:
            self._generator = Generator.load(self.name, chat="off", max_new_tokens=256, batch_size=8)
        gen = self._generator
        gen.max_new_tokens = max_new_tokens   # a question or answer is one short line; a rewrite longer
        tok = gen.tokenizer
        if chat and getattr(tok, "chat_template", None):
            prompts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                               add_generation_prompt=True) for p in prompts]
        if temperature > 0:
            return [g.raw for g in gen.generate(prompts, temperature=temperature, seed=seed)]
        return [g.raw for g in gen.generate(prompts)]

    def close(self) -> None:
        if self._generator is not None:
            self._generator.close()
            self._generator = None


def pick_writer(recipe, dataset, cache_dir: Path):
    """The recipe's writer: the world's when the data is the synthetic world (auto) or asked
    for ('world'); otherwise an instruct model by name."""
    from bench.config import ConfigError
    from bench.injection.recipe import DEFAULT_WRITER_MODEL

    world = getattr(dataset, "world", None)
    if recipe.writer == "world" or (recipe.writer == "auto" and world is not None):
        if world is None:
            raise ConfigError(f"training.recipe.writer: world, but {dataset.name} is not the synthetic "
                              f"world (use auto or a model name)")
        return WorldWriter(world)
    name = DEFAULT_WRITER_MODEL if recipe.writer == "auto" else recipe.writer
    return ModelWriter(name, cache_dir)
