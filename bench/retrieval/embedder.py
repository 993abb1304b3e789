"""A sentence-transformers embedder loaded offline through `resolve_model`."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from bench.models.release import release
from bench.models.resolve import MINILM, resolve_model

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_PROGRESS_MIN = 1024  # show a progress bar only for inputs at least this long


def distinct_texts(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """Each distinct text once, sorted, and each input's place in that list. Encoding the list
    instead of the inputs encodes a repeated text once and gives equal texts equal vectors, in an
    order that does not depend on the inputs' (a text's batch-mates set its padding, which moves
    the last bits of its vector)."""
    distinct = sorted(set(texts))
    row = {t: i for i, t in enumerate(distinct)}
    return distinct, [row[t] for t in texts]


class Embedder:
    def __init__(self, name: str, model, batch_size: int = 64):
        self.name = name
        self.model = model
        self.batch_size = batch_size
        getdim = getattr(model, "get_embedding_dimension", None) or \
            model.get_sentence_embedding_dimension
        self.dimension = int(getdim())

    @classmethod
    def load(cls, name: str = MINILM, device: str = "cpu", batch_size: int = 64) -> "Embedder":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(resolve_model(name), device=device)
        return cls(name, model, batch_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 array (len(texts), dimension), rows L2-normalised."""
        if self.model is None:
            raise RuntimeError("embedder is closed")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = self.model.encode(list(texts), batch_size=self.batch_size,
                                show_progress_bar=len(texts) >= _PROGRESS_MIN,
                                convert_to_numpy=True, normalize_embeddings=True)
        return np.ascontiguousarray(out, dtype=np.float32)

    def close(self) -> None:
        release(self)
