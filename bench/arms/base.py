"""The one arm interface (prepare once, answer a batch, close) and the parts arms share.

An arm is two choices: which model answers (the base model, or base + LoRA adapter) and
whether retrieved passages go into the prompt. The four built-in kinds are the four
combinations; each lives in its own module and only declares its settings and those choices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

from bench.data.dataset import Dataset
from bench.data.schema import QAItem
from bench.models.generator import Generator
from bench.models.resolve import MINILM
from bench.prompts import closed_book_prompt, context_prompt

STAGES = ("embed", "search", "prompt", "generate")


@dataclass(frozen=True)
class RetrievalSettings:
    k: int = 3
    chunk_size: int = 1                 # consecutive passages of one document per chunk
    embedder: str = MINILM

    def validate(self, where: str) -> None:
        if self.k < 1:
            from bench.config import ConfigError
            raise ConfigError(f"{where}.k: expected k >= 1, got {self.k}")
        if self.chunk_size < 1:
            from bench.config import ConfigError
            raise ConfigError(f"{where}.chunk_size: expected >= 1, got {self.chunk_size}")


def check_template(template: str, where: str, retrieves: bool) -> None:
    """'default' uses bench.prompts; a custom template must have the placeholders it needs."""
    if template == "default":
        return
    from bench.config import ConfigError

    needed = ["{question}"] + (["{context}"] if retrieves else [])
    missing = [p for p in needed if p not in template]
    if missing:
        raise ConfigError(f"{where}.template: missing placeholder(s) {missing} in {template!r}")
    import string

    allowed = {"question", "context"} if retrieves else {"question"}
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:   # an unmatched brace
        raise ConfigError(f"{where}.template: not a format string ({e}): {template!r}") from None
    unknown = sorted(fields - allowed)
    if unknown:
        raise ConfigError(f"{where}.template: unknown placeholder {{{unknown[0]}}}; allowed: "
                          f"{sorted('{' + a + '}' for a in allowed)} (write {{{{ and }}}} for braces)")


@dataclass
class ArmEnv:
    """What the runner hands an arm: the model settings, the cell's data and seed, the caches."""
    model: object                       # bench.config.ModelConfig
    dataset: Dataset
    seed: int
    cache_dir: Path
    progress: bool = True
    # a vector store built elsewhere (a shared index a study updates in place): a retrieving arm
    # answers from it instead of opening its own
    store: object = None


@dataclass
class Answer:
    prediction: str
    prompt_tokens: int
    completion_tokens: int
    seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    contexts: list[str] | None = None          # None: this arm does not retrieve
    retrieved_ids: list[list[str]] | None = None   # passage ids of each retrieved chunk
    scores: list[float] | None = None


class Arm:
    kind: ClassVar[str]
    retrieves: ClassVar[bool] = False
    adapted: ClassVar[bool] = False
    Settings: ClassVar[type]

    def __init__(self, settings, env: ArmEnv):
        self.settings, self.env = settings, env
        self.generator: Generator | None = None
        self.store = None
        self.embedder = None

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> dict:
        """Load the model (and train/load the adapter, build/open the index). Returns stats."""
        m = self.env.model
        self.generator = Generator.load(m.name, device=m.device, trust_remote_code=m.trust_remote_code,
                                        max_new_tokens=m.max_new_tokens, batch_size=m.batch_size)
        stats: dict = {}
        if self.adapted:
            from bench.arms.adapter import attach_adapter
            stats.update(attach_adapter(self.generator, self.settings, self.env))
            if m.merge_adapter:
                start = time.perf_counter()
                self.generator.model = self.generator.model.merge_and_unload()
                stats["merge_seconds"] = round(time.perf_counter() - start, 4)
        if self.retrieves:
            stats.update(self._open_store())
        return stats

    def close(self) -> None:
        for part in (self.generator, self.embedder):
            if part is not None:
                part.close()
        self.generator = self.store = self.embedder = None

    # -- answering ---------------------------------------------------------------------------
    def answer(self, items: Sequence[QAItem]) -> list[Answer]:
        questions = [q.question for q in items]
        answers = [Answer("", 0, 0) for _ in items]
        contexts: list[list[str]] | None = None
        if self.retrieves:
            hits, timings = self.store.search(questions, self.settings.retrieval.k)
            contexts = [[h.text for h in row] for row in hits]
            for a, row, t in zip(answers, hits, timings):
                a.contexts = [h.text for h in row]
                a.retrieved_ids = [list(h.passage_ids) for h in row]
                a.scores = [round(h.score, 5) for h in row]
                a.seconds["embed"], a.seconds["search"] = t.embed_seconds, t.search_seconds
        prompts = []
        for i, question in enumerate(questions):
            start = time.perf_counter()
            prompts.append(self.prompt(question, contexts[i] if contexts else None))
            answers[i].seconds["prompt"] = time.perf_counter() - start
        for a, g in zip(answers, self.generator.generate(prompts, **self.sampling())):
            a.prediction, a.prompt_tokens, a.completion_tokens = g.text, g.prompt_tokens, g.completion_tokens
            a.seconds["generate"] = g.seconds
        return answers

    def sampling(self) -> dict:
        """Greedy unless the model config asks for a temperature; sampling is seeded by the
        run seed, so the same config and seed give the same answers."""
        temperature = getattr(self.env.model, "temperature", 0.0)
        return {"temperature": temperature, "seed": self.env.seed} if temperature > 0 else {}

    def prompt(self, question: str, passages: list[str] | None) -> str:
        template = self.settings.template
        if template == "default":
            return closed_book_prompt(question) if passages is None else context_prompt(question, passages)
        context = "\n".join(f"[{i}] {p}" for i, p in enumerate(passages or [], start=1))
        return template.format(question=question, context=context)

    def _open_store(self) -> dict:
        from bench.retrieval.chunking import chunk_passages, chunking_key
        from bench.retrieval.embedder import Embedder
        from bench.retrieval.store import VectorStore

        if self.env.store is not None:
            self.store = self.env.store
            return {"index_chunks": self.store.count(), "collection": self.store.collection_name}
        r = self.settings.retrieval
        self.embedder = Embedder.load(r.embedder)
        chunks = chunk_passages(self.env.dataset.passages, r.chunk_size)
        self.store = VectorStore.open_or_build(chunks, self.embedder, self.env.cache_dir / "chroma",
                                               chunking=chunking_key(r.chunk_size),
                                               progress=self.env.progress)
        # a reused index reports the build it came from (embed + index), as measured then
        return {"index_build_seconds": round(self.store.original_build_seconds, 3),
                "index_embed_seconds": round(self.store.embed_seconds, 3),
                "index_open_seconds": round(self.store.build_seconds, 3),
                "index_reused": self.store.reused, "index_chunks": self.store.count(),
                "index_disk_bytes": self.store.disk_bytes()}
