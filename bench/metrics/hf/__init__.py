"""`evaluate` modules backed by bench.metrics.scores, loaded from this package's own files.

`evaluate.load("rouge")` fetches a script from the hub, which fails offline. Each module here
is a folder `<name>/<name>.py` (evaluate.load of a folder wants the script named after it),
and its `_compute` averages the scores.py function, so both paths give the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

MODULES = ("exact_match", "token_f1", "rouge", "bleu")
_HERE = Path(__file__).resolve().parent


def module_path(name: str) -> Path:
    if name not in MODULES:
        raise KeyError(f"unknown metric module '{name}', expected one of {MODULES}")
    return _HERE / name


def load(name: str, **kwargs):
    """evaluate.load on the local folder: no hub access needed."""
    import evaluate

    return evaluate.load(str(module_path(name)), **kwargs)


def features():
    """Predictions are strings; references either one string or a list per item."""
    import datasets

    return [
        datasets.Features({"predictions": datasets.Value("string"),
                           "references": datasets.Sequence(datasets.Value("string"))}),
        datasets.Features({"predictions": datasets.Value("string"),
                           "references": datasets.Value("string")}),
    ]


def mean_score(fn: Callable[[str, list[str]], float], predictions: Sequence[str],
               references: Sequence) -> float:
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    if not predictions:
        return 0.0
    return float(sum(fn(p, r) for p, r in zip(predictions, refs)) / len(predictions))
