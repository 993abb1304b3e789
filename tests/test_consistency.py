"""consistency: paraphrase items, seeded sampling, cache-key compatibility, the agreement
arithmetic on hand-made tables, and claims/plots from saved tables."""

import dataclasses
import math

import pandas as pd
import pytest

from bench.metrics.study import pairwise_agreement

from bench.config import ConfigError, DataConfig, WorldData, parse_experiment
from bench.report.claims import CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED
from bench.config import with_changes
from bench.studies.consistency import measure as cm
from bench.studies.consistency import read as cons
from bench.studies.driver import load_study_config, run_study
from bench.studies.registry import get_study


def load_study(path, quick=False):
    return load_study_config(get_study("consistency"), path, quick)


# -- data and config --------------------------------------------------------------------------
def test_paraphrases_become_items_sharing_gold_and_group():
    from bench.data.dataset import build_dataset

    ds = build_dataset(DataConfig(world=WorldData(entities=12)), 0)
    plain = ds.eval_items(["test"], 5, 0)
    expanded = ds.eval_items(["test"], 5, 0, paraphrases=True)
    assert len(expanded) == sum(1 + len(q.paraphrases) for q in plain) == 3 * len(plain)
    for q in plain:
        mine = [e for e in expanded if e.meta["group"] == q.id]
        assert [e.id for e in mine] == [f"{q.id}.p{j}" for j in range(3)]
        assert [e.question for e in mine] == [q.question, *q.paraphrases]
        assert all(e.answers == q.answers and e.gold_ids == q.gold_ids and e.split == q.split
                   and e.meta["kind"] == q.meta["kind"] and e.meta["popularity"] == q.meta["popularity"]
                   for e in mine)
    # training data never sees the expansion
    assert ds.split("train") == build_dataset(DataConfig(world=WorldData(entities=12)), 0).split("train")


def test_new_options_at_their_defaults_keep_every_cache_key(monkeypatch):
    """The accuracy experiment's cells keep their prediction-cache keys (and the config its hash)
    when an option is added at its default (temperature, paraphrases_as_items, answer_format)."""
    from bench.models import resolve
    from bench.engine import ANSWER_CODE_VERSION
    from bench.runner import job_keys

    monkeypatch.setattr(resolve, "checkpoint_hash", lambda: "pinned")   # keys name the model too

    if ANSWER_CODE_VERSION != 2:
        pytest.skip("answer code version bumped on purpose: every key changed")
    lora = {"rank": 16, "alpha": 32, "steps": 300, "batch_size": 32, "lr": 0.002, "replay_share": 0.3}
    training = {"documents": True, "train_questions": True, "paraphrases": True, "reading_replay": True}
    cfg = parse_experiment({
        "name": "accuracy", "seeds": [0, 1, 2],
        "data": {"world": {"entities": 200}, "eval_splits": ["test", "train"], "max_items": 300},
        "model": {"name": "pocket", "max_new_tokens": 8, "batch_size": 64},
        "arms": [{"name": "closed_book", "arm": "closed_book"},
                 {"name": "rag", "arm": "rag", "retrieval": {"k": 1, "chunk_size": 1}},
                 {"name": "lora", "arm": "lora", "training": training, "lora": lora},
                 {"name": "hybrid", "arm": "hybrid", "retrieval": {"k": 1, "chunk_size": 1},
                  "training": training, "lora": lora}]}, "accuracy.yaml")
    # pinned when the model's identity joined the key (the options' defaults had kept the keys
    # of the code before them until then); the retrieving arms' keys changed on purpose when
    # retrieval.search joined them (exact search changed their answers): closed_book and lora
    # keep theirs
    assert job_keys(cfg) == [
        "72ef6ca8ece5", "f00057cc8cf6", "99a1bcdabc10", "5abcb7f6d00f", "3d5400a0ea60", "c3db3b16fb25",
        "2d0a9a4f5cfb", "3b7aa0f11356", "f3f771a8b124", "063c17d57a77", "bf1698753f4e", "a3bb3b0d49ff"]
    assert cfg.hash() == "bfc85afb4009cc72"
    first = job_keys(cfg)[0]
    assert job_keys(with_changes(cfg, temperature=0.7))[0] != first
    assert job_keys(with_changes(cfg, paraphrases_as_items=True))[0] != first


def test_bad_temperatures_fail_with_their_key(tmp_path):
    path = tmp_path / "c.yaml"
    data = "data: {paraphrases_as_items: true}\n"
    path.write_text("name: c\nstudy: {temperatures: [0.0, -1]}\narms: [{arm: rag}]\n" + data)
    with pytest.raises(ConfigError, match=r"study\.temperatures: expected distinct"):
        load_study(path)
    path.write_text("name: c\nmodel: {temperature: -0.5}\narms: [{arm: rag}]\n" + data)
    with pytest.raises(ConfigError, match=r"config\.model\.temperature: expected 0"):
        load_study(path)
    path.write_text("name: c\narms: [{arm: rag}]\n")        # each wording must be its own item
    with pytest.raises(ConfigError, match=r"data\.paraphrases_as_items: the consistency study"):
        load_study(path)


def test_shipped_config_loads_in_both_settings(four_arms):
    cfg, full = load_study("experiments/consistency.yaml")
    quick_cfg, quick = load_study("experiments/consistency.yaml", quick=True)
    assert quick_cfg != cfg and 0.0 in full.temperatures and cfg.data.paraphrases_as_items
    assert quick_cfg.data.paraphrases_as_items and quick.temperatures == full.temperatures
    acc = four_arms
    # the shared four arms (accuracy's lora_plain among them): the adapters come from the cache
    assert [(a.arm, a.settings) for a in cfg.arms] == [(a.arm, a.settings) for a in acc.arms]


def test_sampling_is_seeded_and_greedy_is_unchanged(micro_pocket, tmp_path):
    from bench.arms.base import ArmEnv
    from bench.arms.closed_book import ClosedBookArm
    from bench.config import ModelConfig
    from bench.data.dataset import build_dataset

    ds = build_dataset(DataConfig(world=WorldData(entities=12)), 0)
    items = ds.eval_items(["test"], 8, 0)
    greedy_model = ModelConfig(name=str(micro_pocket[0]), max_new_tokens=5, batch_size=4)
    arm = ClosedBookArm(ClosedBookArm.Settings(), ArmEnv(greedy_model, ds, 0, tmp_path, False))
    arm.prepare()

    def answers(temperature, seed):
        arm.env.model = dataclasses.replace(greedy_model, temperature=temperature)
        arm.env.seed = seed
        return [a.prediction for a in arm.answer(items)]

    try:
        direct = [g.text for g in arm.generator.generate([arm.prompt(q.question, None) for q in items])]
        greedy = answers(0.0, 0)
        assert greedy == direct                               # the default path is plain greedy
        assert answers(0.0, 1) == greedy                      # greedy ignores the seed
        hot = answers(1.5, 0)
        assert answers(1.5, 0) == hot                         # same seed -> same samples
        assert hot != greedy or answers(1.5, 1) != hot        # and sampling does sample
    finally:
        arm.close()


# -- arithmetic on hand-made tables -----------------------------------------------------------
def test_pairwise_agreement():
    assert pairwise_agreement(["a", "a", "b"]) == pytest.approx(1 / 3)
    assert pairwise_agreement(["a", "a", "a"]) == 1.0
    assert pairwise_agreement(["a", "b", "c"]) == 0.0
    assert pairwise_agreement(["a", "a", "b", "b"]) == pytest.approx(2 / 6)
    assert pairwise_agreement(["a"]) == 1.0


def _rows(arm, kind, seed, group, preds, gold="Harp", tops=None, golds=("g1",), t=0.0):
    out = []
    for j, p in enumerate(preds):
        em = float(p.lower().removeprefix("the ").strip() == gold.lower())
        out.append({"arm": arm, "arm_kind": kind, "seed": seed, "temperature": t, "group": group,
                    "kind": "answerable", "prediction": p, "exact_match": em,
                    "abstained": float(p == "unknown"),
                    "retrieved_ids": None if tops is None else [[tops[j]]], "gold_ids": list(golds)})
    return out


def hand_made(seed=0, t=0.0):
    rows = []
    # rag: q1 same top chunk, all agree and correct ("The harp" normalises to "harp")
    rows += _rows("rag", "rag", seed, "q1", ["Harp", "The harp", "harp"], tops=["g1", "g1", "g1"], t=t)
    # q2: top chunk differs on one wording (gold hit differs too), answers differ, one correct
    rows += _rows("rag", "rag", seed, "q2", ["Harp", "Flute", "Harp"], tops=["g1", "x", "g1"], t=t)
    # q3: differing top chunks that both state the fact (ids differ, gold hit the same), agree
    rows += _rows("rag", "rag", seed, "q3", ["Harp", "Harp", "Harp"], tops=["g1", "g2", "g1"],
                  golds=("g1", "g2"), t=t)
    # lora: consistent but wrong on q1, abstains everywhere on q2, mixed on q3
    rows += _rows("lora", "lora", seed, "q1", ["Flute"] * 3, t=t)
    rows += _rows("lora", "lora", seed, "q2", ["unknown"] * 3, t=t)
    rows += _rows("lora", "lora", seed, "q3", ["Harp", "Drum", "Harp"], t=t)
    return pd.DataFrame(rows)


def test_agreement_arithmetic_on_a_hand_made_table():
    groups = cm.group_table(hand_made())
    rag = groups[groups["arm"] == "rag"].set_index("group")
    assert rag["agree_all"].tolist() == [1.0, 0.0, 1.0]
    assert rag["pairwise_agree"].tolist() == pytest.approx([1.0, 1 / 3, 1.0])
    assert rag["all_correct"].tolist() == [1.0, 0.0, 1.0]
    assert rag["top_chunk_differs"].tolist() == [0.0, 1.0, 1.0]
    assert rag["gold_hit_differs"].tolist() == [0.0, 1.0, 0.0]
    cells = cm.cell_table(groups).set_index("arm")
    r, lo = cells.loc["rag"], cells.loc["lora"]
    assert r["agree_all"] == pytest.approx(2 / 3) and r["all_correct"] == pytest.approx(2 / 3)
    assert r["agree_given_any_correct"] == pytest.approx(2 / 3)          # every rag group had a correct one
    assert r["exact_match"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert r["top_chunk_differs"] == pytest.approx(2 / 3) and r["gold_hit_differs"] == pytest.approx(1 / 3)
    assert r["agree_same_top"] == 1.0 and r["agree_diff_top"] == pytest.approx(0.5)
    assert lo["agree_all"] == pytest.approx(2 / 3) and lo["all_correct"] == 0.0
    assert lo["agree_given_any_correct"] == 0.0                          # only q3 had a correct answer
    assert lo["abstained"] == pytest.approx(1 / 3)
    assert math.isnan(lo["top_chunk_differs"]) and math.isnan(lo["agree_same_top"])


def test_sd_and_summary_long_form():
    s, lo, hi, n = cons.sd_ci([0.1, 0.3])
    assert s == pytest.approx(0.1414, abs=1e-4) and lo < s < hi and n == 2
    assert math.isnan(cons.sd_ci([0.5])[0])
    table = pd.concat([hand_made(seed, t) for seed in (0, 1, 2) for t in (0.0, 1.0)])
    summary = cons.summarize(cm.cell_table(cm.group_table(table)))
    assert list(summary.columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]
    assert set(summary["n"]) == {3}
    got = summary.set_index(["arm", "metric"])["mean"]
    assert got[("rag", "test:agree_all@T0")] == pytest.approx(2 / 3)
    assert got[("rag", "test:top_chunk_differs")] == pytest.approx(2 / 3)
    assert ("lora", "test:top_chunk_differs") not in got.index          # not applicable: no row
    assert got[("lora", "test:em_sd_over_seeds@T1")] == 0.0             # identical seeds
    assert got[("lora", "test:em_sd_over_temperatures")] == 0.0
    assert list(dict.fromkeys(summary["arm"])) == ["rag", "lora"]


def test_cells_saved_with_six_digits_read_back_exactly(tmp_path):
    table = pd.concat([hand_made(seed, t) for seed in (0, 1, 2) for t in (0.0, 1.0)])
    cells = cm.cell_table(cm.group_table(table))
    cells.to_csv(tmp_path / "rounded.csv", index=False, float_format="%.6g")   # as runs before the driver
    cells.to_csv(tmp_path / "full.csv", index=False)
    for name in ("rounded.csv", "full.csv"):
        back = cons.exact_cells(pd.read_csv(tmp_path / name))
        pd.testing.assert_frame_equal(back, cells, check_dtype=False, check_exact=False, rtol=1e-15)
        pd.testing.assert_frame_equal(cons.summarize(back), cons.summarize(cells), check_exact=False, rtol=1e-12)


# -- claims and plots from saved tables -------------------------------------------------------
def _save(folder, lora_more_consistent=True):
    parts = []
    for seed in (0, 1, 2):
        t = hand_made(seed)
        if lora_more_consistent:     # lora agrees everywhere, rag only on q1 (+ q3 for seed 0)
            t.loc[(t["arm"] == "lora") & (t["group"] == "q3"), "prediction"] = "Harp"
            if seed:
                t.loc[(t["arm"] == "rag") & (t["group"] == "q3"), "prediction"] = ["Harp", "Drum", "Harp"]
        parts += [t.assign(split="test"), t.assign(split="train")]
    cells = cm.cell_table(cm.group_table(pd.concat(parts)))
    folder.mkdir(exist_ok=True)
    cells.to_csv(folder / cons.CELLS_CSV, index=False)
    cons.summarize(cells).to_csv(folder / cons.SUMMARY_CSV, index=False)


def test_claims_and_redraw_from_saved_tables_alone(tmp_path):
    _save(tmp_path)
    main, trained, retrieval = cons.claims(tmp_path)
    assert main.verdict == SUPPORTED and "lora - rag" in main.rule.replace("(", "").replace(")", "")
    assert "held-out" in main.measured and "share of test questions" in main.rule
    assert trained.verdict == SUPPORTED and trained.id == "consistency.trained"
    assert "share of train questions" in trained.rule
    # rag agrees on every same-top question and on fewer differing-top ones in every seed
    assert retrieval.verdict == SUPPORTED and "top chunk differs" in retrieval.measured
    paths = cons.redraw(tmp_path)
    assert [p.name for p in paths] == ["consistency.png"] and paths[0].stat().st_size > 0
    _save(tmp_path / "b", lora_more_consistent=False)
    cells = pd.read_csv(tmp_path / "b" / cons.CELLS_CSV)
    lora_test = (cells["arm"] == "lora") & (cells["split"] == "test")
    cells.loc[lora_test, "agree_all"] = [0.1, 0.2, 0.15]               # lora now below rag (2/3)
    cells.to_csv(tmp_path / "b" / cons.CELLS_CSV, index=False)
    assert [c.verdict for c in cons.claims(tmp_path / "b")][:2] == [CONTRADICTED, INCONCLUSIVE]


def test_an_empty_folder_is_not_run(tmp_path):
    claims = cons.claims(tmp_path)
    assert [c.verdict for c in claims] == [NOT_RUN] * 3
    assert cons.redraw(tmp_path) == []


# -- end to end on the micro model ------------------------------------------------------------
def test_a_micro_run_writes_every_table_and_a_report(micro_pocket, tmp_path):
    import yaml

    (tmp_path / "consistency.yaml").write_text(yaml.safe_dump({
        "name": "consistency", "study": {"temperatures": [0.0, 1.0]},
        "data": {"world": {"entities": 12}, "eval_splits": ["test"], "max_items": 3, "paraphrases_as_items": True},
        "model": {"name": str(micro_pocket[0]), "max_new_tokens": 4, "batch_size": 8},
        "seeds": [0],
        "arms": [{"arm": "rag", "retrieval": {"k": 1}},
                 {"arm": "lora", "lora": {"rank": 4, "alpha": 8, "steps": 2, "batch_size": 4}}]}))
    out = tmp_path / "out"
    report = run_study("consistency", tmp_path / "consistency.yaml", out, progress=False,
                       cache_dir=tmp_path / "cache")
    for name in ("summary.csv", "cells.csv", "consistency.png", "manifest.json", "report.md"):
        assert (out / name).exists(), name
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 2 * 2 and set(cells["n_groups"]) == {3}
    assert sorted(cells["temperature"].unique()) == [0.0, 1.0]
    assert cells[cells["arm"] == "rag"]["top_chunk_differs"].notna().all()
    assert [c.verdict != NOT_RUN for c in cons.claims(out)] == [True, False, True]   # no train split
    assert "## Verdicts" in report.read_text()
    # the reading half alone rewrites summary.csv and report.md to the same bytes, manifest untouched
    saved = {name: (out / name).read_bytes() for name in ("summary.csv", "report.md", "manifest.json")}
    (out / "summary.csv").unlink()
    (out / "report.md").unlink()
    run_study("consistency", tmp_path / "consistency.yaml", out, report_only=True, progress=False)
    assert {name: (out / name).read_bytes() for name in saved} == saved
