"""evaluate module: SQuAD token F1 on normalised tokens, best reference, mean over items."""

import evaluate

from bench.metrics import scores
from bench.metrics.hf import features, mean_score


class Metric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="SQuAD token F1 on normalised tokens, best reference, mean over items.",
            citation="",
            inputs_description="predictions: list[str]; references: list[str] or list[list[str]]",
            features=features(),
        )

    def _compute(self, predictions, references):
        return {"token_f1": mean_score(scores.token_f1, predictions, references)}
