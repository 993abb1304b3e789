"""The scale study on a tiny setting: real MiniLM and real chroma; the answer model is a stub
(a real one costs a minute to build on a small CPU and is tested elsewhere)."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.config import ConfigError
from bench.config_files import deep_merge
from bench.report.claims import NOT_RUN
from bench.studies.driver import load_study_config, run_study
from bench.studies.registry import get_study
from bench.studies.scale import corpus as sc
from bench.studies.scale import read as scale_read

ROOT = Path(__file__).resolve().parents[1]
TINY = {"name": "scale-tiny", "seeds": [0, 1], "model": {"name": "tiny-reader"},
        "study": {"sizes": [60, 120], "queries": 3, "base_entities": 5, "distractor_entities": 5,
                  "rag_items": 2},
        "quick": {"study": {"sizes": [60, 90]}}}


def write(tmp_path, raw):
    path = tmp_path / "scale.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def load(path, quick=False):
    return load_study_config(get_study("scale"), path, quick)


def test_bigger_corpus_is_a_superset_without_base_entities(tmp_path):
    _, s = load(write(tmp_path, TINY))
    small, big = sc.corpus(s, 0, 60), sc.corpus(s, 0, 300)
    assert len(small) == 60 and len(big) == 300
    assert big[:60] == small
    assert len({p.id for p in big}) == 300
    world = sc.base_world(s, 0)
    base_ids = {p.id for p in world.passages()}
    distractors = [p for p in big if p.id not in base_ids]
    assert len(distractors) == 300 - len(base_ids)
    assert not {p.meta["entity"] for p in distractors} & set(world.entities)


def test_quick_overrides_and_bad_settings_name_the_key(tmp_path):
    assert load(write(tmp_path, TINY), quick=True)[1].sizes == (60, 90)
    for bad, key in (({"study": {"sizes": [20, 200]}}, r"study\.sizes\b"),   # smaller than the base world
                     ({"study": {"sizes": [200, 60]}}, r"study\.sizes\b"),   # not increasing
                     ({"seeds": [0, 0]}, r"seeds: duplicates"),
                     ({"seeds": [1_000_000]}, r"seeds: expected seeds in"),  # a distractor world's seed
                     ({"study": {"sizez": [60]}}, r"study\.sizez\b"),        # unknown key
                     ({"study": {"k": 0}}, r"study\.k\b"),
                     ({"study": {"rag_items": 7}}, r"study\.rag_items\b"),   # more than queries
                     ({"quick": [60]}, r"quick: expected a mapping")):     # checked without --quick too
        with pytest.raises(ConfigError, match=key):
            load(write(tmp_path, deep_merge(TINY, bad)))
    # the quick patch is checked by the same strict rules as the file itself
    with pytest.raises(ConfigError, match=r"study\.queries\b"):
        load(write(tmp_path, deep_merge(TINY, {"quick": {"study": {"queries": "many"}}})), quick=True)
    with pytest.raises(ConfigError, match=r"study\.sizes\b"):
        load(write(tmp_path, deep_merge(TINY, {"quick": {"study": {"sizes": [90, 60]}}})), quick=True)


def test_shipped_config_and_its_quick_setting():
    cfg, s = load(ROOT / "experiments" / "scale.yaml")
    assert cfg.arms == () and cfg.seeds == (0, 1, 2) and cfg.model.name == "pocket"
    assert s.sizes == (1000, 10000, 100000) and s.queries == 200
    _, quick = load(ROOT / "experiments" / "scale.yaml", quick=True)
    assert quick.sizes == (1000, 3000, 10000) and quick.queries == 100 and quick.k == s.k
    assert get_study("scale").folders[0] == "scale-100k"


def test_saved_settings_from_either_manifest_layout(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"config": {"sizes": [1, 2], "k": 3}}))
    assert scale_read.saved_settings(tmp_path).k == 3            # written before the study driver
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"config": {"experiment": {"name": "scale"}, "study": {"sizes": [1, 2], "k": 5}}}))
    assert scale_read.saved_settings(tmp_path).k == 5


class StubGenerator:
    """Answers every prompt with the last word of its first passage (right when it is gold)."""

    def generate(self, prompts):
        from bench.models.generator import Generation

        words = [p.split("\n")[1].rstrip(".").split()[-1] for p in prompts]
        return [Generation(w, 1, 1, 0.0) for w in words]

    def wrap(self, prompt, with_context):
        return prompt      # no chat template

    def context_length(self):
        return None        # no window: prompts are not checked

    def close(self):
        pass


def test_run_writes_one_row_per_size_and_seed(tmp_path, monkeypatch):
    from bench.models.generator import Generator

    from bench.models import checks

    loaded = []
    monkeypatch.setattr(Generator, "load",
                        classmethod(lambda cls, name, **kw: loaded.append(name) or StubGenerator()))
    monkeypatch.setattr(checks, "check_model", lambda cfg: None)   # 'tiny-reader' has no files to check
    config = write(tmp_path, TINY)
    out = tmp_path / "out"
    report = run_study("scale", config, out, progress=False, cache_dir=tmp_path / "cache")
    # the experiment's model reads, through a rag arm opened on each (size, seed) cell's index
    assert loaded == ["tiny-reader"] * 4
    table = pd.read_csv(out / "scale.csv")
    assert sorted(zip(table["size"], table["seed"])) == [(60, 0), (60, 1), (120, 0), (120, 1)]
    assert (table["n_chunks"] == table["size"]).all()
    assert table["recall_at_k"].between(0, 1).all() and table["rag_em"].between(0, 1).all()
    assert (table["rag_items"] == 2).all()
    for col in ("index_s", "embed_s", "disk_mb", "search_ms_p50", "search_ms_p95",
                "embed_ms_p50", "total_ms_p95"):
        assert (table[col] > 0).all(), col
    assert (table["search_ms_p95"] >= table["search_ms_p50"]).all()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]
    assert set(summary["arm"]) == {"rag@60", "rag@120"}
    assert (summary.loc[summary["metric"] == "recall_at_k", "n"] == 2).all()
    text = report.read_text()
    assert "Verdicts" in text and ("supported" in text)
    assert (out / "scale.png").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hardware"]["cpu_count"] and "total" in manifest["timings_seconds"]
    hits, worlds = manifest["embeddings_cached"]   # the second seed reuses the distractor worlds
    assert 0 < hits < worlds and f"{hits} of {worlds} world embeddings came from the cache" in text
    assert manifest["quick"] is False
    assert NOT_RUN not in set(manifest["verdicts"].values())
    assert NOT_RUN not in {c.verdict for c in scale_read.claims(out)}
    # indexes are removed after measuring; embeddings stay cached for the next run
    assert not any((tmp_path / "cache" / "chroma-scale").iterdir())
    assert list((tmp_path / "cache" / "scale-embeddings").glob("*.npy"))
    assert not list(out.glob("*.tmp*"))
    # the reading half alone rewrites the plot and the report to the same bytes
    saved = {name: (out / name).read_bytes() for name in ("report.md", "scale.png", "manifest.json")}
    (out / "report.md").unlink()
    run_study("scale", config, out, report_only=True, progress=False)
    assert {name: (out / name).read_bytes() for name in saved} == saved
