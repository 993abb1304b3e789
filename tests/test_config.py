import pytest
import yaml

from bench.config import ConfigError, load_experiment, parse_experiment

GOOD = {
    "name": "t",
    "data": {"world": {"entities": 10}, "max_items": 5},
    "seeds": [0, 1],
    "arms": [
        {"arm": "closed_book"},
        {"name": "rag3", "arm": "rag", "retrieval": {"k": 3}},
        {"arm": "lora", "lora": {"rank": 4, "steps": 2}},
        {"arm": "hybrid", "retrieval": {"k": 2}, "training": {"paraphrases": False}},
    ],
}


def with_arm(arm: dict) -> dict:
    return {**GOOD, "arms": [arm]}


def test_a_good_config_parses_into_typed_settings():
    cfg = parse_experiment(GOOD, "good.yaml")
    assert [a.name for a in cfg.arms] == ["closed_book", "rag3", "lora", "hybrid"]
    assert cfg.arms[1].settings.retrieval.k == 3
    assert cfg.arms[2].settings.lora.rank == 4 and cfg.arms[2].settings.lora.lr == 2e-3
    assert cfg.arms[3].settings.training.paraphrases is False
    assert cfg.seeds == (0, 1) and cfg.data.world.entities == 10
    # the hash follows the content, not the file name
    assert cfg.hash() == parse_experiment(GOOD, "other.yaml").hash()
    assert cfg.hash() != parse_experiment({**GOOD, "seeds": [0]}, "good.yaml").hash()


@pytest.mark.parametrize("raw, expected", [
    (with_arm({"arm": "lora", "lora": {"rnak": 4}}), "arms[0].lora.rnak: unknown key"),
    (with_arm({"arm": "rag", "retrieval": {"k": "three"}}), "arms[0].retrieval.k: expected int"),
    (with_arm({"arm": "rag", "retrieval": {"k": 0}}), "arms[0].retrieval.k: expected k >= 1"),
    (with_arm({"arm": "rerank"}), "arms[0].arm: unknown arm kind 'rerank'"),
    (with_arm({"arm": "rag", "template": "Q: {question}"}), "missing placeholder(s) ['{context}']"),
    (with_arm({"arm": "lora", "training": {"documents": False, "train_questions": False}}),
     "nothing to train on"),
    (with_arm({"arm": "lora", "lora": {"replay_share": 1.5}}), "replay_share: expected 0 <= x < 1"),
    ({**GOOD, "arms": [{"arm": "rag"}, {"arm": "rag"}]}, "duplicate arm name 'rag'"),
    ({**GOOD, "arms": []}, "arms: expected a non-empty list"),
    ({**GOOD, "seeds": []}, "seeds: expected at least one seed"),
    ({**GOOD, "seeds": [1, 1]}, "seeds: duplicates"),
    ({**GOOD, "sedes": [1]}, "cfg.yaml: config.sedes: unknown key"),
    ({**GOOD, "data": {"corpus": "nope.jsonl", "qa": "nope.jsonl"}}, "data.corpus: file not found"),
    ({**GOOD, "data": {}}, "give either `world:` or both"),
    ({**GOOD, "data": {"world": {}, "eval_splits": ["dev"]}}, "eval_splits: expected"),
    ({**GOOD, "model": {"batch_size": "big"}}, "model.batch_size: expected int"),
])
def test_bad_configs_fail_with_the_key_and_the_reason(raw, expected):
    with pytest.raises(ConfigError) as e:
        parse_experiment(raw, "cfg.yaml")
    assert expected in str(e.value)


def test_yaml_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\narms: [\n  {arm: rag\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: not valid YAML"):
        load_experiment(path)
    with pytest.raises(ConfigError, match="missing.yaml: file not found"):
        load_experiment(tmp_path / "missing.yaml")


def test_the_shipped_experiment_configs_are_valid():
    from pathlib import Path

    configs = sorted(Path("experiments").glob("*.yaml"))
    assert configs, "no experiment YAMLs found"
    from bench.studies.registry import study_names

    for path in configs:
        raw = yaml.safe_load(path.read_text())
        if raw["name"] in study_names():   # studies have their own sections: tests/test_study_engine.py
            continue
        cfg = load_experiment(path)
        assert cfg.arms and raw["name"] == cfg.name
