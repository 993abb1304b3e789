"""`training.recipe`: the knowledge-injection components an adapter's training set adds (see the
package docstring for what each does and its paper)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.config import ConfigError

# "auto": the world's own renderers for the synthetic world, this instruct model for a corpus
DEFAULT_WRITER_MODEL = "smollm2-135m"
MAX_PER_FACT = 50


@dataclass(frozen=True)
class Raft:
    p_gold: float = 0.8          # share of examples whose context holds the gold passage
    passages: int = 0            # passages per context; 0 = what the arm retrieves (retrieval.k)
    questions: int = 1           # generated questions per fact

    def validate(self, where: str) -> None:
        if not 0 <= self.p_gold <= 1:
            raise ConfigError(f"{where}.p_gold: expected 0 <= p_gold <= 1, got {self.p_gold}")
        if self.passages < 0:
            raise ConfigError(f"{where}.passages: expected >= 0 (0 = the arm's retrieval.k), got {self.passages}")
        if not 1 <= self.questions <= MAX_PER_FACT:
            raise ConfigError(f"{where}.questions: expected 1..{MAX_PER_FACT}, got {self.questions}")


@dataclass(frozen=True)
class Recipe:
    renderings: int = 0          # fresh renderings of each document
    synthetic_qa: int = 0        # generated questions per fact, trained closed-book
    distill: int = 0             # generated questions per fact, answered by the teacher reading it
    raft: Raft | None = None     # hybrid: generated questions with gold passage among distractors
    writer: str = "auto"         # "world", a model name, or auto (world when the data is one)

    def validate(self, where: str) -> None:
        for key in ("renderings", "synthetic_qa", "distill"):
            value = getattr(self, key)
            if not 0 <= value <= MAX_PER_FACT:
                raise ConfigError(f"{where}.{key}: expected 0..{MAX_PER_FACT}, got {value}")
        if self.raft is not None:
            self.raft.validate(f"{where}.raft")
        if not self.writer:
            raise ConfigError(f"{where}.writer: expected 'auto', 'world' or a model name")

    @property
    def active(self) -> bool:
        return bool(self.renderings or self.synthetic_qa or self.distill or self.raft)

    def label(self) -> str:
        """A short name for tables: 'renderings20+synthetic_qa3', 'raft', or '' (none)."""
        parts = [f"{k}{getattr(self, k)}" for k in ("renderings", "synthetic_qa", "distill") if getattr(self, k)]
        return "+".join(parts + (["raft"] if self.raft else []))


def training_label(training) -> str:
    """What an adapter trains on, for tables: 'documents' (today's recipe: the raw documents and
    train questions) or the recipe's components, '+documents' when today's data stays in."""
    label = training.recipe.label()
    if not label:
        return "documents"
    return label + ("+documents" if training.documents or training.train_questions else "")
