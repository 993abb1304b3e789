"""The two record types every arm reads: passages (the knowledge) and QA items (the task).

On disk both are JSONL, one object per line; `docs/data-format.md` in the README shows them.
The field tables below are the single source of truth for validation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    doc_id: str = ""          # passages of one source document share it
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answers: list[str]        # empty = unanswerable from the corpus (a model should abstain)
    gold_ids: list[str] = field(default_factory=list)   # passages that state the answer
    split: str = "test"       # "train" items may be used to fine-tune, "test" items never
    paraphrases: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def answerable(self) -> bool:
        return bool(self.answers)

    def to_json(self) -> dict:
        return asdict(self)


# field -> (expected python type, required, description)
PASSAGE_FIELDS = {
    "id": (str, True, "unique passage id"),
    "text": (str, True, "non-empty passage text"),
    "doc_id": (str, False, "id of the source document"),
    "meta": (dict, False, "free-form metadata"),
}
QA_FIELDS = {
    "id": (str, True, "unique question id"),
    "question": (str, True, "non-empty question text"),
    "answers": (list, True, "list of gold answer strings; [] if unanswerable"),
    "gold_ids": (list, False, "ids of passages that contain the answer"),
    "split": (str, False, "'train' or 'test'"),
    "paraphrases": (list, False, "other wordings of the question"),
    "meta": (dict, False, "free-form metadata"),
}
SPLITS = ("train", "test")
