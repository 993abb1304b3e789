"""The freshness study: the v1 -> v2 update paths (RAG upsert in place, LoRA continue/retrain),
the before/after metric arithmetic, strict config parsing, a micro run through the driver."""

import math
from pathlib import Path

import pandas as pd
import pytest

from bench.config import ConfigError
from bench.report.claims import CONTRADICTED, NOT_RUN
from bench.studies.driver import load_study_config, run_study
from bench.studies.freshness import read as fr
from bench.studies.freshness.update import (build_versions, changed_chunks, delta_dataset,
                                            select_questions, upsert_update)
from bench.studies.registry import get_study

ROOT = Path(__file__).resolve().parents[1]


def load(path, quick=False):
    return load_study_config(get_study("freshness"), path, quick)


def test_rag_upsert_puts_the_v2_text_in_the_same_collection(tmp_path):
    from bench.arms.base import RetrievalSettings
    from bench.retrieval.chunking import chunk_passages
    from bench.retrieval.embedder import Embedder
    from bench.retrieval.store import VectorStore

    r = RetrievalSettings()
    v = build_versions(12, 0.2, seed=0)
    assert v.changes and [p.id for p in v.v1.passages] == [p.id for p in v.v2.passages]
    change = v.changes[0]
    pid = change["passage_ids"][0]
    v1_text = next(p.text for p in v.v1.passages if p.id == pid)
    v2_text = next(p.text for p in v.v2.passages if p.id == pid)
    assert change["old"] in v1_text and change["new"] in v2_text and v1_text != v2_text

    embedder = Embedder.load()
    try:
        store = VectorStore.open_or_build(chunk_passages(v.v1.passages, 1), embedder, tmp_path / "chroma",
                                          progress=False)
        name, count = store.collection_name, store.count()
        stats = upsert_update(store, v, r)
        assert stats["update_seconds"] > 0
        assert stats["upserted_chunks"] == len(changed_chunks(v.v2, v.changes, r)) > 0
        # no rebuild: the very same collection, the same number of chunks
        assert store.collection.name == name and stats["collection_same"]
        assert store.count() == count == stats["count_after"]
        assert store.client.get_collection(name).count() == count
        assert len(store.client.list_collections()) == 1
        # the store now returns the v2 text for the changed fact, and no chunk keeps the v1 one
        assert store.collection.get(ids=[pid])["documents"] == [v2_text]
        hits, _ = store.search([v2_text], k=1)
        assert hits[0][0].text == v2_text
        everything = store.collection.get()["documents"]
        assert v1_text not in everything                        # every sentence of the fact changed
    finally:
        embedder.close()


def test_questions_cover_every_change_and_score_against_v2(tmp_path):
    v = build_versions(12, 0.2, seed=1)
    qs = select_questions(v, ("test", "train"), unchanged_per_split=3)
    changed = [q for q in qs if q.group == "changed"]
    assert len(changed) == len(v.changes)                       # every changed fact is asked
    by_key = {(c["entity"], c["attribute"]): c for c in v.changes}
    for q in changed:
        c = by_key[(q.item.meta["entity"], q.item.meta["attribute"])]
        assert q.item.answers == [c["new"]] and q.old == c["old"]
    assert all(q.old == q.item.answers[0] for q in qs if q.group == "unchanged")
    delta = delta_dataset(v)
    assert {p.id for p in delta.passages} == {i for c in v.changes for i in c["passage_ids"]}
    assert all(p.text == next(x.text for x in v.v2.passages if x.id == p.id) for p in delta.passages)


def test_metric_arithmetic_on_a_hand_made_table():
    rows = []

    def add(phase, group, split, em, stale):
        rows.append({"arm": "rag+upsert", "seed": 0, "phase": phase, "group": group, "split": split,
                     "em": em, "stale": stale})
    # before: 4 changed facts, 3 answered with the v1 value, none with v2; 2 unchanged, 1 right
    for em, stale, split in [(0, 1, "train"), (0, 1, "train"), (0, 1, "test"), (0, 0, "test")]:
        add("before", "changed", split, em, stale)
    add("before", "unchanged", "test", 1, math.nan)
    add("before", "unchanged", "test", 0, math.nan)
    # after: 3 of 4 changed facts right, 1 still stale; unchanged both right
    for em, stale, split in [(1, 0, "train"), (1, 0, "train"), (1, 0, "test"), (0, 1, "test")]:
        add("after", "changed", split, em, stale)
    add("after", "unchanged", "test", 1, math.nan)
    add("after", "unchanged", "test", 1, math.nan)
    items = pd.DataFrame(rows)
    items = pd.concat([items, items.assign(seed=1)])
    cells = pd.DataFrame({"arm": ["rag+upsert"] * 2, "seed": [0, 1], "update_seconds": [0.5, 1.5]})
    per_seed = fr.cell_metrics(items, cells)
    row = per_seed.iloc[0]
    assert row["changed_em_before"] == 0 and row["changed_em_after"] == 0.75
    assert row["stale_rate_before"] == 0.75 and row["stale_rate_after"] == 0.25
    assert row["unchanged_em_before"] == 0.5 and row["unchanged_em_after"] == 1.0
    assert row["changed_em_after_train"] == 1.0 and row["changed_em_after_test"] == 0.5
    assert row["changed_gain"] == 0.75
    summary = fr.summarize(per_seed)
    assert set(summary.columns) == {"arm", "metric", "mean", "ci_low", "ci_high", "n"}
    assert fr.value(summary, "rag+upsert", "update_seconds") == 1.0
    assert fr.value(summary, "rag+upsert", "changed_em_after", "n") == 2
    # the verdict follows the stated rule: +75 gain but 25% stale (> 10%) -> does not absorb
    assert not fr.absorbs(summary, "rag+upsert")
    check = fr.verdicts(summary, in_place=True)[0]
    assert check.verdict == CONTRADICTED and check.id == "freshness"


FOUR_ARMS = "name: freshness\ndata: {world: {entities: 10}}\narms: [{arm: closed_book}, {arm: rag}, {arm: lora}, {arm: hybrid}]\n"


def test_a_bad_config_key_is_named(tmp_path):
    bad = tmp_path / "freshness.yaml"
    bad.write_text(FOUR_ARMS + "arm_defaults: {lora: {lora: {rank: 16, rnak: 8}}}\n")
    with pytest.raises(ConfigError, match=r"lora\.rnak: unknown key"):
        load(bad)
    bad.write_text(FOUR_ARMS + "study: {arms: [rag+rebuild]}\n")
    with pytest.raises(ConfigError, match=r"study\.arms: unknown \['rag\+rebuild'\]"):
        load(bad)
    bad.write_text(FOUR_ARMS + "study: {continue_training: {step: 3}}\n")
    with pytest.raises(ConfigError, match=r"study\.continue_training\.step: unknown key"):
        load(bad)
    bad.write_text("name: freshness\ndata: {world: {entities: 10}}\narms: [{arm: closed_book}, {arm: rag}]\n")
    with pytest.raises(ConfigError, match=r"study.arms needs an arm of kind 'lora'"):
        load(bad)
    bad.write_text(FOUR_ARMS + "arm_defaults: {hybrid: {retrieval: {chunk_size: 2}}}\n")
    with pytest.raises(ConfigError, match=r"share one index"):
        load(bad)


def test_shipped_config_is_the_accuracy_world_and_arms(four_arms):
    """The v1 world, the model and each kind's settings are the accuracy experiment's, so the v1
    adapter is the one `make accuracy` cached; the quick patch shrinks what it should."""
    from bench.config import load_experiment

    cfg, s = load(ROOT / "experiments" / "freshness.yaml")
    accuracy = load_experiment(ROOT / "experiments" / "accuracy.yaml")
    assert cfg.arms == four_arms.arms and cfg.data.world == accuracy.data.world
    assert cfg.seeds == accuracy.seeds and cfg.model.threads == 1
    assert s.arms == tuple(fr.ARMS) and s.continue_training.steps == 40 and s.unchanged_per_split == 100
    quick, qs = load(ROOT / "experiments" / "freshness.yaml", quick=True)
    assert quick.data.world.entities == 40 and quick.seeds == (0, 1)
    assert {a.settings.lora.steps for a in quick.arms if hasattr(a.settings, "lora")} == {30}
    assert qs.unchanged_per_split == 20 and qs.continue_training.steps == 10
    assert qs.continue_training.batch_size == s.continue_training.batch_size


def test_the_study_runs_end_to_end_on_the_micro_model(micro_pocket, tmp_path):
    model_path, _ = micro_pocket
    cfg = tmp_path / "freshness.yaml"
    cfg.write_text(f"""
name: freshness
claim: test
data: {{world: {{entities: 12}}}}
model: {{name: "{model_path}", max_new_tokens: 4, batch_size: 16}}
seeds: [0]
arm_defaults:
  rag: {{retrieval: {{k: 1}}}}
  lora: {{lora: {{rank: 4, alpha: 8, steps: 2, batch_size: 4}}}}
  hybrid: {{retrieval: {{k: 1}}, lora: {{rank: 4, alpha: 8, steps: 2, batch_size: 4}}}}
arms: [{{arm: closed_book}}, {{arm: rag}}, {{arm: lora}}, {{arm: hybrid}}]
study: {{unchanged_per_split: 3, continue_training: {{steps: 2, batch_size: 4}}}}
""")
    out = tmp_path / "out"
    report = run_study("freshness", cfg, out, progress=False, cache_dir=tmp_path / "cache")
    assert report.exists() and "Verdicts" in report.read_text()
    for name in ("summary.csv", "freshness.csv", "freshness.png", "manifest.json", "cells.csv", "items.csv"):
        assert (out / name).exists()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]
    assert set(summary["arm"]) == set(fr.ARMS)
    cells = pd.read_csv(out / "cells.csv").set_index("arm")
    for arm in ("rag+upsert", "lora+retrain", "lora+continue", "hybrid+upsert", "hybrid+upsert+continue"):
        assert cells.loc[arm, "update_seconds"] > 0            # every update step was timed
    assert cells.loc["closed_book", "update_seconds"] == 0
    assert not cells.loc["lora+retrain", "update_cached"] and not cells.loc["lora+continue", "update_cached"]
    upserts = cells[cells.index.str.contains("upsert")]
    assert upserts["collection_same"].all() and (upserts["count_before"] == upserts["count_after"]).all()
    assert NOT_RUN not in {c.verdict for c in fr.claims(out)}
    # the reading half alone rewrites the derived tables and the report to the same bytes
    derived = {name: (out / name).read_bytes() for name in ("summary.csv", "freshness.csv", "report.md")}
    manifest = (out / "manifest.json").read_bytes()
    for name in derived:
        (out / name).unlink()
    run_study("freshness", cfg, out, report_only=True, progress=False)
    assert {name: (out / name).read_bytes() for name in derived} == derived
    assert (out / "manifest.json").read_bytes() == manifest
