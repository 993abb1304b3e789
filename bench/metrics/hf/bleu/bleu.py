"""evaluate module: Sentence BLEU (0-100, effective order, exp smoothing) on normalised text, best reference, mean."""

import evaluate

from bench.metrics import scores
from bench.metrics.hf import features, mean_score


class Metric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Sentence BLEU (0-100, effective order, exp smoothing) on normalised text, best reference, mean.",
            citation="",
            inputs_description="predictions: list[str]; references: list[str] or list[list[str]]",
            features=features(),
        )

    def _compute(self, predictions, references):
        return {"bleu": mean_score(scores.bleu, predictions, references)}
