"""The hallucination study: citation accuracy (incl. not applicable), the per-arm rates on a
hand-made table, verdicts and plots from saved tables alone, config checks, and a micro run."""

import dataclasses
import math

import pandas as pd
import pytest

from bench.config import ConfigError
from bench.metrics.scores import score_item
from bench.report.claims import CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED, VERDICTS
from bench.studies.driver import load_study_config, run_study
from bench.studies.hallucination import gekhman_arm
from bench.studies.hallucination import measure as hm
from bench.studies.hallucination import read as h
from bench.studies.registry import get_study


def load_study(path, quick=False):
    return load_study_config(get_study("hallucination"), path, quick)


def test_citation_accuracy_uses_the_top_chunk_only():
    gold = ["d1-s0", "d7-s2"]
    assert hm.citation_accuracy([["d7-s2"], ["x"]], gold) == 1.0          # top chunk states the fact
    assert hm.citation_accuracy([["d1-s1", "d1-s0"]], gold) == 1.0        # a multi-passage chunk
    assert hm.citation_accuracy([["x"], ["d1-s0"]], gold) == 0.0          # gold only in the 2nd chunk
    assert hm.citation_accuracy([], gold) == 0.0                          # retrieved nothing
    assert hm.citation_na_reason([["x"]], gold) == ""


def test_citation_accuracy_not_applicable_is_nan_with_a_reason():
    assert math.isnan(hm.citation_accuracy(None, ["d1-s0"]))
    assert hm.citation_na_reason(None, ["d1-s0"]) == "arm does not retrieve"
    assert math.isnan(hm.citation_accuracy(float("nan"), ["d1-s0"]))       # a NaN cell from a table
    assert math.isnan(hm.citation_accuracy([["d1-s0"]], []))
    assert hm.citation_na_reason([["d1-s0"]], []) == "unanswerable: no gold fact to cite"
    from bench.metrics.scores import METRICS, metric_groups

    assert METRICS["citation_accuracy"].needs == ("retrieved_ids", "gold_ids")
    assert metric_groups()["citation"] == ["citation_accuracy"]


def _row(arm, kind_arm, seed, split, kind, prediction, answers, retrieved=None, gold=()):
    contexts = None if retrieved is None else ["some retrieved text with " + prediction]
    r = {"arm": arm, "arm_kind": kind_arm, "seed": seed, "split": split, "kind": kind,
         "prediction": prediction, "answers": list(answers), "contexts": contexts,
         "retrieved_ids": retrieved, "gold_ids": list(gold)}
    r.update(score_item(prediction, r["answers"], contexts))
    return r


def hand_table():
    rows = []
    for seed in (0, 1):
        # rag: answerable: one right (top chunk gold), one wrong (top chunk not gold);
        # unanswerable: one abstains, one asserts; trained fact: right
        rows += [_row("rag", "rag", seed, "test", "answerable", "Oslo", ["Oslo"], [["g1"]], ["g1"]),
                 _row("rag", "rag", seed, "test", "answerable", "Paris", ["Rome"], [["x"], ["g2"]], ["g2"]),
                 _row("rag", "rag", seed, "test", "unknown_entity", "unknown", [], [["x"]]),
                 _row("rag", "rag", seed, "test", "missing_attribute", "red", [], [["x"]]),
                 _row("rag", "rag", seed, "train", "answerable", "1980", ["1980"], [["g3"]], ["g3"])]
        # lora: asserts everywhere; right on its trained fact only; abstains on one answerable in seed 1
        rows += [_row("lora", "lora", seed, "test", "answerable", "Bergen", ["Oslo"], gold=["g1"]),
                 _row("lora", "lora", seed, "test", "answerable", "unknown" if seed else "Milan", ["Rome"],
                      gold=["g2"]),
                 _row("lora", "lora", seed, "test", "unknown_entity", "blue", []),
                 _row("lora", "lora", seed, "test", "missing_attribute", "harp", []),
                 _row("lora", "lora", seed, "train", "answerable", "1980", ["1980"], gold=["g3"])]
    return pd.DataFrame(rows)


def test_rates_on_a_hand_made_table():
    seeds = hm.seed_metrics(hand_table())
    v = seeds.set_index(["arm", "seed", "metric"])["value"]
    assert v[("rag", 0, "hallucination_rate")] == pytest.approx(2 / 4)        # Paris, red
    assert v[("rag", 0, "hallucination_answerable")] == pytest.approx(1 / 2)
    assert v[("rag", 0, "hallucination_unanswerable")] == pytest.approx(1 / 2)
    assert v[("rag", 0, "hallucination_unknown_entity")] == 0.0
    assert v[("rag", 0, "hallucination_missing_attribute")] == 1.0
    assert v[("rag", 0, "abstention_unanswerable")] == pytest.approx(1 / 2)
    assert v[("rag", 0, "abstention_answerable")] == 0.0
    assert v[("rag", 0, "hallucination_trained")] == 0.0
    assert v[("rag", 0, "citation_accuracy")] == pytest.approx(1 / 2)         # top-1 only
    assert v[("rag", 0, "faithfulness")] == 1.0                               # answers are in the text
    assert v[("lora", 0, "hallucination_rate")] == 1.0
    assert v[("lora", 1, "hallucination_answerable")] == pytest.approx(1 / 2)  # one abstention
    assert v[("lora", 1, "abstention_answerable")] == pytest.approx(1 / 2)
    assert v[("lora", 0, "exact_match_trained")] == 1.0
    items = seeds.set_index(["arm", "seed", "metric"])["items"]
    assert items[("rag", 0, "citation_accuracy")] == 2                        # answerable test items only
    assert items[("rag", 0, "faithfulness")] == 3                             # the abstention has no claim


def test_no_retrieval_means_not_applicable_never_zero():
    seeds = hm.seed_metrics(hand_table())
    lora = seeds[(seeds["arm"] == "lora") & seeds["metric"].isin(["faithfulness", "citation_accuracy"])]
    assert lora["value"].isna().all() and (lora["items"] == 0).all()
    assert set(lora["na_reason"]) == {"arm does not retrieve"}
    s = h.summarize(seeds).set_index(["arm", "metric"])
    for metric in ("faithfulness", "citation_accuracy"):
        assert math.isnan(s.loc[("lora", metric), "mean"]) and s.loc[("lora", metric), "n"] == 0
        assert s.loc[("rag", metric), "n"] == 2
    assert list(h.summarize(seeds).columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]


def test_rates_saved_with_six_digits_read_back_exactly(tmp_path):
    table = pd.concat([hand_table(), hand_table().assign(seed=lambda d: d["seed"] + 2).iloc[:-3]])
    seeds = hm.seed_metrics(table)
    seeds.to_csv(tmp_path / "seeds.csv", index=False, float_format="%.6g")     # as runs before the driver
    back = h.read_rates(tmp_path / "seeds.csv")
    rates = seeds["metric"] != "faithfulness"
    assert (pd.read_csv(tmp_path / "seeds.csv")["value"] != seeds["value"])[rates].any()   # 1/3 lost digits
    assert back["value"][rates].equals(seeds["value"][rates])


def _saved(tmp_path, lora_rates, rag_rates, sweep):
    rows = []
    for kind, rates in (("lora", lora_rates), ("rag", rag_rates)):
        for seed, r in enumerate(rates):
            for metric in ("hallucination_rate", "hallucination_answerable", "hallucination_unanswerable",
                           "abstention_unanswerable", "faithfulness", "citation_accuracy"):
                na = kind == "lora" and metric in ("faithfulness", "citation_accuracy")
                rows.append({"arm": kind, "arm_kind": kind, "seed": seed, "metric": metric,
                             "value": math.nan if na else r, "items": 0 if na else 10,
                             "na_reason": "arm does not retrieve" if na else ""})
    pd.DataFrame(rows).to_csv(tmp_path / h.SEEDS_CSV, index=False)
    g = [{"steps": st, "seed": seed, "metric": m, "value": v, "items": 10, "na_reason": ""}
         for (st, seed), v in sweep.items()
         for m in ("hallucination_answerable", "hallucination_unanswerable", "exact_match_trained")]
    pd.DataFrame(g).to_csv(tmp_path / h.GEKHMAN_CSV, index=False)


def test_claims_and_plots_come_from_saved_tables_alone(tmp_path):
    _saved(tmp_path, [0.95, 0.97, 0.96], [0.20, 0.25, 0.22],
           {(100, 0): 0.90, (100, 1): 0.91, (600, 0): 0.80, (600, 1): 0.801})
    found = {c.id: c for c in h.claims(tmp_path)}
    assert found["hallucination.grounding"].verdict == SUPPORTED
    assert "lora - rag" in found["hallucination.grounding"].measured
    assert found["hallucination.gekhman"].verdict == CONTRADICTED            # it fell, consistently
    assert all(c.rule and c.verdict in VERDICTS for c in found.values())
    paths = h.redraw(tmp_path)
    assert [p.name for p in paths] == ["hallucination.png", "gekhman.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_rag_hallucinating_more_contradicts_and_flat_sweep_is_inconclusive(tmp_path):
    _saved(tmp_path, [0.20, 0.25, 0.22], [0.95, 0.97, 0.96],
           {(100, 0): 1.0, (100, 1): 1.0, (300, 0): 1.0, (300, 1): 1.0, (600, 0): 1.0, (600, 1): 1.0})
    found = {c.id: c for c in h.claims(tmp_path)}
    assert found["hallucination.grounding"].verdict == CONTRADICTED
    assert found["hallucination.gekhman"].verdict == INCONCLUSIVE            # a zero-width CI at 0
    assert "ceiling" in found["hallucination.gekhman"].measured


def test_a_sub_point_gekhman_difference_is_no_effect(tmp_path):
    # both seeds fall by ~0.5 points: a narrow two-seed CI, but below the 1-point minimum effect
    _saved(tmp_path, [0.95, 0.97, 0.96], [0.20, 0.25, 0.22],
           {(100, 0): 0.900, (100, 1): 0.910, (600, 0): 0.895, (600, 1): 0.9052})
    found = {c.id: c for c in h.claims(tmp_path)}
    assert found["hallucination.gekhman"].verdict == INCONCLUSIVE
    assert "+1 point" in found["hallucination.gekhman"].rule


def test_an_empty_folder_is_not_run(tmp_path):
    found = h.claims(tmp_path)
    assert [c.verdict for c in found] == [NOT_RUN, NOT_RUN]
    assert h.redraw(tmp_path) == []


def test_config_errors_name_the_key(tmp_path, monkeypatch):
    import bench.runner

    path = tmp_path / "h.yaml"
    base = "name: h\ndata: {world: {entities: 10}}\narms: [{arm: rag}, {arm: lora}]\n"
    path.write_text(base + "study: {gekhman_steps: [300, 100]}\n")
    with pytest.raises(ConfigError, match=r"study.gekhman_steps: expected at least two increasing"):
        load_study(path)
    path.write_text(base + "study: {gekhman_seeds: [0, 0]}\n")
    with pytest.raises(ConfigError, match=r"study.gekhman_seeds"):
        load_study(path)
    path.write_text(base + "study: {gekhman_arm: rag}\n")
    monkeypatch.setattr(bench.runner, "run_experiment", lambda *a, **k: pytest.fail("ran a model"))
    with pytest.raises(ConfigError, match=r"study.gekhman_arm: 'rag' is not an arm of kind lora"):
        run_study("hallucination", path, tmp_path / "out", progress=False)


def test_the_sweep_reuses_the_arms_own_adapter_and_changes_only_steps(four_arms):
    cfg, s = load_study("experiments/hallucination.yaml")
    arm = gekhman_arm(cfg, s, "x")
    sweep, reused = hm.sweep_plan(cfg, s, arm)
    assert reused == 300 and sweep.seeds == (0, 1, 2)
    assert [a.name for a in sweep.arms] == ["lora@100steps", "lora@400steps"]
    for a in sweep.arms:      # the forgetting study's adapters: same data and settings but steps
        assert a.settings.training == arm.settings.training
        assert dataclasses.replace(a.settings.lora, steps=300) == arm.settings.lora
    # the shipped config is the shared four arms, accuracy's lora_plain (adapters from the cache)
    assert four_arms.arms == cfg.arms
    quick_cfg, quick = load_study("experiments/hallucination.yaml", quick=True)
    assert gekhman_arm(quick_cfg, quick, "x").settings.lora.steps in quick.gekhman_steps


def test_a_micro_run_writes_the_folder_and_replays_identically(micro_pocket, tmp_path):
    model, _ = micro_pocket
    path = tmp_path / "h.yaml"
    lora = "{rank: 4, alpha: 8, steps: 3, batch_size: 4}"
    path.write_text(f"""name: hallucination
study: {{gekhman_steps: [2, 3], gekhman_seeds: [0]}}
data: {{world: {{entities: 8}}, eval_splits: [test, train], max_items: 6}}
model: {{name: "{model}", max_new_tokens: 4, batch_size: 8}}
seeds: [0, 1]
arms:
  - {{arm: closed_book}}
  - {{arm: rag, retrieval: {{k: 1}}}}
  - {{arm: lora, lora: {lora}}}
""")
    out = tmp_path / "out"
    report = run_study("hallucination", path, out, progress=False, cache_dir=tmp_path / "cache")
    for name in ("summary.csv", "seeds.csv", "gekhman_seeds.csv", "cells.csv", "manifest.json",
                 "hallucination.png", "gekhman.png", "report.md"):
        assert (out / name).exists(), name
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]
    cb = summary[(summary["arm"] == "closed_book") & (summary["metric"] == "citation_accuracy")].iloc[0]
    assert math.isnan(cb["mean"]) and cb["n"] == 0
    assert {"lora@2steps", "lora@3steps"} <= set(summary["arm"])
    g = pd.read_csv(out / "gekhman_seeds.csv")
    assert sorted(g["steps"].unique()) == [2, 3] and set(g["seed"]) == {0}
    text = report.read_text()
    assert "## Claims and verdicts" in text and "n/a (arm does not retrieve)" in text
    # the reading half alone rewrites summary.csv and report.md to the same bytes, manifest untouched
    saved = {name: (out / name).read_bytes() for name in ("summary.csv", "report.md", "manifest.json")}
    (out / "summary.csv").unlink()
    (out / "report.md").unlink()
    run_study("hallucination", path, out, report_only=True, progress=False)
    assert {name: (out / name).read_bytes() for name in saved} == saved
    first = pd.read_csv(out / "seeds.csv")
    run_study("hallucination", path, out, progress=False, cache_dir=tmp_path / "cache")   # replayed
    pd.testing.assert_frame_equal(first, pd.read_csv(out / "seeds.csv"))
