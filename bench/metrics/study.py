"""Study-level metrics, registered beside the scored ones (bench.metrics.scores) with their needs
and a group each, but computed by the studies that need them, not in every scored table:

- `citation` (hallucination): does the top retrieved chunk state the gold fact;
- `consistency` (consistency): do a question's paraphrases get the same answer;
- `format` (format): is the output valid JSON, does it conform to a schema, is its value right.

Not-applicable cases are NaN with a reason, never 0 or 1, as for faithfulness.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

from bench.metrics.json_schema import assess
from bench.metrics.scores import exact_match, register_metric
from bench.metrics.text import normalize_answer


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- citation --------------------------------------------------------------------------------------

def citation_na_reason(retrieved_ids, gold_ids) -> str:
    """Why citation accuracy is undefined for this item ("" when it is defined)."""
    if _missing(retrieved_ids):
        return "arm does not retrieve"
    if _missing(gold_ids) or len(gold_ids) == 0:
        return "unanswerable: no gold fact to cite"
    return ""


@register_metric("citation_accuracy", ("retrieved_ids", "gold_ids"),
                 "1 if the top retrieved chunk contains a gold passage; NaN without retrieval or gold", "citation")
def citation_accuracy(retrieved_ids, gold_ids) -> float:
    """1.0 if the top-1 retrieved chunk's passage ids include a gold passage (a sentence stating
    the fact), 0.0 if not (or if nothing was retrieved), NaN when not applicable."""
    if citation_na_reason(retrieved_ids, gold_ids):
        return math.nan
    if len(retrieved_ids) == 0:
        return 0.0
    return float(bool(set(retrieved_ids[0]) & set(gold_ids)))


# -- consistency (over the predictions for one question's wordings) --------------------------------

@register_metric("pairwise_agreement", ("predictions",),
                 "share of pairs of a question's paraphrase answers that are equal (normalised)", "consistency")
def pairwise_agreement(predictions: Sequence[str]) -> float:
    """Share of unordered pairs of answers that are equal (1.0 for a single answer)."""
    n = len(predictions)
    if n < 2:
        return 1.0
    counts = Counter(normalize_answer(p) for p in predictions)
    return sum(c * (c - 1) / 2 for c in counts.values()) / (n * (n - 1) / 2)


@register_metric("agree_all", ("predictions",),
                 "1 if every paraphrase of a question gets the same normalised answer", "consistency")
def agree_all(predictions: Sequence[str]) -> float:
    return float(len({normalize_answer(p) for p in predictions}) == 1)


# -- format ------------------------------------------------------------------------------------------

@register_metric("valid_json", ("prediction",), "1 if the whole output parses as one JSON value", "format")
def valid_json(prediction: str) -> float:
    return float(assess(prediction, {"type": "object"}).valid_json)


@register_metric("schema_valid", ("prediction", "schema"), "1 if the output conforms to the JSON schema",
                 "format")
def schema_valid(prediction: str, schema: dict) -> float:
    return float(assess(prediction, schema).schema_valid)


@register_metric("value_em", ("prediction", "answers", "schema", "value_key"),
                 "exact match of the value under the answer key (0 when the output does not conform)", "format")
def value_em(prediction: str, answers: Sequence[str], schema: dict, value_key: str) -> float:
    value = assess(prediction, schema, value_key).value
    return exact_match(value, answers) if isinstance(value, str) else 0.0
