"""Prediction rows -> the scored per-item table: one row per (item, arm, seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.arms.base import STAGES
from bench.metrics.scores import score_item, semantic_similarity
from bench.models.resolve import MINILM


def score_rows(rows: list[dict], embedder: str = MINILM, progress: bool = False) -> pd.DataFrame:
    from bench.retrieval.embedder import Embedder

    scored = []
    for r in rows:
        r = dict(r)
        r.update(score_item(r["prediction"], r["answers"], r["contexts"], r["retrieved_ids"], r["gold_ids"]))
        r["t_total"] = sum(r[f"t_{s}"] for s in STAGES)
        scored.append(r)
    table = pd.DataFrame(scored)
    if len(table):
        model = Embedder.load(embedder)
        try:
            table["semantic_similarity"] = semantic_similarity(
                table["prediction"].tolist(), table["answers"].tolist(), model.encode)
        finally:
            model.close()
    else:
        table["semantic_similarity"] = np.array([], dtype=float)
    return table
