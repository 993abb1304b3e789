"""The runner end to end on a micro world with the micro pocket model: every arm, resume, caches."""

import math

import pandas as pd
import pytest

from bench import engine

from bench.arms.base import Arm
from bench.config import parse_experiment
from bench.runner import job_keys, run_experiment

SCORE_COLUMNS = ["arm", "seed", "item_id", "prediction", "exact_match", "rougeL", "bleu",
                 "hallucinated", "faithfulness", "recall_at_k", "semantic_similarity"]


def micro_config(model_path, seeds=(0,), **data):
    lora = {"rank": 4, "alpha": 8, "steps": 3, "batch_size": 4}
    return parse_experiment({
        "name": "micro",
        "data": {"world": {"entities": 12}, "max_items": 6, "eval_splits": ["test", "train"], **data},
        "model": {"name": str(model_path), "max_new_tokens": 4, "batch_size": 4},
        "seeds": list(seeds),
        "arms": [{"arm": "closed_book"},
                 {"arm": "rag", "retrieval": {"k": 2}},
                 {"arm": "lora", "lora": lora},
                 {"arm": "hybrid", "retrieval": {"k": 2}, "lora": lora}],
    }, "micro.yaml")


@pytest.fixture(scope="module")
def finished(micro_pocket, tmp_path_factory):
    model_path, _ = micro_pocket
    out, cache = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("cache")
    cfg = micro_config(model_path)
    table, stats = run_experiment(cfg, out, cache, progress=False)
    return cfg, table, stats, out, cache


def test_every_arm_answers_every_item_once(finished):
    cfg, table, _, _, _ = finished
    assert set(table["arm"]) == {"closed_book", "rag", "lora", "hybrid"}
    per_cell = table.groupby(["arm", "seed"]).size()
    assert (per_cell == 12).all()      # 6 test + 6 train items per cell
    assert not table.duplicated(["arm", "seed", "item_id"]).any()
    assert table["prediction"].map(lambda p: isinstance(p, str)).all()


def test_retrieval_only_where_the_arm_retrieves(finished):
    _, table, _, _, _ = finished
    retrieving = table["arm"].isin(["rag", "hybrid"])
    assert table.loc[retrieving, "contexts"].map(len).eq(2).all()          # k = 2
    assert table.loc[~retrieving, "contexts"].isna().all()
    # faithfulness is not applicable (NaN with a reason) without retrieval, never 0 or 1
    assert table.loc[~retrieving, "faithfulness"].isna().all()
    assert (table.loc[~retrieving, "faithfulness_na"] == "arm does not retrieve").all()
    answerable = table["answers"].map(len) > 0
    recall = table.loc[retrieving & answerable, "recall_at_k"]
    assert recall.notna().all() and recall.between(0, 1).all()
    assert table.loc[~retrieving, "recall_at_k"].isna().all()
    # the stage timers add up to the total
    stages = table[["t_embed", "t_search", "t_prompt", "t_generate"]].sum(axis=1)
    assert ((stages - table["t_total"]).abs() < 1e-9).all()
    assert (table.loc[retrieving, "t_search"] > 0).all() and (table.loc[~retrieving, "t_search"] == 0).all()


def test_lora_and_hybrid_share_one_cached_adapter(finished):
    cfg, _, stats, _, cache = finished
    cells = stats.set_index("arm")
    assert cells.loc["lora", "adapter_cached"] in (False, "False")
    assert cells.loc["hybrid", "adapter_cached"] in (True, "True")   # same data + settings + seed
    assert cells.loc["lora", "adapter_key"] == cells.loc["hybrid", "adapter_key"]
    assert cells.loc["lora", "trainable_parameters"] > 0
    assert len(list((cache / "adapters").iterdir())) == 1
    assert math.isnan(cells.loc["closed_book"].get("train_seconds", float("nan")))


def test_a_killed_run_resumes_without_redoing_or_duplicating(finished, micro_pocket, tmp_path, monkeypatch):
    cfg, reference, _, _, cache = finished
    calls = {"n": 0}
    real_answer = Arm.answer

    def dying_answer(self, items):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real_answer(self, items)

    monkeypatch.setattr(Arm, "answer", dying_answer)
    monkeypatch.setattr(engine, "ANSWER_CHUNK_BATCHES", 1)   # one generator batch an append
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path, cache, progress=False)
    logs = list((tmp_path / "predictions").glob("*.jsonl"))
    assert len(logs) == 1 and len(logs[0].read_text().splitlines()) == 4   # one batch survived
    with logs[0].open("a") as f:
        f.write('{"item_id": "torn')                                          # a torn last line
    monkeypatch.setattr(Arm, "answer", real_answer)
    answered = []
    monkeypatch.setattr(Arm, "answer", lambda self, items: answered.extend(items) or real_answer(self, items))
    resumed, _ = run_experiment(cfg, tmp_path, cache, progress=False)
    assert len(answered) == len(reference) - 4                                # nothing answered twice
    pd.testing.assert_frame_equal(resumed[SCORE_COLUMNS].reset_index(drop=True),
                                  reference[SCORE_COLUMNS].reset_index(drop=True))


def test_a_finished_run_is_replayed_from_its_predictions(finished, monkeypatch):
    cfg, reference, _, out, cache = finished
    monkeypatch.setattr(Arm, "prepare", lambda self: pytest.fail("a finished cell must not load a model"))
    again, _ = run_experiment(cfg, out, cache, progress=False)
    # timings are the original measurements, kept with the predictions
    pd.testing.assert_frame_equal(again.reset_index(drop=True), reference.reset_index(drop=True))


def test_predictions_of_a_rebuilt_model_are_not_replayed(finished, micro_pocket, tmp_path, monkeypatch):
    from bench.models import resolve

    cfg = finished[0]
    pocket_cfg = micro_config("pocket")
    before = job_keys(cfg), job_keys(pocket_cfg)
    monkeypatch.setattr(resolve, "checkpoint_hash", lambda: "another-build")
    assert job_keys(pocket_cfg) != before[1]   # the pocket model rebuilt
    assert job_keys(cfg) == before[0]          # a folder model: unchanged
    # a folder model whose files change (here: a new answer style file) gets new keys as well
    import shutil

    copy = shutil.copytree(micro_pocket[0], tmp_path / "m")
    folder_cfg = micro_config(copy)
    keys = job_keys(folder_cfg)
    (copy / "answer_style.json").unlink()
    assert job_keys(folder_cfg) != keys


def test_a_missing_model_fails_before_any_work(tmp_path):
    from bench.models.resolve import ModelNotFound

    cfg = micro_config(tmp_path / "no-such-model")
    with pytest.raises(ModelNotFound):
        run_experiment(cfg, tmp_path / "out", tmp_path / "cache", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_the_own_data_template_runs_on_user_jsonl(micro_pocket, tmp_path):
    """The README's own-data path: user JSONL in, a table out, gold ids checked by retrieval."""
    import dataclasses

    from bench.config import load_experiment

    cfg = load_experiment("experiments/own-data.yaml")
    cfg = dataclasses.replace(cfg, seeds=(0,), arms=cfg.arms[:2],
                              model=dataclasses.replace(cfg.model, name=str(micro_pocket[0])))
    table, _ = run_experiment(cfg, tmp_path / "out", tmp_path / "cache", progress=False)
    assert sorted(table["item_id"].unique()) == ["q4", "q5", "q6", "q7"]
    rag = table[table["arm"] == "rag"].set_index("item_id")
    # MiniLM finds the right passage for these questions in a corpus this small
    assert rag.loc[["q4", "q5", "q6"], "recall_at_k"].eq(1.0).all()
    assert pd.isna(rag.loc["q7", "recall_at_k"])          # unanswerable: recall not applicable
