"""The scale study on a tiny setting: real MiniLM and real chroma; the answer model is a stub
(a real one costs a minute to build on a small CPU and is tested elsewhere)."""

import json

import pandas as pd
import pytest
import yaml

from bench.config import ConfigError
from bench.studies import scale

TINY = {"name": "scale-tiny", "sizes": [60, 120], "queries": 3, "seeds": [0, 1],
        "base_entities": 5, "distractor_entities": 5, "rag_items": 2,
        "quick": {"sizes": [60, 90]}}


def write(tmp_path, raw):
    path = tmp_path / "scale.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_bigger_corpus_is_a_superset_without_base_entities():
    s = scale.parse_settings(TINY)
    small, big = scale.corpus(s, 0, 60), scale.corpus(s, 0, 300)
    assert len(small) == 60 and len(big) == 300
    assert big[:60] == small
    assert len({p.id for p in big}) == 300
    world = scale.base_world(s, 0)
    base_ids = {p.id for p in world.passages()}
    distractors = [p for p in big if p.id not in base_ids]
    assert len(distractors) == 300 - len(base_ids)
    assert not {p.meta["entity"] for p in distractors} & set(world.entities)


def test_quick_overrides_and_bad_settings_name_the_key(tmp_path):
    assert scale.load_settings(write(tmp_path, TINY), quick=True).sizes == (60, 90)
    for bad, key in (({"sizes": [20, 200]}, "sizes"),           # smaller than the base world
                     ({"sizes": [200, 60]}, "sizes"),           # not increasing
                     ({"seeds": [0, 0]}, "seeds"),
                     ({"sizez": [60]}, "sizez"),                # unknown key
                     ({"k": 0}, "k"),
                     ({"rag_items": 7}, "rag_items"),           # more than queries
                     ({"quick": [60]}, "quick"),
                     ({"quick": {"queries": "many"}}, "quick.queries")):
        with pytest.raises(ConfigError, match=rf"\.{key}\b"):
            scale.load_settings(write(tmp_path, {**TINY, **bad}), quick=True)


class StubGenerator:
    """Answers every prompt with the last word of its first passage (right when it is gold)."""

    def generate(self, prompts):
        from bench.models.generator import Generation

        words = [p.split("\n")[1].rstrip(".").split()[-1] for p in prompts]
        return [Generation(w, 1, 1, 0.0) for w in words]

    def close(self):
        pass


def test_run_writes_one_row_per_size_and_seed(tmp_path, monkeypatch):
    from bench.models.generator import Generator

    monkeypatch.setattr(Generator, "load", classmethod(lambda cls, name, **kw: StubGenerator()))
    config = write(tmp_path, TINY)
    out = tmp_path / "out"
    report = scale.run(config, out, progress=False, cache_dir=tmp_path / "cache")
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
    # indexes are removed after measuring; embeddings stay cached for the next run
    assert not any((tmp_path / "cache" / "chroma-scale").iterdir())
    assert list((tmp_path / "cache" / "scale-embeddings").glob("*.npy"))
    assert not list(out.glob("*.tmp*"))
