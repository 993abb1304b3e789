"""The popularity study: buckets, per-bucket accuracy on a hand-made table, the gain rule,
verdicts and plot from saved tables alone, config checks, and a micro run."""

import math

import pandas as pd
import pytest

from bench.config import ConfigError
from bench.report.claims import CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED
from bench.studies.driver import load_study_config, run_study
from bench.studies.popularity import read as pop
from bench.studies.registry import get_study


def load_study(path, _settings=None, quick=False):
    return load_study_config(get_study("popularity"), path, quick)

STARTS = (1, 2, 3, 5)


def test_buckets_from_lower_bounds():
    assert pop.bucket_labels(STARTS) == ["1", "2", "3-4", "5+"]
    assert [pop.bucket_of(p, STARTS) for p in (1, 2, 3, 4, 5, 13)] == ["1", "2", "3-4", "3-4", "5+", "5+"]
    assert pop.bucket_of(0, STARTS) is None                  # an unknown person: no bucket
    assert pop.bucket_labels((1, 4)) == ["1-3", "4+"]


def _item(arm, kind, seed, popularity, em, f1=None, qkind="answerable"):
    return {"arm": arm, "arm_kind": kind, "seed": seed, "kind": qkind, "popularity": popularity,
            "exact_match": em, "token_f1": em if f1 is None else f1}


def test_bucket_accuracy_on_a_hand_made_table():
    rows = [_item("rag", "rag", 0, 1, 1.0), _item("rag", "rag", 0, 1, 0.0, 0.5),
            _item("rag", "rag", 0, 4, 1.0), _item("rag", "rag", 0, 9, 0.0),
            _item("rag", "rag", 0, 0, 1.0, qkind="unknown_entity"),        # not answerable: left out
            _item("rag", "rag", 0, 2, 1.0, qkind="missing_attribute")]
    seeds = pop.seed_metrics(pd.DataFrame(rows), STARTS).set_index(["bucket", "metric"])
    assert seeds.loc[("1", "exact_match"), "value"] == 0.5 and seeds.loc[("1", "exact_match"), "items"] == 2
    assert seeds.loc[("1", "token_f1"), "value"] == 0.75
    assert seeds.loc[("3-4", "exact_match"), "value"] == 1.0
    assert seeds.loc[("5+", "exact_match"), "value"] == 0.0
    assert math.isnan(seeds.loc[("2", "exact_match"), "value"])              # empty bucket: NaN, 0 items
    assert seeds.loc[("2", "exact_match"), "items"] == 0
    assert seeds.loc[("all", "exact_match"), "value"] == 0.5 and seeds.loc[("all", "exact_match"), "items"] == 4


def _seeds(rag_low, rag_high, cb_low=0.0, cb_high=0.0, lora_low=0.0, lora_high=0.0):
    """Per-seed exact match for buckets '1' (least popular) and '5+' (most), three arms."""
    rows = []
    for seed in range(len(rag_low)):
        for arm, low, high in (("closed_book", cb_low, cb_high), ("rag", rag_low[seed], rag_high[seed]),
                               ("lora", lora_low, lora_high)):
            for bucket, value in (("1", low), ("5+", high), ("all", (low + high) / 2)):
                for metric in pop.METRICS:
                    rows.append({"arm": arm, "arm_kind": arm, "seed": seed, "bucket": bucket,
                                 "metric": metric, "value": value, "items": 50})
    return pd.DataFrame(rows)


def test_gain_difference_is_paired_by_seed():
    seeds = _seeds([0.8, 0.7, 0.9], [0.5, 0.4, 0.6], cb_low=0.1, cb_high=0.0)
    (m, lo, hi, n), g_first, g_last = pop.gain_difference(seeds, "rag", "closed_book", "1", "5+")
    # per seed: (0.8-0.1) - (0.5-0) = 0.2, (0.7-0.1) - 0.4 = 0.2, (0.9-0.1) - 0.6 = 0.2
    assert m == pytest.approx(0.2) and n == 3 and lo == pytest.approx(0.2) and hi == pytest.approx(0.2)
    assert g_first == pytest.approx(0.7) and g_last == pytest.approx(0.5)


def test_claims_and_plot_from_saved_tables_alone(tmp_path):
    _seeds([0.8, 0.7, 0.9], [0.5, 0.45, 0.6]).to_csv(tmp_path / pop.SEEDS_CSV, index=False)
    found = {c.id: c for c in pop.claims(tmp_path)}
    assert found["popularity.rag_gain"].verdict == SUPPORTED
    assert found["popularity.rag_vs_lora"].verdict == SUPPORTED
    assert "bucket 1" in found["popularity.rag_gain"].measured and found["popularity.rag_gain"].rule
    assert [p.name for p in pop.redraw(tmp_path)] == ["popularity.png"]
    assert (tmp_path / "popularity.png").stat().st_size > 1000
    _seeds([0.3, 0.35, 0.3], [0.7, 0.6, 0.8]).to_csv(tmp_path / pop.SEEDS_CSV, index=False)
    assert {c.verdict for c in pop.claims(tmp_path)} == {CONTRADICTED}
    _seeds([0.3, 0.8, 0.5], [0.5, 0.6, 0.5]).to_csv(tmp_path / pop.SEEDS_CSV, index=False)
    assert {c.verdict for c in pop.claims(tmp_path)} == {INCONCLUSIVE}


def test_an_empty_folder_is_not_run(tmp_path):
    assert [c.verdict for c in pop.claims(tmp_path)] == [NOT_RUN, NOT_RUN]
    assert pop.redraw(tmp_path) == []


def test_long_summary_has_the_shared_columns():
    buckets = pop.bucket_summary(_seeds([0.8, 0.7], [0.5, 0.4]))
    summary = pop.long_summary(buckets)
    assert list(summary.columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]
    assert {"exact_match@pop=1", "exact_match@pop=5+", "exact_match", "token_f1@pop=1"} <= set(summary["metric"])
    assert (summary["n"] == 2).all()


def test_config_errors_name_the_key(tmp_path):
    path = tmp_path / "p.yaml"
    base = "name: p\ndata: {world: {entities: 10}}\narms: [{arm: rag}]\n"
    path.write_text(base + "study: {bucket_starts: [2, 3]}\n")
    with pytest.raises(ConfigError, match=r"study.bucket_starts: expected at least two increasing"):
        load_study(path)
    path.write_text(base + "study: {bucket_sarts: [1, 2]}\n")
    with pytest.raises(ConfigError, match=r"study.bucket_sarts: unknown key"):
        load_study(path)


def test_shipped_config_is_the_accuracy_arms(four_arms):
    cfg, s = load_study("experiments/popularity.yaml")
    assert cfg.arms == four_arms.arms
    assert cfg.data.max_items is None and cfg.data.eval_splits == ("test",)
    _, quick = load_study("experiments/popularity.yaml", quick=True)
    assert quick != s


def test_a_micro_run_writes_the_folder(micro_pocket, tmp_path):
    model, _ = micro_pocket
    path = tmp_path / "p.yaml"
    path.write_text(f"""name: popularity
study: {{bucket_starts: [1, 2], min_items_per_bucket: 1}}
data: {{world: {{entities: 10}}, eval_splits: [test]}}
model: {{name: "{model}", max_new_tokens: 4, batch_size: 16}}
seeds: [0, 1]
arms: [{{arm: closed_book}}, {{arm: rag, retrieval: {{k: 1}}}}]
""")
    out = tmp_path / "out"
    report = run_study("popularity", path, out, progress=False, cache_dir=tmp_path / "cache")
    for name in ("items.csv", "summary.csv", "seeds.csv", "buckets.csv", "world_popularity.csv", "cells.csv",
                 "manifest.json", "popularity.png", "report.md"):
        assert (out / name).exists(), name
    # the reading half alone rewrites the derived tables and the report to the same bytes
    derived = {name: (out / name).read_bytes() for name in ("seeds.csv", "buckets.csv", "summary.csv", "report.md")}
    manifest = (out / "manifest.json").read_bytes()
    for name in derived:
        (out / name).unlink()
    run_study("popularity", path, out, report_only=True, progress=False)
    assert {name: (out / name).read_bytes() for name in derived} == derived
    assert (out / "manifest.json").read_bytes() == manifest
    seeds = pd.read_csv(out / "seeds.csv", dtype={"bucket": str})
    assert set(seeds["bucket"]) == {"1", "2+", "all"}
    per_cell = seeds[(seeds["metric"] == "exact_match")].pivot_table(index=["arm", "seed"], columns="bucket",
                                                                      values="items")
    assert (per_cell["1"] + per_cell["2+"] == per_cell["all"]).all()
    recall = seeds[(seeds["metric"] == "recall_at_k") & (seeds["bucket"] == "all")].set_index("arm")["value"]
    assert recall.loc["closed_book"].isna().all() and recall.loc["rag"].between(0, 1).all()
    found = pop.claims(out)
    assert found[0].verdict != NOT_RUN and found[1].verdict == NOT_RUN     # no lora arm here
    assert "## Claims and verdicts" in report.read_text()
