"""Passages -> retrieval chunks, by passages, sentences or tokens, with overlap.

- `passages`: up to `size` consecutive passages of one document (the default, size 1: a chunk
  is a passage and keeps its id). Real paragraphs can be long: a SQuAD paragraph runs to a few
  hundred words, past the embedder's window, and a few of them overflow a small model's context.
- `sentences`: windows of `size` sentences inside one passage; `tokens`: windows of `size`
  tokens of the embedder's tokenizer inside one passage, cut back to the original text.

Windows advance by `size - overlap` units. A sentence or token chunk names its passage
(`passage_ids`), so recall@k and citation still score against the gold passage ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from bench.data.schema import Passage

UNITS = ("passages", "sentences", "tokens")

# A sentence ends at . ! ? (and a closing quote or bracket) before white space and a capital,
# digit or opening quote; not after an initial ("J. Smith") or a common abbreviation.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_NOT_AN_END = re.compile(r"(?:\b[A-Z]|\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|No|vs|etc|e\.g|i\.e|Gen|Col|Lt|"
                         r"Mt|Fr|Inc|Ltd|Co|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec))\.$")


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    passage_ids: tuple[str, ...]
    doc_id: str


def chunking_key(size: int, unit: str = "passages", overlap: int = 0) -> str:
    """Names the chunking in the index's content hash ("passages:1" for the default)."""
    return f"{unit}:{int(size)}" + (f":overlap={int(overlap)}" if overlap else "")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (rule-based: see _BOUNDARY and _NOT_AN_END)."""
    out: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        head = text[start:m.start()].rstrip("\"')]")
        if _NOT_AN_END.search(head):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [s for s in out if s]


def _windows(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) windows of up to `size` units, `size - overlap` apart, until one ends at n
    (without overlap: consecutive, the last one shorter)."""
    out: list[tuple[int, int]] = []
    for start in range(0, n, size - overlap):
        out.append((start, min(start + size, n)))
        if out[-1][1] == n:
            break
    return out


def check_chunking(size: int, unit: str = "passages", overlap: int = 0) -> None:
    if unit not in UNITS:
        raise ValueError(f"chunking: expected one of {list(UNITS)}, got {unit!r}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {size!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < size:
        raise ValueError(f"overlap must be an integer in [0, chunk_size={size}), got {overlap!r}")


def chunk_passages(passages: Sequence[Passage], size: int = 1, unit: str = "passages",
                   overlap: int = 0, tokenizer=None) -> list[Chunk]:
    """The corpus as chunks; `tokenizer` (a fast Hugging Face tokenizer) for unit="tokens"."""
    check_chunking(size, unit, overlap)
    if unit == "passages":
        return _by_passages(passages, size, overlap)
    if unit == "tokens" and tokenizer is None:
        raise ValueError("token chunking needs the embedder's tokenizer")
    chunks: list[Chunk] = []
    for p in passages:
        if unit == "sentences":
            pieces = split_sentences(p.text) or [p.text]
            texts = [" ".join(pieces[a:b]) for a, b in _windows(len(pieces), size, overlap)]
        else:
            spans = tokenizer(p.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            texts = [p.text[spans[a][0]:spans[b - 1][1]] for a, b in _windows(len(spans), size, overlap)] \
                or [p.text]
        letter = unit[0]
        chunks += [Chunk(f"{p.id}#{letter}{i}", t, (p.id,), p.doc_id) for i, t in enumerate(texts)]
    return chunks


def _by_passages(passages: Sequence[Passage], size: int, overlap: int) -> list[Chunk]:
    """Windows over runs of consecutive same-doc_id passages (input order). Size 1 keeps the
    passage id; larger sizes use f"{first_id}+{n}"."""
    runs: list[list[Passage]] = []
    for p in passages:
        if runs and runs[-1][0].doc_id == p.doc_id and size > 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    chunks: list[Chunk] = []
    for run in runs:
        for a, b in _windows(len(run), size, overlap):
            group = run[a:b]
            cid = group[0].id if size == 1 else f"{group[0].id}+{len(group)}"
            chunks.append(Chunk(cid, " ".join(p.text for p in group),
                                tuple(p.id for p in group), group[0].doc_id))
    return chunks
