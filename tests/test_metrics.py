"""Metrics against hand-computed values, the not-applicable cases, and the evaluate modules."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.data.world import UNKNOWN
from bench.metrics import scores as S
from bench.metrics.scores import (METRICS, SCORED_GROUPS, abstained, bleu, exact_match, faithfulness,
                                  faithfulness_na_reason, hallucinated, references, rouge1,
                                  rouge2, rougeL, score_item, semantic_similarity, token_f1)


def test_references_unanswerable_is_unknown():
    assert references([]) == [UNKNOWN]
    assert references(["a", "b"]) == ["a", "b"]


def test_exact_match_normalises():
    assert exact_match("The Red Flute!", ["red flute"]) == 1.0
    assert exact_match("red flutes", ["red flute"]) == 0.0
    assert exact_match("1844", ["1843", "1844"]) == 1.0  # any gold counts


def test_token_f1_hand_computed():
    # normalised "red harp" vs "red flute": 1 common token, P = 1/2, R = 1/2 -> F1 = 0.5
    assert token_f1("the red harp", ["red flute"]) == pytest.approx(0.5)
    # "red" vs "red flute": P = 1, R = 1/2 -> F1 = 2 * 0.5 / 1.5 = 2/3; best gold wins
    assert token_f1("red", ["blue", "red flute"]) == pytest.approx(2 / 3)
    assert token_f1("blue harp", ["red flute"]) == 0.0
    assert token_f1("", ["red flute"]) == 0.0


def test_rouge_hand_computed():
    # rouge_score keeps "the": pred [the, red, harp] (3), ref [red, flute] (2), overlap 1
    # P = 1/3, R = 1/2 -> F = 2 * (1/6) / (5/6) = 0.4
    assert rouge1("the red harp", ["red flute"]) == pytest.approx(0.4)
    # bigrams: (the red), (red harp) vs (red flute): no overlap
    assert rouge2("the red harp", ["red flute"]) == 0.0
    # pred [old, red, flute] vs ref [red, flute]: bigram (red flute) 1 of 2 pred, 1 of 1 ref
    # P = 1/2, R = 1 -> F = 2/3; LCS = 2 -> P = 2/3, R = 1 -> F = 0.8
    assert rouge2("old red flute", ["red flute"]) == pytest.approx(2 / 3)
    assert rougeL("old red flute", ["red flute"]) == pytest.approx(0.8)
    assert rouge1("", ["red flute"]) == 0.0


def test_bleu_exact_disjoint_partial():
    assert bleu("The red flute.", ["red flute"]) == pytest.approx(100.0)
    assert bleu("1843", ["1843"]) == pytest.approx(100.0)
    assert bleu("blue harp", ["red flute"]) == 0.0
    # unigram 1/2; bigram 0/1 smoothed by "exp" to 1/2 -> geometric mean 1/2, no brevity penalty
    assert bleu("red harp", ["red flute"]) == pytest.approx(50.0)
    assert bleu("", ["red flute"]) == 0.0


def test_abstained():
    for text in ["unknown", "Unknown.", "I don't know", "I do not know", "not stated", "", "The"]:
        assert abstained(text) == 1.0, text
    assert abstained("1843") == 0.0
    assert abstained("unknown harp") == 0.0


def test_unanswerable_item():
    assert exact_match("unknown", []) == 1.0
    assert abstained("unknown") == 1.0
    assert hallucinated("unknown", []) == 0.0
    assert hallucinated("I don't know", []) == 0.0
    assert hallucinated("1843", []) == 1.0
    assert exact_match("1843", []) == 0.0


def test_hallucinated_answerable():
    assert hallucinated("1844", ["1843"]) == 1.0
    assert hallucinated("1843", ["1843"]) == 0.0
    assert hallucinated("unknown", ["1843"]) == 0.0  # wrong but not a false claim


def test_faithfulness_not_applicable_is_nan_with_reason():
    assert math.isnan(faithfulness("1843", None))
    assert faithfulness_na_reason("1843", None) == "arm does not retrieve"
    assert math.isnan(faithfulness("unknown", ["the harp was built in 1843"]))
    assert faithfulness_na_reason("unknown", ["x"]) == "abstained: no claim to check"
    assert faithfulness_na_reason("1843", ["x"]) == ""


def test_faithfulness_values():
    ctx = ["The harp was built in 1843.", "It is red."]
    assert faithfulness("red harp", ctx) == 1.0
    # normalised tokens [red, flute]: "red" supported, "flute" not -> 1/2
    value = faithfulness("the red flute", ctx)
    assert 0 < value < 1 and value == pytest.approx(0.5)
    assert faithfulness("blue flute", ctx) == 0.0
    assert faithfulness("red harp", []) == 0.0  # retrieved nothing: defined, unsupported


def test_score_item_keys_and_values():
    out = score_item("the red harp", ["red flute"], None)
    per_item = {n for n, m in METRICS.items() if "embedder" not in m.needs and m.group in SCORED_GROUPS}
    assert set(out) == per_item | {"faithfulness_na"}
    assert "semantic_similarity" not in out and "semantic_similarity" in METRICS
    assert out["token_f1"] == pytest.approx(0.5) and out["exact_match"] == 0.0
    assert out["hallucinated"] == 1.0 and math.isnan(out["faithfulness"])
    assert out["faithfulness_na"] == "arm does not retrieve"
    out = score_item("red flute", ["red flute"], ["a red flute"])
    assert out["faithfulness"] == 1.0 and out["faithfulness_na"] == "" and out["bleu"] == pytest.approx(100)


def test_registry_declares_needs():
    assert METRICS["faithfulness"].needs == ("prediction", "contexts")
    assert METRICS["semantic_similarity"].needs == ("prediction", "answers", "embedder")
    assert METRICS["semantic_similarity"].fn is semantic_similarity
    assert all(m.description for m in METRICS.values())


_FAKE = {"red flute": [1.0, 0.0, 0.0], "red harp": [3.0, 4.0, 0.0], "unknown": [0.0, 0.0, 2.0],
         "1843": [0.0, 1.0, 0.0], "": [1.0, 1.0, 1.0]}


def test_semantic_similarity_fake_encoder():
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return np.array([_FAKE[t] for t in texts])  # deliberately not unit length

    sims = semantic_similarity(["red harp", "red flute", "unknown", "", "red harp"],
                               [["red flute"], ["red flute"], [], ["red flute"], ["1843", "red flute"]],
                               encode)
    # (3,4,0)/5 . (1,0,0) = 0.6; identical = 1; unknown vs UNKNOWN = 1; empty -> 0;
    # best of 1843 (0.8) and red flute (0.6) = 0.8
    assert sims == pytest.approx([0.6, 1.0, 1.0, 0.0, 0.8])
    assert len(calls) == 1  # one batched encode call
    # over the distinct texts, sorted: "red flute" is a gold four times and a prediction once
    assert calls[0] == sorted(set(calls[0])) and calls[0].count("red flute") == 1


def test_semantic_similarity_minilm():
    from sentence_transformers import SentenceTransformer

    from bench.models.resolve import MINILM, resolve_model

    model = SentenceTransformer(resolve_model(MINILM), device="cpu")

    def encode(texts):
        return model.encode(texts, normalize_embeddings=True)

    same, other = semantic_similarity(["the red flute", "the red flute"],
                                      [["the red flute"], ["income tax in 1843"]], encode)
    assert same == pytest.approx(1.0, abs=1e-4)
    assert other < 0.6 and other < same - 0.3


def test_metrics_declare_groups_and_the_scored_groups_are_what_score_item_returns():
    from bench.metrics.scores import SCORED_GROUPS, metric_groups, recall_at_k

    groups = metric_groups()
    assert {"exact_match", "bleu", "semantic_similarity"} <= set(groups["answer"])
    assert set(groups["grounding"]) == {"abstained", "hallucinated", "faithfulness"}
    assert groups["retrieval"] == ["recall_at_k"]
    # the study-level groups are registered too, but left out of every scored table
    assert groups["citation"] == ["citation_accuracy"] and groups["consistency"] == ["pairwise_agreement", "agree_all"]
    assert groups["format"] == ["valid_json", "schema_valid", "value_em"]
    assert not {"citation", "consistency", "format"} & set(SCORED_GROUPS)
    scored = score_item("red flute", ["red flute"], ["the red flute"], [["p1"]], ["p1"])
    per_item = {n for g in SCORED_GROUPS for n in groups[g] if "embedder" not in METRICS[n].needs}
    assert set(scored) == per_item | {"faithfulness_na"}
    assert scored["recall_at_k"] == 1.0 and recall_at_k([["p2"], ["p3"]], ["p1"]) == 0.0
    assert math.isnan(recall_at_k(None, ["p1"])) and math.isnan(recall_at_k([["p1"]], []))


def _cost_script(*args):
    script = Path(__file__).resolve().parents[1] / "scripts" / "semantic_similarity_cost.py"
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True)


def test_the_semantic_similarity_cost_script_counts_distinct_texts_and_compares_saved_values(tmp_path):
    items = tmp_path / "items.csv"
    pd.DataFrame({"arm": ["rag", "lora", "lora"], "prediction": ["red harp", "red harp", "unknown"],
                  "answers": [json.dumps(["red harp"])] * 3,
                  "semantic_similarity": [1.0, 1.0, 0.5]}).to_csv(items, index=False)
    done = _cost_script(items)
    assert done.returncode == 0, done.stderr
    # six texts to score: three predictions, three golds; "red harp" and "unknown" are distinct
    assert "3 rows, 6 texts to score, 2 distinct" in done.stdout
    assert "max abs diff" in done.stdout and "an arm's mean" in done.stdout


def test_the_semantic_similarity_cost_script_names_a_bad_input(tmp_path):
    missing = _cost_script(tmp_path / "nowhere.csv")
    assert missing.returncode == 2 and "nowhere.csv: no such file" in missing.stderr
    (tmp_path / "bare.csv").write_text("arm,prediction\nrag,x\n")
    bare = _cost_script(tmp_path / "bare.csv")
    assert bare.returncode == 2 and "no column ['answers', 'semantic_similarity']" in bare.stderr
