"""evaluate module: ROUGE-1/2/L F-measure (no stemming), best reference, mean over items."""

import evaluate

from bench.metrics import scores
from bench.metrics.hf import features, mean_score


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="ROUGE-1/2/L F-measure (no stemming), best reference, mean over items.",
            citation="",
            inputs_description="predictions: list[str]; references: list[str] or list[list[str]]",
            features=features(),
        )

    def _compute(self, predictions, references):
        return {k: mean_score(getattr(scores, k), predictions, references)
                for k in ("rouge1", "rouge2", "rougeL")}
