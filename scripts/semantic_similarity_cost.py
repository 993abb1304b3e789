"""What scoring semantic similarity over distinct texts saves, on a committed per-item table.

Scores the table's predictions against its golds twice with MiniLM: once as the bench does
(`bench.metrics.scores.semantic_similarity`: each distinct text encoded once, sorted) and once
encoding every text in row order, repeats included (what it did before), and prints the text
counts, both encode times, and how far the bench's values are from the table's saved ones.

Run: .venv/bin/python scripts/semantic_similarity_cost.py [results/accuracy/items.csv]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("items", nargs="?", default="results/accuracy/items.csv", type=Path)
    args = parser.parse_args(argv)
    if not args.items.is_file():
        print(f"semantic_similarity_cost: {args.items}: no such file (expected a study's items.csv)", file=sys.stderr)
        return 2
    d = pd.read_csv(args.items)
    missing = {"prediction", "answers", "arm", "semantic_similarity"} - set(d.columns)
    if missing:
        print(f"semantic_similarity_cost: {args.items}: no column {sorted(missing)} (expected a scored items.csv)",
              file=sys.stderr)
        return 2

    from bench.metrics.scores import references, semantic_similarity
    from bench.retrieval.embedder import Embedder

    preds = d["prediction"].fillna("").astype(str).tolist()
    answers = [json.loads(a) for a in d["answers"]]
    texts = preds + [g for a in answers for g in references(a)]
    model = Embedder.load()
    t = time.perf_counter()
    new = semantic_similarity(preds, answers, model.encode)
    distinct_s = time.perf_counter() - t
    t = time.perf_counter()
    model.encode(texts)
    every_s = time.perf_counter() - t
    model.close()

    item_diff = np.abs(new - d["semantic_similarity"].to_numpy())
    arm_diff = (d.assign(new=new).groupby("arm")[["new", "semantic_similarity"]].mean()
                .pipe(lambda m: (m["new"] - m["semantic_similarity"]).abs()))
    print(f"{args.items}: {len(d):,} rows, {len(texts):,} texts to score, {len(set(texts)):,} distinct")
    print(f"encode + score over distinct texts: {distinct_s:.1f} s; encode of every text: {every_s:.1f} s")
    print(f"against the saved values: max abs diff {item_diff.max():.2g} an item, {arm_diff.max():.2g} an arm's mean")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
