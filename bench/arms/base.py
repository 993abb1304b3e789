"""The one arm interface (prepare once, answer a batch, close) and the parts arms share.

An arm is two choices: which model answers (the base model, or base + LoRA adapter) and
whether retrieved passages go into the prompt. The four built-in kinds are the four
combinations; each lives in its own module and only declares its settings and those choices.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

from bench.config import KEY_OMIT_DEFAULT, ConfigError
from bench.data.dataset import Dataset
from bench.data.schema import QAItem
from bench.models.generator import Generator
from bench.models.resolve import MINILM
from bench.prompts import closed_book_prompt, context_prompt

STAGES = ("embed", "search", "prompt", "generate")


class ContextOverflow(ConfigError):
    """A prompt longer than the model's context, with retrieval.overflow: fail (or nothing to cut)."""


@dataclass(frozen=True)
class RetrievalSettings:
    k: int = 3
    chunk_size: int = 1                 # passages, sentences or tokens per chunk (see chunking)
    embedder: str = MINILM
    # exact up to EXACT_MAX_CHUNKS under "auto" (bench.retrieval.store): in every cache key, as
    # the search that made the cached answers
    search: str = "auto"
    chunking: str = field(default="passages", metadata=KEY_OMIT_DEFAULT)   # or sentences, tokens
    overlap: int = field(default=0, metadata=KEY_OMIT_DEFAULT)   # units shared by neighbours
    # a prompt past the model's context: drop the lowest-ranked passages, then cut the last
    # one ("truncate", with a warning), or stop with an error ("fail")
    overflow: str = field(default="truncate", metadata=KEY_OMIT_DEFAULT)

    def validate(self, where: str) -> None:
        from bench.retrieval.chunking import check_chunking
        from bench.retrieval.store import SEARCH_MODES

        if self.k < 1:
            raise ConfigError(f"{where}.k: expected k >= 1, got {self.k}")
        for key, value, allowed in (("search", self.search, SEARCH_MODES),
                                    ("overflow", self.overflow, OVERFLOW)):
            if value not in allowed:
                raise ConfigError(f"{where}.{key}: expected one of {list(allowed)}, got {value!r}")
        try:
            check_chunking(self.chunk_size, self.chunking, self.overlap)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None

    def chunks(self, passages, embedder=None) -> list:
        """The corpus as this retriever's chunks (`embedder` for token chunking)."""
        from bench.retrieval.chunking import chunk_passages

        tokenizer = getattr(getattr(embedder, "model", None), "tokenizer", None)
        return chunk_passages(passages, self.chunk_size, self.chunking, self.overlap, tokenizer)

    def chunking_key(self) -> str:
        from bench.retrieval.chunking import chunking_key

        return chunking_key(self.chunk_size, self.chunking, self.overlap)


OVERFLOW = ("truncate", "fail")


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
        self.prompts_seen = self.truncated = 0    # prompts answered; cut to fit the context

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> dict:
        """Load the model (and train/load the adapter, build/open the index). Returns stats."""
        m = self.env.model
        # an adapter learns the answer format from its training examples, so adapted arms are
        # asked (and trained, bench.arms.adapter) with the system message alone: worked turns
        # would make every training example ~300 tokens instead of ~60 (a CPU LoRA step 9.9 s
        # instead of 1.7 s on SmolLM2-135M at batch 8)
        self.generator = Generator.load(m.name, device=m.device, trust_remote_code=m.trust_remote_code,
                                        max_new_tokens=m.max_new_tokens, batch_size=m.batch_size,
                                        chat=m.chat, demos=0 if self.adapted else m.demos, dtype=m.dtype)
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
        self.report_overflow()
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
        self._fit_context(items, prompts, answers)
        for a, g in zip(answers, self.generator.generate(prompts, **self.sampling())):
            a.prediction, a.prompt_tokens, a.completion_tokens = g.text, g.prompt_tokens, g.completion_tokens
            a.seconds["generate"] = g.seconds
        return answers

    def _fit_context(self, items: Sequence[QAItem], prompts: list[str], answers: list[Answer]) -> None:
        """Prompts that would leave no room for the answer in the model's context: passages cut
        (retrieval.overflow: truncate, the lowest-ranked first, with a warning) or an error."""
        window = self.generator.context_length()
        if window is None:
            return
        limit = window - self.generator.answer_budget()
        counts = self.generator.count_tokens(prompts)
        self.prompts_seen += len(prompts)
        for i, n in enumerate(counts):
            if n <= limit:
                continue
            overflow = self.settings.retrieval.overflow if self.retrieves else "fail"
            if overflow == "fail" or not answers[i].contexts:
                raise ContextOverflow(
                    f"{self.kind}: the prompt for item {items[i].id!r} has {n} tokens; the model's "
                    f"context holds {window} positions with {window - limit} kept for the answer"
                    + ("; set retrieval.overflow: truncate, or chunk the corpus smaller "
                       "(retrieval.chunking: sentences)" if self.retrieves else ""))
            prompts[i] = self._truncate(items[i].question, answers[i], limit)
            self.truncated += 1
            if self.truncated == 1:
                print(f"warning: {self.kind}: a prompt of {n} tokens exceeds the model's {window}-token "
                      f"context less the answer's {window - limit}; passages are truncated to fit "
                      f"(retrieval.overflow: truncate)", file=sys.stderr, flush=True)

    def _truncate(self, question: str, answer: Answer, limit: int) -> str:
        """Drop the lowest-ranked passages until the prompt fits, then cut the last one by
        tokens; the answer's record of what was read follows."""
        passages = list(answer.contexts)
        fits = lambda ps: self.generator.count_tokens([self.prompt(question, ps)])[0] <= limit
        while len(passages) > 1 and not fits(passages):
            passages.pop()
        if not fits(passages):
            tok = self.generator.tokenizer
            ids = tok(passages[0], add_special_tokens=False)["input_ids"]
            excess = self.generator.count_tokens([self.prompt(question, passages)])[0] - limit
            keep = max(0, len(ids) - excess - 1)
            while True:   # decoding can merge tokens differently: shorten until it fits
                passages[0] = tok.decode(ids[:keep])
                if fits(passages) or keep == 0:
                    break
                keep = max(0, keep - 8)
        kept = len(passages)
        answer.contexts = passages
        answer.retrieved_ids, answer.scores = answer.retrieved_ids[:kept], answer.scores[:kept]
        return self.prompt(question, passages)

    def report_overflow(self) -> None:
        if self.truncated:
            print(f"warning: {self.kind}: {self.truncated} of {self.prompts_seen} prompts were "
                  f"truncated to the model's context", file=sys.stderr, flush=True)

    def sampling(self) -> dict:
        """Greedy unless the model config asks for a temperature; sampling is seeded by the
        run seed, so the same config and seed give the same answers."""
        temperature = getattr(self.env.model, "temperature", 0.0)
        return {"temperature": temperature, "seed": self.env.seed} if temperature > 0 else {}

    def prompt(self, question: str, passages: list[str] | None) -> str:
        """The text the model reads: the default or custom template, through the model's chat
        template when it has one (Generator.wrap)."""
        template = self.settings.template
        if template == "default":
            text = closed_book_prompt(question) if passages is None else context_prompt(question, passages)
        else:
            context = "\n".join(f"[{i}] {p}" for i, p in enumerate(passages or [], start=1))
            text = template.format(question=question, context=context)
        return self.generator.wrap(text, with_context=passages is not None)

    def _open_store(self) -> dict:
        from bench.retrieval.embedder import Embedder
        from bench.retrieval.store import VectorStore

        if self.env.store is not None:
            self.store = self.env.store
            return {"index_chunks": self.store.count(), "collection": self.store.collection_name}
        r = self.settings.retrieval
        self.embedder = Embedder.load(r.embedder)
        chunks = r.chunks(self.env.dataset.passages, self.embedder)
        self.store = VectorStore.open_or_build(chunks, self.embedder, self.env.cache_dir / "chroma",
                                               chunking=r.chunking_key(), progress=self.env.progress,
                                               search=r.search)
        # a reused index reports the build it came from (embed + index), as measured then
        return {"index_build_seconds": round(self.store.original_build_seconds, 3),
                "index_embed_seconds": round(self.store.embed_seconds, 3),
                "index_open_seconds": round(self.store.build_seconds, 3),
                "index_reused": self.store.reused, "index_chunks": self.store.count(),
                "index_disk_bytes": self.store.disk_bytes()}
