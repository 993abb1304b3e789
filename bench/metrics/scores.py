"""Per-item QA metrics as pure functions, each declaring the inputs it needs and its group.

Inputs: `prediction` (str), `answers` (list[str]; empty = unanswerable, gold is then
[UNKNOWN]), `contexts` (list[str], or None when the arm does not retrieve), `retrieved_ids` /
`gold_ids` (passage ids), and for the batch metric an `embedder` (encode function). Declaring
needs next to each metric lets the harness skip a metric an arm cannot support instead of
scoring it 0, and groups name what a metric is about (RAGChecker's METRIC_REQUIREMENTS and
METRIC_GROUP_MAP): `answer` (is it the gold answer), `grounding` (does it assert, and is it
backed by the retrieved text), `retrieval` (did retrieval find the gold). Studies register
their own groups beside these (bench/metrics/study.py): `citation`, `format`, `consistency`.
Every scored per-item table carries the SCORED_GROUPS metrics.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer

from bench.data.world import UNKNOWN
from bench.metrics.text import exact_match as _em, normalize_answer
from bench.retrieval.embedder import distinct_texts


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable
    needs: tuple[str, ...]
    description: str
    group: str = "answer"


METRICS: dict[str, Metric] = {}
# the groups every scored per-item table carries (studies compute their own groups themselves)
SCORED_GROUPS = ("answer", "grounding", "retrieval")


def register_metric(name: str, needs: Sequence[str], description: str, group: str = "answer"):
    def deco(fn: Callable) -> Callable:
        if name in METRICS:
            raise ValueError(f"metric '{name}' is registered twice")
        METRICS[name] = Metric(name, fn, tuple(needs), description, group)
        return fn
    return deco


def metric_groups() -> dict[str, list[str]]:
    """{group: [metric names]} of every registered metric (RAGChecker's METRIC_GROUP_MAP)."""
    import bench.metrics.study  # noqa: F401  (registers the study-level groups)

    groups: dict[str, list[str]] = {}
    for m in METRICS.values():
        groups.setdefault(m.group, []).append(m.name)
    return groups


def references(answers: Sequence[str]) -> list[str]:
    """The gold strings: the answers, or [UNKNOWN] for an unanswerable item."""
    return list(answers) if answers else [UNKNOWN]


# Built once: constructing the scorer loads tokenizer regexes each time.
_ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)

# Normalised forms (see normalize_answer) of what counts as declining to answer.
ABSTENTIONS = frozenset({
    "", normalize_answer(UNKNOWN), "i dont know", "i do not know", "dont know", "not known",
    "no answer", "cannot answer", "i cannot answer", "cant answer", "not stated",
    "unanswerable", "not enough information",
})


@register_metric("exact_match", ("prediction", "answers"), "1 if normalised prediction equals a gold answer")
def exact_match(prediction: str, answers: Sequence[str]) -> float:
    return _em(prediction, references(answers))


@register_metric("contains", ("prediction", "answers"),
                 "1 if a normalised gold answer occurs, as whole words, in the normalised prediction")
def contains(prediction: str, answers: Sequence[str]) -> float:
    # PopQA-style accuracy (Mallen et al. 2023): fair to a model that answers in a sentence
    # ("Buban Taze is a painter."), where EM scores 0. Whole words: "red" is not in "reddish".
    pred = f" {normalize_answer(prediction)} "
    return float(any(f" {g} " in pred for g in map(normalize_answer, references(answers)) if g))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:  # SQuAD rule: both empty -> 1, one empty -> 0
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * p * r / (p + r)


@register_metric("token_f1", ("prediction", "answers"), "SQuAD token F1 on normalised tokens, best gold")
def token_f1(prediction: str, answers: Sequence[str]) -> float:
    pred = normalize_answer(prediction).split()
    return max(_f1(pred, normalize_answer(g).split()) for g in references(answers))


def _rouge(kind: str, prediction: str, answers: Sequence[str]) -> float:
    # rouge_score tokenises itself (lowercase, alphanumerics only), so raw text goes in.
    if not prediction.strip():
        return 0.0
    return max(_ROUGE.score(g, prediction)[kind].fmeasure for g in references(answers))


@register_metric("rouge1", ("prediction", "answers"), "ROUGE-1 F-measure, best gold")
def rouge1(prediction: str, answers: Sequence[str]) -> float:
    return _rouge("rouge1", prediction, answers)


@register_metric("rouge2", ("prediction", "answers"), "ROUGE-2 F-measure, best gold")
def rouge2(prediction: str, answers: Sequence[str]) -> float:
    return _rouge("rouge2", prediction, answers)


@register_metric("rougeL", ("prediction", "answers"), "ROUGE-L F-measure, best gold")
def rougeL(prediction: str, answers: Sequence[str]) -> float:
    return _rouge("rougeL", prediction, answers)


@register_metric("bleu", ("prediction", "answers"), "sentence BLEU 0-100 on normalised text, best gold")
def bleu(prediction: str, answers: Sequence[str]) -> float:
    # Answers are 1-3 words, so plain 4-gram BLEU is 0 for almost everything. sacrebleu's
    # sentence_bleu with use_effective_order=True only uses n-gram orders the hypothesis has,
    # and smooth_method="exp" fills orders with zero matches: exact match -> 100, disjoint -> 0,
    # "red harp" vs "red flute" -> 50. Text is normalised first so EM=1 implies BLEU=100, and
    # each gold is scored alone (max), like the other metrics, not as multi-reference BLEU.
    pred = normalize_answer(prediction)
    if not pred:
        return 0.0
    return max(sacrebleu.sentence_bleu(pred, [normalize_answer(g)], smooth_method="exp",
                                       use_effective_order=True).score
               for g in references(answers))


# What a report's table header calls each answer metric: the variant, so a reader can set it
# beside an article's figure (the README's metrics section has the full definitions).
HEADERS = {
    "exact_match": "EM (SQuAD-normalised)",
    "contains": "contains (gold in answer, SQuAD-normalised)",
    "token_f1": "F1 (SQuAD tokens)",
    "rouge1": "ROUGE-1 F (rouge-score, best gold)",
    "rouge2": "ROUGE-2 F (rouge-score, best gold)",
    "rougeL": "ROUGE-L F (rouge-score, best gold)",
    "bleu": "BLEU (mean sentence BLEU, exp smoothing, best gold)",
    "corpus_bleu": "corpus BLEU (sacrebleu, all golds)",
}


def header(metric: str) -> str:
    return HEADERS.get(metric, metric)


# set under a table whose columns say "EM" for short
EM_LEGEND = ("EM: exact match after SQuAD normalisation (lower case; punctuation, articles and "
             "extra spaces removed), against the best gold answer; see the README's Metrics section.")


def corpus_bleu(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU 0-100 (sacrebleu defaults: 13a tokens, exp smoothing) of normalised text,
    every gold a reference: the standard MT figure, set beside the mean sentence BLEU above,
    which is far higher on 1-3 word answers (effective order, best single gold)."""
    if not predictions:
        return float("nan")
    refs = [[normalize_answer(g) for g in references(a)] for a in answers]
    width = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else None for r in refs] for i in range(width)]
    return float(sacrebleu.corpus_bleu([normalize_answer(p) for p in predictions], streams).score)


@register_metric("abstained", ("prediction",), "1 if the prediction declines to answer", "grounding")
def abstained(prediction: str) -> float:
    return float(normalize_answer(prediction) in ABSTENTIONS)


@register_metric("hallucinated", ("prediction", "answers"), "1 if an asserted answer is not a gold one",
                 "grounding")
def hallucinated(prediction: str, answers: Sequence[str]) -> float:
    # On unanswerable items the gold is UNKNOWN, so any assertion fails exact match.
    return float(not abstained(prediction) and not exact_match(prediction, answers))


def faithfulness_na_reason(prediction: str, contexts: Sequence[str] | None) -> str:
    """Why faithfulness is undefined for this item ("" when it is defined)."""
    if contexts is None:
        return "arm does not retrieve"
    if abstained(prediction):
        return "abstained: no claim to check"
    return ""


@register_metric("faithfulness", ("prediction", "contexts"),
                 "share of prediction tokens found in the retrieved contexts; NaN if not applicable", "grounding")
def faithfulness(prediction: str, contexts: Sequence[str] | None) -> float:
    # NaN, not 0 or 1: a missing value must not pull an arm's mean up or down.
    if faithfulness_na_reason(prediction, contexts):
        return math.nan
    support = set(normalize_answer(" ".join(contexts)).split())
    tokens = normalize_answer(prediction).split()
    return sum(t in support for t in tokens) / len(tokens)


def semantic_similarity(predictions: Sequence[str], answers_list: Sequence[Sequence[str]],
                        encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Cosine between each prediction and its closest gold, one encode call for the batch over
    its distinct texts (the golds repeat once per arm and seed, and many predictions repeat)."""
    refs = [references(a) for a in answers_list]
    distinct, rows = distinct_texts(list(predictions) + [g for r in refs for g in r])
    emb = np.asarray(encode(distinct), dtype=np.float64)[rows]
    emb = emb / np.clip(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12, None)
    pred_emb, ref_emb = emb[:len(predictions)], emb[len(predictions):]
    out, start = np.zeros(len(predictions)), 0
    for i, (pred, r) in enumerate(zip(predictions, refs)):
        if pred.strip():  # empty prediction stays 0.0, not the cosine of an empty embedding
            out[i] = float(np.max(ref_emb[start:start + len(r)] @ pred_emb[i]))
        start += len(r)
    return out


METRICS["semantic_similarity"] = Metric(
    "semantic_similarity", semantic_similarity, ("prediction", "answers", "embedder"),
    "cosine of prediction and best gold embeddings (batch; encode function required)")


@register_metric("recall_at_k", ("retrieved_ids", "gold_ids"),
                 "1 if a retrieved chunk holds a gold passage; NaN without retrieval or gold", "retrieval")
def recall_at_k(retrieved_ids: Sequence[Sequence[str]] | None, gold_ids: Sequence[str]) -> float:
    gold = set(gold_ids)
    if retrieved_ids is None or not gold:
        return math.nan
    return 1.0 if any(gold.intersection(ids) for ids in retrieved_ids) else 0.0


def score_item(prediction: str, answers: Sequence[str], contexts: Sequence[str] | None,
               retrieved_ids=None, gold_ids=()) -> dict[str, float]:
    """Every per-item metric of SCORED_GROUPS, plus "faithfulness_na" (reason, "" when defined)."""
    inputs = {"prediction": prediction, "answers": answers, "contexts": contexts,
              "retrieved_ids": retrieved_ids, "gold_ids": gold_ids}
    scores: dict = {}
    for m in METRICS.values():
        if m.group in SCORED_GROUPS and "embedder" not in m.needs:
            scores[m.name] = float(m.fn(**{k: inputs[k] for k in m.needs}))
            if m.name == "faithfulness":   # the reason sits beside the value it explains
                scores["faithfulness_na"] = faithfulness_na_reason(prediction, contexts)
    return scores
