"""data-scaling: what each setting of the sweep trains on and is asked, the verdict rules on
hand-made tables, claims/redraw from saved tables alone, and one micro end-to-end run through
the driver (whose reading half alone rewrites the same derived tables and report)."""

from dataclasses import replace

import pandas as pd
import pytest

from bench.arms.adapter import TrainingData, trained_items, training_examples
from bench.config import ConfigError, DataConfig, WorldData
from bench.data.dataset import build_dataset
from bench.io import write_csv
from bench.prompts import closed_book_prompt
from bench.report.claims import CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED
from bench.studies.data_scaling import Settings
from bench.studies.data_scaling import measure as sweep
from bench.studies.data_scaling import read as ds
from bench.studies.data_scaling import report as page
from bench.studies.driver import load_study_config, run_study
from bench.studies.registry import get_study


def load(path, quick=False):
    """(experiment config, settings, {arm kind: arm}) as the driver loads them."""
    cfg, s = load_study_config(get_study("data-scaling"), path, quick)
    return cfg, s, {a.arm: a for a in cfg.arms}


@pytest.fixture(scope="module")
def world():
    return build_dataset(DataConfig(world=WorldData(entities=20)), seed=3)


def base_settings():
    from bench.arms.lora import LoraArm
    from bench.models.lora import LoraSettings
    return LoraArm.Settings(training=TrainingData(), lora=LoraSettings(steps=300, batch_size=32, replay_share=0.3))


def test_the_training_view_holds_out_only_the_last_wording_of_train_items(world):
    view = sweep.training_view(world)
    full = {q.id: q for q in world.items}
    for q in view.items:
        if q.split == "train":
            assert q.paraphrases == full[q.id].paraphrases[:-1]
        else:
            assert q == full[q.id]
    assert view.passages == world.passages and view.fingerprint != world.fingerprint


@pytest.mark.parametrize("aug", [False, True])
def test_each_setting_trains_on_n_items_in_the_right_wordings_and_is_asked_the_held_out_one(world, aug):
    s = Settings(sizes=(5,), epochs=2.0, min_steps=1, max_steps=10_000, reworded_items=100)
    view = sweep.training_view(world)
    point = ds.Point(5, aug)
    settings, facts = sweep.point_settings(base_settings(), point, view, 3, s)
    assert settings.training.max_train_questions == 5 and settings.training.paraphrases is aug
    examples, replay = training_examples(settings.training, view, 3)
    prompts = [p for p, _ in examples if p]
    trained = trained_items(settings.training, view, 3)
    full = {q.id: q for q in world.items}
    assert len(trained) == 5 and len(replay) == 5
    expected = [closed_book_prompt(w) for q in trained
                for w in ([q.question, *full[q.id].paraphrases[:-1]] if aug else [q.question])]
    assert prompts == expected                                  # 1 or 2 wordings per item
    assert facts["train_qa_examples"] == (10 if aug else 5) == len(prompts)
    docs = len({p.doc_id for p in world.passages})
    assert facts["train_examples"] == docs + len(prompts)
    # steps: 2 passes over the examples at 32 - round(32 * 0.3) = 22 non-replay rows per step
    assert settings.lora.steps == -(-2 * (docs + len(prompts)) // 22)
    sets = sweep.eval_sets(world, point, settings.training, s, 3)
    asked = sets["reworded"]
    assert sorted(q.id for q in asked) == sorted(f"{q.id}/reworded" for q in trained)
    for q in asked:
        held = full[q.id.removesuffix("/reworded")].paraphrases[-1]
        assert q.question == held and closed_book_prompt(held) not in prompts   # never trained
        assert q.answers == full[q.id.removesuffix("/reworded")].answers
    assert [q.id for q in sets["trained"]] == [q.id.replace("/reworded", "/trained") for q in asked]
    for q in sets["trained"]:                                   # the contrast: the trained wording
        assert q.question == full[q.id.removesuffix("/trained")].question
        assert closed_book_prompt(q.question) in prompts
    assert all(q.split == "test" and q.answerable for q in sets["test"])


def test_without_augmentation_the_view_trains_the_same_examples_as_the_full_dataset(world):
    """So those adapters keep the cache keys they would have without the study."""
    data = TrainingData(max_train_questions=7, paraphrases=False)
    assert training_examples(data, sweep.training_view(world), 0) == training_examples(data, world, 0)
    # and with augmentation the held-out wording is the only difference
    aug = replace(data, paraphrases=True)
    assert training_examples(aug, sweep.training_view(world), 0) != training_examples(aug, world, 0)


def test_steps_are_clamped_and_test_items_are_shared_by_every_setting(world):
    view = sweep.training_view(world)
    tight = Settings(epochs=50.0, min_steps=3, max_steps=7, test_items=5, reworded_items=3)
    settings, _ = sweep.point_settings(base_settings(), ds.Point(4, True), view, 0, tight)
    assert settings.lora.steps == 7
    loose = replace(tight, epochs=0.001)
    assert sweep.point_settings(base_settings(), ds.Point(4, True), view, 0, loose)[0].lora.steps == 3
    a = sweep.eval_sets(world, ds.Point(4, True), replace(TrainingData(), max_train_questions=4), tight, 0)
    b = sweep.eval_sets(world, ds.Point(9, False), replace(TrainingData(), max_train_questions=9), tight, 0)
    assert [q.id for q in a["test"]] == [q.id for q in b["test"]] and len(a["test"]) == 5
    assert len(a["reworded"]) == len(b["reworded"]) == 3        # capped at reworded_items


def test_the_recipe_curve_and_the_two_checks_are_planned_and_trained_as_asked(world):
    from bench.injection.recipe import Recipe

    view = sweep.training_view(world)
    s = Settings(sizes=(3, 6), epochs=2.0, min_steps=1, max_steps=40, recipe=Recipe(synthetic_qa=1),
                 diagnose=True)
    points = sweep.sweep_points(s)
    assert [p.label for p in points] == ["n=3", "n=6", "n=3+para", "n=6+para", "n=3+para+recipe",
                                         "n=6+para+recipe", "n=6+para+3xpasses", "n=6+para+4xrank"]
    plain, f_plain = sweep.point_settings(base_settings(), points[3], view, 0, s)
    recipe, f_recipe = sweep.point_settings(base_settings(), points[5], view, 0, s)
    passes, f_passes = sweep.point_settings(base_settings(), points[6], view, 0, s)
    rank, f_rank = sweep.point_settings(base_settings(), points[7], view, 0, s)
    facts = len({(p.meta["entity"], p.meta["attribute"]) for p in world.passages})
    assert recipe.training.recipe == Recipe(synthetic_qa=1) and plain.training.recipe == Recipe()
    assert f_recipe["train_examples"] == f_plain["train_examples"] + facts
    # 3x the passes, the cap raised with them; 4x the rank (alpha with it) at the plain steps
    assert passes.lora.steps == min(3 * 40, -(-3 * 2 * f_plain["train_examples"] // 22)) > plain.lora.steps
    assert (rank.lora.rank, rank.lora.alpha, rank.lora.steps) == (64, 128, plain.lora.steps)
    assert f_rank["rank"] == 64 and f_plain["rank"] == 16
    # the plain points are trained exactly as without the new settings (same adapters, same keys)
    bare = Settings(sizes=(3, 6), epochs=2.0, min_steps=1, max_steps=40)
    assert sweep.point_settings(base_settings(), ds.Point(6, True), view, 0, bare)[0] == plain


# -- verdicts on hand-made tables -------------------------------------------------------------------

def cells_table(gain: dict, aug_gap: float = 0.0, noise=(0.0, 0.01, -0.01)) -> pd.DataFrame:
    """closed-book EM 0.10 everywhere; lora (with paraphrases) = 0.10 + gain[n] + noise[seed];
    without paraphrases aug_gap lower."""
    rows = []
    for seed, eps in enumerate(noise):
        for es in ("reworded", "trained", "test"):
            rows.append({"arm": "closed_book", "kind": "closed_book", "seed": seed, "eval_set": es,
                         "items": 100, "exact_match": 0.10, "closed_book_em": 0.10, "rag_em": 0.6})
            rows.append({"arm": "rag", "kind": "rag", "seed": seed, "eval_set": es, "items": 100,
                         "exact_match": 0.6, "closed_book_em": 0.10, "rag_em": 0.6})
            for n, g in gain.items():
                for aug in (True, False):
                    for kind in ("lora", "hybrid"):
                        em = 0.10 + g + eps - (0 if aug else aug_gap) + (0.3 if kind == "hybrid" else 0)
                        rows.append({"arm": kind, "kind": kind, "size": n, "augmentation": aug, "seed": seed,
                                     "eval_set": es, "items": 50, "exact_match": em, "token_f1": em,
                                     "closed_book_em": 0.10, "rag_em": 0.6, "trained_items": n,
                                     "train_qa_examples": n * (2 if aug else 1), "train_examples": 500 + n,
                                     "steps": 50, "train_seconds": 1.0, "final_loss": 1.0,
                                     "adapter_cached": False})
    return pd.DataFrame(rows).reindex(columns=ds.CELL_COLUMNS)


def test_gain_rule_finds_the_smallest_size_with_a_ci_above_zero():
    verdict, first, gains = ds.gains_verdict(cells_table({50: 0.0, 150: 0.08, 500: 0.2}))
    assert (verdict, first) == (SUPPORTED, 150)
    assert gains[50][1] < 0 < gains[50][2] and gains[150][1] > 0
    # gains only beyond 500: not supported; still inconclusive because 500's CI reaches +1 point
    verdict, first, _ = ds.gains_verdict(cells_table({50: 0.0, 500: 0.005, 1000: 0.2}, noise=(0, 0.02, -0.02)))
    assert (verdict, first) == (INCONCLUSIVE, 1000)
    # a tight zero at 500: a gain of one point is ruled out -> contradicted
    verdict, first, _ = ds.gains_verdict(cells_table({50: 0.0, 500: -0.001}, noise=(0, 0.001, -0.001)))
    assert (verdict, first) == (CONTRADICTED, None)


def test_claims_and_redraw_work_from_saved_tables_alone(tmp_path):
    assert [c.verdict for c in ds.claims(tmp_path)] == [NOT_RUN, NOT_RUN]      # empty folder
    assert page.redraw(tmp_path) == []
    write_csv(cells_table({50: 0.0, 150: 0.08, 500: 0.2}, aug_gap=0.05), tmp_path / "cells.csv")
    gains, ovadia = ds.claims(tmp_path)
    assert gains.verdict == SUPPORTED and "first n with CI > 0: 150" in gains.measured
    assert ovadia.verdict == SUPPORTED and "n=500" in ovadia.measured and "5.0 [" in ovadia.measured
    write_csv(cells_table({50: 0.0, 500: 0.2}, aug_gap=-0.05), tmp_path / "cells.csv")
    assert ds.claims(tmp_path)[1].verdict == CONTRADICTED
    paths = page.redraw(tmp_path)
    assert [p.name for p in paths] == ["data_scaling.png"] and paths[0].stat().st_size > 10_000
    summary = ds.summary_table(ds.curve_table(ds.load_cells(tmp_path)))
    assert list(summary.columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]
    row = summary[(summary["arm"] == "lora@n=500+para") & (summary["metric"] == "em_gain_vs_closed_book:reworded")]
    assert row["mean"].iloc[0] == pytest.approx(0.2) and row["n"].iloc[0] == 3
    assert {"closed_book", "rag", "hybrid@n=50"} <= set(summary["arm"])
    facts = summary[(summary["arm"] == "lora@n=500+para") & (summary["metric"] == "facts_gained:reworded")]
    assert facts["mean"].iloc[0] == pytest.approx(0.2 * 500)      # EM gain x trained items
    assert not summary["metric"].eq("facts_gained:test").any()


def test_results_from_before_the_variants_read_as_plain_points(tmp_path):
    # a cells.csv written before the recipe curve and the checks has no variant column
    write_csv(cells_table({50: 0.0, 150: 0.08, 500: 0.2}).drop(columns="variant"), tmp_path / "cells.csv")
    cells = ds.load_cells(tmp_path)
    assert isinstance(ds.variants(cells.drop(columns="variant")), pd.Series)
    assert cells["variant"].eq("").all() and ds.plain(cells.drop(columns="variant")).all()
    assert ds.claims(tmp_path)[0].verdict == SUPPORTED


def test_the_steps_line_keeps_each_variant_apart_from_the_plain_point():
    # the recipe adapter at n=50 trains ~6x the plain one's steps: a mean over both (the old line)
    # reported neither; the line must give each its own steps and examples
    cells = cells_table({50: 0.0})
    recipe = cells[(cells["kind"] == "lora") & (cells["augmentation"] == True)].assign(  # noqa: E712
        variant="recipe", steps=470, train_qa_examples=3200, train_examples=3650)
    lora = pd.concat([cells.assign(variant=""), recipe])
    lora = lora[lora["kind"] == "lora"]
    text = page.steps_text(lora)
    assert "n=50+para: 50 steps (100 QA + 450 documents)" in text
    assert "n=50+para+recipe: 470 steps (3200 QA + 450 documents)" in text
    assert "n=50: 50 steps (50 QA + 500 documents)" in text and text.count("steps") == 3


# -- config -------------------------------------------------------------------------------------------

def test_shipped_config_loads_in_both_settings():
    cfg, s, kinds = load("experiments/data-scaling.yaml")
    qcfg, q, _ = load("experiments/data-scaling.yaml", quick=True)
    assert set(kinds) == {"closed_book", "rag", "lora", "hybrid"}
    assert s.augmentation == (False, True) and max(q.sizes) < max(s.sizes)
    assert qcfg.data.world.entities < cfg.data.world.entities and len(qcfg.seeds) <= len(cfg.seeds)


@pytest.mark.parametrize("study, arms, message", [
    ("{sizes: [0, 5]}", "[{arm: closed_book}, {arm: lora}]", r"study\.sizes: expected distinct sizes >= 1"),
    ("{min_steps: 9, max_steps: 3}", "[{arm: closed_book}, {arm: lora}]", r"study\.min_steps/max_steps"),
    ("{sizse: [5]}", "[{arm: closed_book}, {arm: lora}]", r"study\.sizse: unknown key"),
    ("{}", "[{arm: lora}]", r"arms: needs a 'closed_book' arm"),
    ("{}", "[{arm: closed_book}, {arm: lora}, {arm: hybrid, lora: {rank: 4}}]",
     r"arms\[2\]: training/lora must equal the lora arm's"),
])
def test_bad_configs_fail_naming_the_key(tmp_path, study, arms, message):
    path = tmp_path / "d.yaml"
    path.write_text(f"name: d\nstudy: {study}\ndata: {{world: {{entities: 10}}}}\narms: {arms}\n")
    with pytest.raises(ConfigError, match=message):
        load(path)


# -- end to end on the micro model ---------------------------------------------------------------------

def test_the_study_runs_end_to_end_and_reruns_from_its_logs(micro_pocket, tmp_path):
    model_path, _ = micro_pocket
    cfg = tmp_path / "data-scaling.yaml"
    cfg.write_text(f"""
name: data-scaling
claim: test
study: {{sizes: [3], epochs: 0.01, min_steps: 2, max_steps: 2, test_items: 4, reworded_items: 3}}
data: {{world: {{entities: 12}}}}
model: {{name: "{model_path}", max_new_tokens: 4, batch_size: 8}}
seeds: [0]
arms:
  - {{arm: closed_book}}
  - {{arm: lora, lora: {{rank: 2, alpha: 4, batch_size: 4}}}}
  - {{arm: hybrid, retrieval: {{k: 1}}, lora: {{rank: 2, alpha: 4, batch_size: 4}}}}
""")
    out, cache = tmp_path / "out", tmp_path / "cache"
    report = run_study("data-scaling", cfg, out, progress=False, cache_dir=cache)
    assert "## Verdicts" in report.read_text()
    for name in ("summary.csv", "cells.csv", "curve.csv", "data_scaling.png", "manifest.json"):
        assert (out / name).exists()
    cells = pd.read_csv(out / "cells.csv")
    lora = cells[cells["kind"].isin(["lora", "hybrid"])]
    assert len(lora) == 2 * 2 * 3          # arms x augmentation x eval sets
    assert (lora["steps"] == 2).all()
    # lora and hybrid share one adapter per (size, augmentation, seed): the hybrid loads it
    hyb = lora[lora["kind"] == "hybrid"]
    assert hyb["adapter_cached"].astype(str).eq("True").all()
    assert set(lora[lora["eval_set"] == "reworded"]["items"]) == {3}
    # the reading half alone rewrites the derived tables and the report to the same bytes
    derived = {name: (out / name).read_bytes() for name in ("curve.csv", "summary.csv", "report.md")}
    manifest = (out / "manifest.json").read_bytes()
    for name in derived:
        (out / name).unlink()
    run_study("data-scaling", cfg, out, report_only=True, progress=False)
    assert {name: (out / name).read_bytes() for name in derived} == derived
    assert (out / "manifest.json").read_bytes() == manifest
    first = cells.copy()
    adapters = sorted(p.name for p in (cache / "adapters").iterdir())
    run_study("data-scaling", cfg, out, progress=False, cache_dir=cache)   # everything from the logs
    pd.testing.assert_frame_equal(pd.read_csv(out / "cells.csv"), first)
    assert sorted(p.name for p in (cache / "adapters").iterdir()) == adapters
    assert len(adapters) == 2             # one per augmentation setting
