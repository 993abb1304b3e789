"""Model profiles: experiments/models/<model>.yaml sizes every study for a model."""

from pathlib import Path

import pytest

from bench import config_files
from bench.config import ConfigError
from bench.studies.driver import load_study_config
from bench.studies.registry import get_study

ROOT = Path(__file__).resolve().parents[1]


def load(study, model=None, quick=False, config=None):
    return load_study_config(get_study(study), config or ROOT / f"experiments/{study}.yaml", quick, model)


def test_the_smollm2_profile_sizes_every_profile_study():
    from bench.cli import PROFILE_STUDIES

    pocket, _ = load("accuracy")
    cfg, _ = load("accuracy", "smollm2-135m")
    assert (pocket.model.max_new_tokens, pocket.seeds, pocket.data.world.entities) == (8, (0, 1, 2), 200)
    assert (cfg.model.max_new_tokens, cfg.seeds, cfg.data.world.entities) == (16, (0, 1), 40)
    for arm in cfg.arms:
        if hasattr(arm.settings, "lora"):
            assert (arm.settings.lora.steps, arm.settings.lora.batch_size) == (120, 8)
    for study in PROFILE_STUDIES:    # every one loads and checks with the profile
        load(study, "smollm2-135m")
    _, forgetting = load("forgetting", "smollm2-135m")
    assert forgetting.background == "general_knowledge" and forgetting.base_steps == 120
    popularity, _ = load("popularity", "smollm2-135m")
    assert popularity.data.max_items is None


def test_quick_still_shrinks_a_profiled_study():
    cfg, _ = load("accuracy", "smollm2-135m", quick=True)
    assert cfg.data.max_items == 40 and cfg.model.max_new_tokens == 16
    assert {a.settings.lora.steps for a in cfg.arms if hasattr(a.settings, "lora")} == {30}


def test_a_study_on_the_users_files_gets_no_world(tmp_path):
    raw = config_files.apply_profile({"name": "x", "data": {"corpus": "c.jsonl", "qa": "q.jsonl"}},
                                     "smollm2-135m")
    assert "world" not in raw["data"] and raw["data"]["max_items"] == 50


def test_a_bad_profile_names_its_file_and_key(tmp_path, monkeypatch):
    monkeypatch.setattr(config_files, "PROFILES", tmp_path)
    (tmp_path / "mine.yaml").write_text("al: {seeds: [0]}\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: unknown key 'al'; expected all, studies"):
        load("accuracy", "mine")
    (tmp_path / "mine.yaml").write_text("all: {seeds: [0]}\nstudies: {accuracy: {seeds: [4, 5]}}\n")
    cfg, _ = load("accuracy", "mine")
    assert cfg.seeds == (4, 5)                      # the study's section wins over all:
    assert config_files.profile_path("../mine") is None and config_files.profile_path("a/b") is None


def test_the_profile_command_refuses_an_unknown_study_before_any_work(capsys, monkeypatch):
    from bench.cli import main

    monkeypatch.chdir(ROOT)
    saved = ROOT / "results" / "smollm2-135m" / "profile.json"
    before = saved.stat().st_mtime_ns if saved.exists() else None
    assert main(["profile", "smollm2-135m", "--studies", "accuracy,nope"]) == 2
    assert "--studies: unknown study 'nope'; registered:" in capsys.readouterr().err
    assert (saved.stat().st_mtime_ns if saved.exists() else None) == before   # nothing rewritten
