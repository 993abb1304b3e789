"""Prompt formats shared by the pocket model's training data and every arm.

Passages go one per line behind a `[i] ` marker, so a name is always preceded by a space:
byte-level BPE tokenises a line-initial word differently, and a name that tokenises one way
in the passage and another in the question cannot be matched by the model.
"""

from __future__ import annotations

import json
import re
from typing import Sequence

ANSWER_PREFIX = "Answer:"
ANSWER_FORMATS = ("plain", "json")
# How a model answers from passages: "value" writes the answer alone; "quote" first quotes the
# passage that holds it, from the asked name on, then "Answer: <value>". The pocket model reads
# far better when it quotes (it binds the value to the name while copying the name), so it is a
# property of the model, stored with its checkpoint; the value after the last "Answer:" is
# what gets scored. Closed-book answers and "unknown" are never quoted.
ANSWER_STYLES = ("value", "quote")


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


def quoted_completion(passage: str, answer: str, name: str | None = None) -> str:
    """The "quote" style's target: the passage's first sentence that holds the answer (the whole
    passage if none does), from `name` on if the name is in it, then ANSWER_PREFIX and the
    answer."""
    passage = passage.strip()
    sentences = re.split(r"(?<=[.!?])\s+", passage)
    quote = next((s for s in sentences if answer.strip().lower() in s.lower()), passage)
    if name and name in quote:
        quote = quote[quote.index(name):]
    return completion(f"{quote} {ANSWER_PREFIX} {answer.strip()}")


def read_answer(text: str) -> str:
    """The answer in a generation: what follows the last ANSWER_PREFIX, or all of it."""
    return text.rsplit(ANSWER_PREFIX, 1)[1].strip() if ANSWER_PREFIX in text else text.strip()


def format_answer(answer: str, answer_format: str = "plain", json_key: str = "answer") -> str:
    """The answer as the model should write it: as is, or as the JSON object {json_key: answer}."""
    if answer_format == "plain":
        return answer
    if answer_format == "json":
        return json.dumps({json_key: answer.strip()}, ensure_ascii=False)
    raise ValueError(f"unknown answer format {answer_format!r}; expected one of {ANSWER_FORMATS}")
