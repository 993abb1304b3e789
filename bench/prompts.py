"""Prompt formats shared by the pocket model's training data and every arm.

Passages go one per line behind a `[i] ` marker, so a name is always preceded by a space:
byte-level BPE tokenises a line-initial word differently, and a name that tokenises one way
in the passage and another in the question cannot be matched by the model.
"""

from __future__ import annotations

import json
from typing import Sequence

ANSWER_PREFIX = "Answer:"
ANSWER_FORMATS = ("plain", "json")


def closed_book_prompt(question: str) -> str:
    return f"Question: {question}\n{ANSWER_PREFIX}"


def context_prompt(question: str, passages: Sequence[str]) -> str:
    lines = "\n".join(f"[{i}] {p.strip()}" for i, p in enumerate(passages, start=1))
    return f"Context:\n{lines}\n{closed_book_prompt(question)}"


def build_prompt(question: str, passages: Sequence[str] | None) -> str:
    return closed_book_prompt(question) if passages is None else context_prompt(question, passages)


def completion(answer: str) -> str:
    """What the model is trained to write after the prompt (EOS is appended by the tokenizer step)."""
    return " " + answer.strip()


def format_answer(answer: str, answer_format: str = "plain", json_key: str = "answer") -> str:
    """The answer as the model should write it: as is, or as the JSON object {json_key: answer}."""
    if answer_format == "plain":
        return answer
    if answer_format == "json":
        return json.dumps({json_key: answer.strip()}, ensure_ascii=False)
    raise ValueError(f"unknown answer format {answer_format!r}; expected one of {ANSWER_FORMATS}")
