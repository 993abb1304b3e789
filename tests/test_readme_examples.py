"""The README's worked examples run as written: a new arm is one module and one registration,
a new study is one module and one registration, and both work through the ordinary paths."""

import importlib.util
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).parents[1] / "README.md"


def readme_block(first_line: str) -> str:
    """The README code block whose first line is `first_line`."""
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", README.read_text(), re.S):
        if body.splitlines()[0].strip() == first_line:
            return body
    raise AssertionError(f"README has no code block starting with {first_line!r}")


def load_module(name: str, code: str, tmp_path: Path):
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def registries(monkeypatch):
    """Registrations made by a test go into copies that are dropped afterwards."""
    from bench.arms import registry as arms
    from bench.studies import registry as studies

    studies.study_names()   # the built-in studies are registered before the copy is taken
    monkeypatch.setattr(arms, "ARMS", dict(arms.ARMS))
    monkeypatch.setattr(studies, "STUDIES", dict(studies.STUDIES))
    yield


def test_the_new_arm_example_runs_in_an_experiment(micro_pocket, tmp_path, registries, monkeypatch):
    from bench.config import parse_experiment
    from bench.runner import run_experiment

    monkeypatch.delitem(sys.modules, "gated_rag", raising=False)
    load_module("gated_rag", readme_block("# bench/arms/gated_rag.py: RAG that declines when retrieval "
                                          "finds nothing close enough"), tmp_path)
    cfg = parse_experiment({"name": "g", "data": {"world": {"entities": 8}, "max_items": 4},
                            "model": {"name": str(micro_pocket[0]), "max_new_tokens": 3, "batch_size": 8},
                            "seeds": [0], "arms": [{"arm": "rag", "retrieval": {"k": 1}},
                                                   {"name": "gated", "arm": "gated_rag", "min_score": 2.0,
                                                    "retrieval": {"k": 1}}]})
    table, _ = run_experiment(cfg, tmp_path / "out", tmp_path / "cache", progress=False)
    gated = table[table["arm"] == "gated"]
    assert len(gated) == 4 and (gated["prediction"] == "unknown").all()     # no cosine reaches 2.0
    assert gated["contexts"].map(len).eq(1).all()                            # it did retrieve
    with pytest.raises(Exception, match=r"arms\[1\].min_scor: unknown key"):
        parse_experiment({"name": "g", "arms": [{"arm": "rag"}, {"arm": "gated_rag", "min_scor": 1}]})


def test_the_new_study_example_runs_through_the_driver(micro_pocket, tmp_path, registries, monkeypatch):
    from bench.studies.driver import run_study

    monkeypatch.delitem(sys.modules, "retrieval_depth", raising=False)
    load_module("retrieval_depth", readme_block("# bench/studies/retrieval_depth/__init__.py: does RAG "
                                                "answer better with more passages?"), tmp_path)
    experiments = tmp_path / "experiments"
    (experiments / "base").mkdir(parents=True)
    (experiments / "base" / "four-arms.yaml").write_text((README.parent / "experiments/base/four-arms.yaml").read_text())
    (experiments / "retrieval-depth.yaml").write_text(readme_block("# experiments/retrieval-depth.yaml"))
    config = tmp_path / "micro.yaml"   # the README's file, shrunk to the micro model and world
    config.write_text(f"include: experiments/retrieval-depth.yaml\nseeds: [0, 1]\n"
                      f"data: {{world: {{entities: 8}}, max_items: 6}}\n"
                      f"model: {{name: '{micro_pocket[0]}', max_new_tokens: 3, batch_size: 8}}\n")
    out = tmp_path / "out"
    report = run_study("retrieval-depth", config, out, progress=False, cache_dir=tmp_path / "cache")
    items = pd.read_csv(out / "items.csv")
    assert set(items["arm"]) == {"rag_k1", "rag_k3"} and set(items["seed"]) == {0, 1}
    text = report.read_text()
    assert "# retrieval-depth: more retrieved passages help RAG" in text and "(n=2 seeds)" in text
    assert "retrieval-depth" in (out / "manifest.json").read_text()
