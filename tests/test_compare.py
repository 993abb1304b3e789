"""`bench compare A B`: paired differences between two results folders of one study."""

import json
import math

import pandas as pd
import pytest

from bench.cli import main
from bench.report.compare import compare


def folder(path, study, rows):
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"study": study}))
    pd.DataFrame(rows).to_csv(path / "items.csv", index=False)
    return path


def items(seeds, n, correct, arm="rag", question="q{}"):
    """n items per seed; `correct(seed, i)` says whether item i is answered exactly."""
    return [{"arm": arm, "seed": s, "item_id": f"i{i}", "question": question.format(i),
             "exact_match": float(correct(s, i)), "t_total": 0.1} for s in seeds for i in range(n)]


def row(table, arm, metric):
    return table[(table["arm"] == arm) & (table["metric"] == metric)].iloc[0]


def test_same_questions_pair_by_item_and_seed(tmp_path):
    a = folder(tmp_path / "a", "accuracy", items([0, 1, 2], 10, lambda s, i: i < 5))
    # B gets one more item right at seed 0, two more at seeds 1 and 2
    b = folder(tmp_path / "b", "accuracy", items([0, 1, 2], 10, lambda s, i: i < (6 if s == 0 else 7)))
    r = row(compare(a, b), "rag", "exact_match")
    assert r.pairing == "item" and r.n == 3
    assert r.a == pytest.approx(0.5) and r.b == pytest.approx(2.0 / 3)
    assert r["diff"] == pytest.approx((0.1 + 0.2 + 0.2) / 3)
    assert r.ci_low < r["diff"] < r.ci_high
    assert row(compare(a, b), "rag", "t_total")["diff"] == pytest.approx(0.0)


def test_other_questions_pair_by_seed_and_no_common_seed_is_unpaired(tmp_path):
    a = folder(tmp_path / "a", "accuracy", items([0, 1], 10, lambda s, i: i < 5))
    b = folder(tmp_path / "b", "accuracy", items([0, 1], 4, lambda s, i: i < 3 + s, question="other {}"))
    r = row(compare(a, b), "rag", "exact_match")
    assert r.pairing == "seed" and r.n == 2
    assert r["diff"] == pytest.approx(((0.75 - 0.5) + (1.0 - 0.5)) / 2)
    c = folder(tmp_path / "c", "accuracy", items([5], 4, lambda s, i: True))
    r = row(compare(a, c), "rag", "exact_match")
    assert r.pairing == "none" and r["diff"] == pytest.approx(0.5) and math.isnan(r.ci_low)


def test_real_item_tables_pair_by_their_gold_answers(tmp_path):
    """items.csv keeps no wording: an item is the same when seed, id, answers and gold ids are."""
    def saved(seeds, n, correct, gold="g{}"):
        return [{k: v for k, v in r.items() if k != "question"} | {"answers": f'["{gold.format(r["item_id"])}"]',
                                                                  "gold_ids": "[]"}
                for r in items(seeds, n, correct)]
    a = folder(tmp_path / "a", "accuracy", saved([0, 1], 6, lambda s, i: i < 3))
    b = folder(tmp_path / "b", "accuracy", saved([0, 1], 6, lambda s, i: i < 4))
    assert row(compare(a, b), "rag", "exact_match").pairing == "item"
    c = folder(tmp_path / "c", "accuracy", saved([0, 1], 6, lambda s, i: i < 4, gold="other {}"))
    assert row(compare(a, c), "rag", "exact_match").pairing == "seed"     # same ids, other facts


def test_one_seed_item_pairs_give_an_interval_over_items(tmp_path):
    a = folder(tmp_path / "a", "accuracy", items([0], 20, lambda s, i: i % 2 == 0))
    b = folder(tmp_path / "b", "accuracy", items([0], 20, lambda s, i: True))
    r = row(compare(a, b), "rag", "exact_match")
    assert r.pairing == "item" and r.n == 20 and r.ci_low > 0


def test_the_cli_writes_table_and_plot_and_refuses_two_studies(tmp_path, capsys):
    a = folder(tmp_path / "a", "accuracy", items([0, 1], 6, lambda s, i: i < 2) + items([0, 1], 6, lambda s, i: False, arm="lora"))
    b = folder(tmp_path / "b", "accuracy", items([0, 1], 6, lambda s, i: i < 4) + items([0, 1], 6, lambda s, i: False, arm="lora"))
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    table = pd.read_csv(out / "compare.csv")
    assert set(table["arm"]) == {"rag", "lora"} and (out / "compare.png").stat().st_size > 0
    assert "| rag | all | exact_match | 33.3 | 66.7 | +33.3" in (out / "compare.md").read_text()
    other = folder(tmp_path / "lat", "latency", items([0], 2, lambda s, i: True))
    assert main(["compare", str(a), str(other), "--out", str(tmp_path / "x")]) == 2
    assert "compare two results of one study" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
