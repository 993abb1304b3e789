"""evaluate module: Exact match after SQuAD normalisation (0/1), mean over items."""

import evaluate

from bench.metrics import scores
from bench.metrics.hf import features, mean_score


class Metric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Exact match after SQuAD normalisation (0/1), mean over items.",
            citation="",
            inputs_description="predictions: list[str]; references: list[str] or list[list[str]]",
            features=features(),
        )

    def _compute(self, predictions, references):
        return {"exact_match": mean_score(scores.exact_match, predictions, references)}
