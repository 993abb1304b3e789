"""forgetting: the sweep arms share the accuracy adapter, the verdict follows its rule on
hand-made tables, and claims, plots and the report come from saved tables alone."""

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.config import ConfigError
from bench.report.claims import CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED
from bench.studies.driver import load_study_config, run_study
from bench.studies.forgetting import Settings, shared, sweep
from bench.studies.forgetting import measure as fgm
from bench.studies.forgetting import read as fg
from bench.studies.registry import get_study

CONFIG = "experiments/forgetting.yaml"


def load(path, quick=False):
    return load_study_config(get_study("forgetting"), path, quick)


def shipped() -> str:
    """The shipped YAML, its base included by absolute path (so a copy elsewhere loads)."""
    return Path(CONFIG).read_text().replace("include: base/", f"include: {Path(CONFIG).resolve().parent}/base/")


def test_shipped_config_loads_in_both_settings():
    cfg, s = load(CONFIG)
    _, quick = load(CONFIG, quick=True)
    assert cfg.name == "forgetting" and s != quick
    assert sweep.variants(s)[0] == (s.steps[0], s.base_rank)
    # the 300-step rank-16 adapter appears once although it is in both sweeps
    assert len(sweep.variants(s)) == len(s.steps) + len(s.ranks) - 1


def test_the_accuracy_point_is_the_accuracy_experiments_adapter(four_arms):
    """Same settings -> same adapter cache key: the sweep must not change the template arm."""
    cfg, s = load(CONFIG)
    acc = four_arms   # today's recipe: accuracy's lora_plain adapter
    for kind in ("lora", "hybrid"):
        ours = shared.variant_arm(shared.template_arm(cfg, kind, "x"), s.base_steps, s.base_rank)
        theirs = shared.template_arm(acc, kind, "x")
        assert ours.settings == theirs.settings
    assert cfg.data.world == acc.data.world
    small = shared.variant_arm(shared.template_arm(cfg, "lora", "x"), 100, 2).settings.lora
    assert (small.steps, small.rank, small.alpha) == (100, 2, 4)     # alpha / rank kept at 2


def test_bad_study_settings_fail_with_their_key(tmp_path):
    text = shipped()
    bad = tmp_path / "f.yaml"
    bad.write_text(text.replace("base_steps: 300", "base_steps: 250"))
    with pytest.raises(ConfigError, match=r"study.base_steps: 250 must be one of steps"):
        load(bad)
    bad.write_text(text.replace("background_items: 200", "background_itmes: 200"))
    with pytest.raises(ConfigError, match=r"study.background_itmes: unknown key"):
        load(bad)
    bad.write_text(text.replace("background_items: 200", "background_items: 200\n  background: world")
                   + "model: {name: gpt2}\n")
    with pytest.raises(ConfigError, match=r"study.background: world is what the pocket model.*needs general_knowledge"):
        load(bad)
    bad.write_text(text.replace("background_items: 200", "background_items: 200\n  background: news"))
    with pytest.raises(ConfigError, match=r"study.background: expected one of"):
        load(bad)
    bad.write_text(text.replace("eval_splits: [train, test]", "eval_splits: [test]"))
    with pytest.raises(ConfigError, match=r"data.eval_splits: expected \[train, test\]"):
        load(bad)


def test_background_sample_is_fixed_and_answerable():
    a, b = fgm.background_items(20), fgm.background_items(20)
    assert [q.id for q in a] == [q.id for q in b]
    assert sum(q.split == "train" for q in a) == 20 and sum(q.split == "test" for q in a) == 20
    assert all(q.answers for q in a)


def _per_seed(drops: dict[str, tuple[float, ...]], before: float = 1.0) -> pd.DataFrame:
    """A hand-made per-seed table: variant -> (drop at seed 0, drop at seed 1[, seed 2])."""
    rows = []
    for seed in range(max(len(p) for p in drops.values())):
        rows.append({"variant": fg.BASE, "steps": 0, "rank": 0, "seed": seed,
                     "background_trained_em": before, "background_heldout_em": 0.4,
                     "background_trained_drop": 0.0, "background_heldout_drop": 0.0,
                     "world_trained_em": 0.02, "world_heldout_em": 0.02, "world_reading_em": 0.7,
                     "epochs": 0.0, "train_seconds": 0.0, "trainable_parameters": 0})
        for name, pair in drops.items():
            if seed >= len(pair):
                continue
            steps, rank = (int(x) for x in name.removeprefix("lora_s").split("_r"))
            rows.append({"variant": name, "steps": steps, "rank": rank, "seed": seed,
                         "background_trained_em": before - pair[seed], "background_heldout_em": 0.3,
                         "background_trained_drop": pair[seed], "background_heldout_drop": 0.1,
                         "world_trained_em": 0.3, "world_heldout_em": 0.02, "world_reading_em": 0.6,
                         "epochs": steps / 100, "train_seconds": 1.0, "trainable_parameters": 10 * rank,
                         "adapter_cached": True})
    return pd.DataFrame(rows)


def _save(tmp_path, per_seed):
    s = Settings(steps=(100, 300, 600), ranks=(2, 16, 64))
    summary, wide = fg.tables(per_seed, s)
    per_seed.to_csv(tmp_path / "per_seed.csv", index=False)
    summary.to_csv(tmp_path / "summary.csv", index=False)
    wide.to_csv(tmp_path / "forgetting.csv", index=False)
    return summary


@pytest.mark.parametrize("pair, verdict", [((0.40, 0.44), SUPPORTED), ((-0.02, 0.03), INCONCLUSIVE),
                                           ((-0.30, -0.32), CONTRADICTED)])
def test_verdict_follows_the_ci_of_the_drop_at_the_accuracy_adapter(tmp_path, pair, verdict):
    drops = {"lora_s100_r16": (0.1, 0.12), "lora_s300_r16": pair, "lora_s600_r16": (0.6, 0.62),
             "lora_s300_r2": (0.2, 0.21), "lora_s300_r64": (0.5, 0.5)}
    summary = _save(tmp_path, _per_seed(drops))
    assert list(summary.columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]
    assert set(summary["n"]) == {2}
    main, steps, rank = fg.claims(tmp_path)
    assert main.verdict == verdict
    assert "lies above 0" in main.rule
    # steps: 600-step drop minus 100-step drop = +0.50 at both seeds -> a zero-width CI above 0
    assert steps.verdict == SUPPORTED
    assert rank.verdict == SUPPORTED and "rank" in rank.measured


def test_a_noisy_trend_is_inconclusive(tmp_path):
    drops = {"lora_s100_r16": (0.1, 0.5), "lora_s300_r16": (0.3, 0.3), "lora_s600_r16": (0.5, 0.1),
             "lora_s300_r2": (0.3, 0.3), "lora_s300_r64": (0.3, 0.3)}
    _save(tmp_path, _per_seed(drops))
    _, steps, rank = fg.claims(tmp_path)
    assert steps.verdict == INCONCLUSIVE   # +0.4 and -0.4: the CI straddles 0


def test_claims_and_redraw_from_saved_tables_alone(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert {c.verdict for c in fg.claims(empty)} == {NOT_RUN}
    assert fg.redraw(empty) == []
    drops = {"lora_s100_r16": (0.1, 0.12), "lora_s300_r16": (0.3, 0.35), "lora_s600_r16": (0.6, 0.62),
             "lora_s300_r2": (0.2, 0.21), "lora_s300_r64": (0.5, 0.5)}
    _save(tmp_path, _per_seed(drops))
    paths = fg.redraw(tmp_path)
    assert [p.name for p in paths] == ["forgetting.png"] and paths[0].stat().st_size > 0
    assert "32.5 [" in fg.claims(tmp_path)[0].measured   # the 300/r16 drop, in points


def test_run_config_lists_references_then_one_arm_per_variant():
    cfg, s = load(CONFIG)
    rcfg = sweep.run_config(cfg, dataclasses.replace(s, reading=False))
    names = [a.name for a in rcfg.arms]
    assert names[0] == "closed_book" and "rag" not in names
    assert names[1:] == [f"lora_s{st}_r{r}" for st, r in sweep.variants(s)]


def test_the_third_seed_of_the_cached_accuracy_adapter_narrows_the_ci(tmp_path):
    """Two seeds: t(1) = 12.7 makes even a 50-62 point drop inconclusive; the accuracy adapter's
    third seed (cached by the accuracy experiment) is what lets the rule decide."""
    others = {"lora_s100_r16": (0.1, 0.12), "lora_s600_r16": (0.6, 0.62)}
    _save(tmp_path, _per_seed({**others, "lora_s300_r16": (0.62, 0.50)}))
    assert fg.claims(tmp_path)[0].verdict == INCONCLUSIVE
    _save(tmp_path, _per_seed({**others, "lora_s300_r16": (0.62, 0.50, 0.56)}))
    main = fg.claims(tmp_path)[0]
    assert main.verdict == SUPPORTED and "(n=3 seeds)" in main.measured


def test_sweep_seeds_trim_every_adapter_but_the_accuracy_one(tmp_path):
    cfg, s = load(CONFIG)     # the shipped config sweeps at every seed
    assert cfg.seeds == (0, 1, 2) and sweep.sweep_seeds(cfg, s) == (0, 1, 2)
    trimmed = tmp_path / "forgetting.yaml"
    trimmed.write_text(re.sub(r"(?m)^  sweep_seeds: .*$", "  sweep_seeds: [0, 1]", shipped()))
    cfg, s = load(trimmed)
    assert sweep.sweep_seeds(cfg, s) == (0, 1)
    assert sweep.seeds_of(cfg, s, s.base_steps, s.base_rank) == (0, 1, 2)
    assert sweep.seeds_of(cfg, s, 600, s.base_rank) == (0, 1)


def test_the_reading_half_alone_rewrites_tables_plot_and_report(tmp_path):
    """`--report-only`: the summary, the wide table, the plot and report.md from per_seed.csv
    and the manifest's timings alone (no model), the same bytes every time."""
    config = tmp_path / "forgetting.yaml"
    config.write_text(shipped().replace("steps: [50, 100, 150, 200, 300, 400]", "steps: [100, 300, 600]")
                      .replace("ranks: [16, 64]", "ranks: [2, 16, 64]"))
    out = tmp_path / "out"
    out.mkdir()
    drops = {"lora_s100_r16": (0.1, 0.12), "lora_s300_r16": (0.3, 0.35), "lora_s600_r16": (0.6, 0.62),
             "lora_s300_r2": (0.2, 0.21), "lora_s300_r64": (0.5, 0.5)}
    _per_seed(drops).to_csv(out / "per_seed.csv", index=False)
    (out / "manifest.json").write_text(json.dumps({"quick": False, "timings_seconds": {"total": 42.0}}))
    report = run_study("forgetting", config, out, report_only=True, progress=False)
    text = report.read_text()
    assert "This run took 42 s" in text and "![forgetting](forgetting.png)" in text and "## Verdict" in text
    wide = pd.read_csv(out / "forgetting.csv")
    assert list(wide["variant"]) == [fg.BASE, *drops] and (wide["n"] == 2).all()
    assert wide.set_index("variant").loc["lora_s300_r16", "background_trained_drop"] == pytest.approx(0.325)
    assert {c.verdict for c in fg.claims(out)[1:]} == {SUPPORTED}
    written = {name: (out / name).read_bytes() for name in ("summary.csv", "forgetting.csv", "report.md")}
    run_study("forgetting", config, out, report_only=True, progress=False)
    assert {name: (out / name).read_bytes() for name in written} == written


def test_a_real_model_forgets_general_knowledge_it_answered(micro_pocket, tmp_path):
    """A model other than pocket is asked the shipped general-knowledge questions; 'known' =
    those its base answered, so the before-value is 100% and the drop is what was lost."""
    import shutil

    model = tmp_path / "micro-real"
    shutil.copytree(micro_pocket[0], model)
    items = fgm.general_knowledge_items()
    assert len(items) >= 150 and len({q.id for q in items}) == len(items)
    assert all(q.answers and all(a.strip() for a in q.answers) for q in items)
    config = tmp_path / "f.yaml"
    config.write_text(shipped() + f"""
data: {{world: {{entities: 10}}, max_items: 4, eval_splits: [train, test]}}
model: {{name: {model}, max_new_tokens: 3, batch_size: 64}}
seeds: [0]
arm_defaults: {{lora: {{lora: {{batch_size: 4}}}}, hybrid: {{lora: {{batch_size: 4}}}}}}
study: {{steps: [2, 3], ranks: [2], base_steps: 3, base_rank: 2, reading: false}}
""")
    out = tmp_path / "out"
    run_study("forgetting", config, out, progress=False, cache_dir=tmp_path / "cache")
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert set(per_seed["background"]) == {"general_knowledge"}
    base = per_seed[per_seed["variant"] == fg.BASE].iloc[0]
    known = base["background_trained_em"]
    # the micro model knows no capital: known is empty (NaN) or, if it hit one, recalled 100%
    assert pd.isna(known) or known == 1.0
    assert 0.0 <= base["background_heldout_em"] < 0.5
    report = (out / "report.md").read_text()
    assert "general-knowledge questions" in report and "known GK" in report


def test_known_split_keeps_what_the_base_model_answered():
    base = [{"item_id": "a", "prediction": "Paris", "answers": ["Paris"], "split": "test"},
            {"item_id": "b", "prediction": "Lyon", "answers": ["Rome"], "split": "test"}]
    after = [{**base[0], "prediction": "It is Paris."}, {**base[1], "prediction": "Rome"}]
    rows = fgm.known_split(after, base)
    assert [(r["item_id"], r["split"]) for r in rows] == [("a", "train"), ("a", "test"), ("b", "test")]
    from bench.metrics.scores import contains
    assert shared.em_by_split(rows, metric=contains) == {"train": 1.0, "test": 1.0}
