"""Passages -> retrieval chunks: up to `size` consecutive passages of one document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from bench.data.schema import Passage


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    passage_ids: tuple[str, ...]
    doc_id: str


def chunking_key(size: int) -> str:
    return f"passages:{int(size)}"


def chunk_passages(passages: Sequence[Passage], size: int = 1) -> list[Chunk]:
    """Group runs of consecutive same-doc_id passages (input order) into chunks of <= size.

    size=1 keeps chunk id == passage id; larger sizes use f"{first_id}+{n}".
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {size!r}")
    chunks: list[Chunk] = []
    group: list[Passage] = []

    def flush() -> None:
        if not group:
            return
        if size == 1:
            cid = group[0].id
        else:
            cid = f"{group[0].id}+{len(group)}"
        chunks.append(Chunk(cid, " ".join(p.text for p in group),
                            tuple(p.id for p in group), group[0].doc_id))
        group.clear()

    for p in passages:
        if group and (p.doc_id != group[0].doc_id or len(group) >= size):
            flush()
        group.append(p)
    flush()
    return chunks
