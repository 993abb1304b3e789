"""The study engine: the YAML dialect (include, arm_defaults, quick, --model), the registry and
the Makefile agreeing with it, the executor's store seam, and a study run on another model."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.config import ConfigError, load_experiment
from bench.config_files import load_config_raw
from bench.studies.driver import load_study_config, model_slug, results_folder
from bench.studies.registry import get_study, study_names

ROOT = Path(__file__).parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- the YAML dialect ------------------------------------------------------------------------------

def test_include_merges_mappings_and_replaces_lists(tmp_path):
    write(tmp_path / "base" / "b.yaml", "data: {world: {entities: 50}, max_items: 7}\nseeds: [0, 1, 2]\n"
                                        "arms: [{arm: closed_book}]\n")
    top = write(tmp_path / "t.yaml", "include: base/b.yaml\nname: t\ndata: {max_items: 3}\nseeds: [5]\n")
    cfg = load_experiment(top)
    assert cfg.data.world.entities == 50 and cfg.data.max_items == 3    # merged key by key
    assert cfg.seeds == (5,)                                              # a list is replaced whole
    write(tmp_path / "loop.yaml", "include: loop.yaml\nname: x\n")
    with pytest.raises(ConfigError, match=r"loop.yaml: include: a file includes itself"):
        load_experiment(tmp_path / "loop.yaml")
    write(tmp_path / "gone.yaml", "include: nowhere.yaml\nname: x\n")
    with pytest.raises(ConfigError, match=r"gone.yaml: include: file not found: .*nowhere.yaml"):
        load_experiment(tmp_path / "gone.yaml")


def test_arm_defaults_give_every_arm_of_a_kind_its_settings(tmp_path):
    path = write(tmp_path / "a.yaml", "name: a\narm_defaults: {rag: {retrieval: {k: 2, chunk_size: 2}}}\n"
                                      "arms: [{arm: rag}, {name: rag1, arm: rag, retrieval: {k: 1}}]\n")
    first, second = load_experiment(path).arms
    assert (first.settings.retrieval.k, first.settings.retrieval.chunk_size) == (2, 2)
    assert (second.settings.retrieval.k, second.settings.retrieval.chunk_size) == (1, 2)
    write(path, "name: a\narm_defaults: {ragg: {}}\narms: [{arm: rag}]\n")
    with pytest.raises(ConfigError, match=r"a.yaml: arm_defaults.ragg: unknown arm kind"):
        load_experiment(path)
    write(path, "name: a\narm_defaults: {rag: {retrieval: {kk: 1}}}\narms: [{arm: rag}]\n")
    with pytest.raises(ConfigError, match=r"arms\[0\].retrieval.kk: unknown key"):
        load_experiment(path)


def test_the_quick_patch_is_checked_always_and_applied_on_request(tmp_path):
    study = get_study("popularity")
    text = ("name: p\ndata: {world: {entities: 50}}\nseeds: [0, 1, 2]\n"
            "arms: [{arm: closed_book}, {arm: lora}]\nstudy: {min_items_per_bucket: 9}\n")
    path = write(tmp_path / "p.yaml", text + "quick: {seeds: [0], entities: 10, lora_steps: 3, "
                                             "study: {min_items_per_bucket: 1}}\n")
    cfg, s = load_study_config(study, path)
    assert cfg.seeds == (0, 1, 2) and s.min_items_per_bucket == 9
    cfg, s = load_study_config(study, path, quick=True)
    assert cfg.seeds == (0,) and cfg.data.world.entities == 10 and s.min_items_per_bucket == 1
    assert cfg.arms[1].settings.lora.steps == 3          # every adapted arm, named in the YAML or not
    write(path, text + "quick: {seeds: [0], lora_stpes: 3}\n")
    with pytest.raises(ConfigError, match=r"p.yaml: quick.lora_stpes: unknown key"):
        load_study_config(study, path)                   # a typo fails even without --quick
    write(path, text + "quick: {study: {min_items_per_bukcet: 1}}\n")
    with pytest.raises(ConfigError, match=r"p.yaml: study.min_items_per_bukcet: unknown key"):
        load_study_config(study, path, quick=True)


def test_model_switch_and_where_results_go(tmp_path):
    raw, _ = load_config_raw(ROOT / "experiments" / "accuracy.yaml", model="my/model")
    assert raw["model"] == {"name": "my/model", "max_new_tokens": 8, "batch_size": 64}
    assert results_folder("accuracy", "pocket") == Path("results/accuracy")
    assert results_folder("accuracy", "HuggingFaceTB/SmolLM2-135M") == Path("results/HuggingFaceTB--SmolLM2-135M/accuracy")
    (tmp_path / "tiny").mkdir()
    assert model_slug(str(tmp_path / "tiny")) == "tiny"


def test_every_shipped_config_loads_in_both_settings():
    for name in study_names():
        for quick in (False, True):
            cfg, _ = load_study_config(get_study(name), ROOT / "experiments" / f"{name}.yaml", quick)
            assert cfg.name == name


# -- the registry is the one list -----------------------------------------------------------------

def test_the_makefile_runs_every_registered_study_and_all_includes_it():
    makefile = (ROOT / "Makefile").read_text()
    targets = dict(re.findall(r"^([a-z0-9-]+):[^=\n]*\n\t\$\(STUDY\) ([a-z0-9-]+)", makefile, re.M))
    everything = re.search(r"^all: (.*?)(?<!\\)\n", makefile, re.M | re.S).group(1).split()
    phony = re.search(r"^\.PHONY: (.*?)(?<!\\)\n", makefile, re.M | re.S).group(1).split()
    for name in study_names():
        assert targets.get(name) == name, f"no `make {name}` running `bench study {name}`"
        assert name in everything and name in phony, name
        for folder in get_study(name).folders:
            assert targets.get(folder) == name, f"no `make {folder}`"
    assert set(targets.values()) <= set(study_names())


def test_registered_studies_declare_what_the_claims_report_needs():
    from bench.report.claims_report import experiments

    for name in study_names():
        study = get_study(name)
        assert study.topics and study.summary and study.measure.startswith("bench.")
        assert name in experiments()


# -- the executor's store seam ---------------------------------------------------------------------

def test_a_job_answers_from_a_store_handed_in(micro_pocket, tmp_path):
    from bench.config import ArmConfig, DataConfig, ModelConfig, WorldData, parse_experiment
    from bench.data.dataset import build_dataset
    from bench.engine import Job, run_jobs
    from bench.retrieval.chunking import chunk_passages, chunking_key
    from bench.retrieval.embedder import Embedder
    from bench.retrieval.store import VectorStore

    data = DataConfig(world=WorldData(entities=8))
    dataset = build_dataset(data, 0)
    embedder = Embedder.load(load_experiment(ROOT / "experiments" / "accuracy.yaml").arms[1].settings.retrieval.embedder)
    store = VectorStore.open_or_build(chunk_passages(dataset.passages[:5], 1), embedder, tmp_path / "own",
                                      chunking=chunking_key(1), progress=False)
    rag = parse_experiment({"name": "x", "arms": [{"arm": "rag", "retrieval": {"k": 1}}]}).arms[0]
    model = ModelConfig(name=str(micro_pocket[0]), max_new_tokens=2, batch_size=4)
    job = Job(ArmConfig(rag.name, rag.arm, rag.settings), 0, model, data, dataset,
              tuple(dataset.split("test")[:3]), store=store)
    (result,) = run_jobs([job], tmp_path / "out", tmp_path / "cache", progress=False)
    allowed = {p.id for p in dataset.passages[:5]}
    assert all(set(ids[0]) <= allowed for ids in (r["retrieved_ids"] for r in result.rows))
    assert result.stats["collection"] == store.collection_name
    assert not (tmp_path / "cache" / "chroma").exists()      # the arm built no index of its own
    embedder.close()


# -- a study on another model, by one switch -------------------------------------------------------

def test_a_study_runs_on_a_saved_model_by_the_model_switch(micro_pocket, tmp_path, monkeypatch):
    """The micro pocket model is a saved Hugging Face folder (LlamaForCausalLM + tokenizer):
    `--model <folder>` runs the popularity study on it, into results/<folder name>/popularity/."""
    config = write(tmp_path / "experiments" / "popularity.yaml",
                   "name: popularity\nstudy: {bucket_starts: [1, 2], min_items_per_bucket: 1}\n"
                   "data: {world: {entities: 8}, eval_splits: [test]}\nseeds: [0]\n"
                   "model: {name: pocket, max_new_tokens: 3, batch_size: 8}\n"
                   "arms: [{arm: closed_book}, {arm: rag, retrieval: {k: 1}}]\n")
    monkeypatch.chdir(tmp_path)
    from bench.cli import main

    assert main(["study", "popularity", "--config", str(config), "--model", str(micro_pocket[0]),
                 "--quiet"]) == 0
    folder = tmp_path / "results" / micro_pocket[0].name / "popularity"
    items = pd.read_csv(folder / "items.csv")
    assert set(items["arm"]) == {"closed_book", "rag"} and len(items) > 0
    manifest = (folder / "manifest.json").read_text()
    assert f'"model": "{micro_pocket[0]}"' in manifest
    assert not (tmp_path / "results" / "popularity").exists()
    assert main(["report", "--results", "results"]) == 0
    report = (tmp_path / "results" / "report.md").read_text()
    assert f"## popularity ({micro_pocket[0].name})" in report
    assert f"| {micro_pocket[0].name} |" in report


def test_the_readme_lists_every_registered_study_and_the_cli_too(capsys):
    from bench.cli import main

    readme = (ROOT / "README.md").read_text()
    assert main(["studies"]) == 0
    listed = capsys.readouterr().out.split()
    for name in study_names():
        assert f"| `{name}` |" in readme, f"README's study table lacks {name}"
        assert name in listed


def test_the_committed_item_table_round_trips_text_that_looks_missing(tmp_path):
    from bench.report.outputs import item_table, load_item_table

    table = pd.DataFrame({"arm": ["rag"] * 4, "seed": [0] * 4, "item_id": list("abcd"),
                          "prediction": ["", "NA", "null", "1843"], "answers": [["x"], [], ["NA"], ["1843"]],
                          "contexts": [["c"]] * 4, "exact_match": [0.0, 0.0, 0.0, 1.0],
                          "faithfulness": [float("nan"), 1.0, 0.5, 1.0]})
    item_table(table).to_csv(tmp_path / "items.csv", index=False)
    back = load_item_table(tmp_path / "items.csv")
    assert back["prediction"].tolist() == ["", "NA", "null", "1843"]
    assert back["answers"].tolist() == [["x"], [], ["NA"], ["1843"]] and "contexts" not in back
    assert back["faithfulness"].isna().tolist() == [True, False, False, False]


def test_a_job_killed_as_it_writes_its_prepare_stats_leaves_no_half_file(micro_pocket, tmp_path, monkeypatch):
    """The prepare stats go to a temporary file renamed into place: a kill before the rename
    leaves nothing a reader (the cost study, scripts/adapter_seconds.py) would take for stats,
    and the rerun writes them whole and answers every item."""
    import bench.io
    from bench.config import ArmConfig, DataConfig, ModelConfig, WorldData, parse_experiment
    from bench.data.dataset import build_dataset
    from bench.engine import Job, run_jobs

    data = DataConfig(world=WorldData(entities=8))
    dataset = build_dataset(data, 0)
    arm = parse_experiment({"name": "x", "arms": [{"arm": "closed_book"}]}).arms[0]
    model = ModelConfig(name=str(micro_pocket[0]), max_new_tokens=2, batch_size=4)
    job = Job(ArmConfig(arm.name, arm.arm, arm.settings), 0, model, data, dataset,
              tuple(dataset.split("test")[:3]))

    def killed(src, dst):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(bench.io.os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            run_jobs([job], tmp_path / "out", tmp_path / "cache", progress=False)
    predictions = job.log_path(tmp_path / "out").parent
    assert not [p.name for p in predictions.glob("*prepare*")]   # neither the stats nor a temporary
    (result,) = run_jobs([job], tmp_path / "out", tmp_path / "cache", progress=False)
    assert result.stats["prepare_seconds"] >= 0 and len(result.rows) == 3
    assert json.loads(job.log_path(tmp_path / "out").with_suffix(".prepare.json").read_text()) == result.stats
