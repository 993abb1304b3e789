"""lora-params: the parameter arithmetic, peft's count on real module trees against it, the
adapter size against a real save, and claims/plots from saved tables alone."""

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.report.claims import CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED
from bench.studies.driver import load_study_config, run_study
from bench.studies.lora_params import Settings
from bench.studies.lora_params import counts as lp
from bench.studies.lora_params import read as lpr
from bench.studies.registry import get_study

CONFIG = "experiments/lora-params.yaml"


def load(path, quick=False, study="lora-params"):
    return load_study_config(get_study(study), path, quick)

TINY = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
        "tie_word_embeddings": False}
TINY_QWEN = {**TINY, "model_type": "qwen2", "tie_word_embeddings": True}
ALL = list(lp.ATTENTION + lp.MLP)


def test_the_articles_example_exactly():
    assert 512 * 64 == 32_768
    assert lp.lora_parameters(64, 512, 8) == 8 * (512 + 64) == 4_608
    ex = lp.example_check(512, 64, 8)            # peft on a real 512 x 64 nn.Linear
    assert (ex["weights"], ex["lora_peft"], ex["lora_formula"]) == (32_768, 4_608, 4_608)


@pytest.mark.parametrize("conf", [TINY, TINY_QWEN], ids=["llama", "qwen2"])
@pytest.mark.parametrize("modules", [["q_proj", "v_proj"], list(lp.ATTENTION), ALL])
@pytest.mark.parametrize("rank", [1, 8])
def test_peft_count_equals_the_formula_on_a_tiny_model(conf, modules, rank):
    c = lp.peft_count(lp.hf_config(conf), modules, rank, disk=False)
    assert c["trainable"] == lp.formula_count(conf, modules, rank) == c["shape_formula"]
    assert c["matrices"] == conf["num_hidden_layers"] * len(modules)
    assert c["full"] == lp.full_parameter_count(conf)       # tied/untied embeddings, qwen2 biases


def test_k_and_v_are_narrower_with_grouped_query_attention():
    shapes = lp.config_shapes(TINY)
    assert shapes["q_proj"] == (32, 32) and shapes["k_proj"] == (32, 16)
    # per layer at r=1: q (32+32) + v (32+16) = 112; two layers
    assert lp.formula_count(TINY, ["q_proj", "v_proj"], 1) == 224


def test_pocket_model_count_matches_its_trained_adapters():
    from transformers import AutoConfig

    from bench.pocket.recipe import CHECKPOINT_DIR

    c = lp.peft_count(AutoConfig.from_pretrained(CHECKPOINT_DIR), ALL, 16, disk=False)
    assert c["trainable"] == 233_472                 # what train_lora reported for the r16 adapter
    assert c["trainable"] + c["full"] == 2_397_888   # ... and its total with the adapter


def test_qwen_config_arithmetic_matches_the_published_size():
    _, s = load(CONFIG)
    qwen = s.hf_configs["Qwen2.5-0.5B"]
    assert lp.full_parameter_count(qwen) == 494_032_768
    assert lp.formula_count(qwen, ALL, 8) == 8 * 24 * (2 * (896 + 896) + 2 * (896 + 128) + 3 * (896 + 4864))


def test_adapter_bytes_equal_a_real_save(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(lp.hf_config(TINY))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=ALL,
                                                  task_type="CAUSAL_LM"))
    measured = lp.adapter_disk_bytes(peft_model)
    peft_model.save_pretrained(tmp_path)
    weights = (tmp_path / "adapter_model.safetensors").stat().st_size
    config = (tmp_path / "adapter_config.json").stat().st_size
    assert weights > 4 * lp.formula_count(TINY, ALL, 4)      # fp32 weights + a header
    assert abs(measured - (weights + config)) < 100          # config text differs by a path at most


def test_fraction_verdict_rule():
    assert lpr.fraction_verdict([0.001, 0.009]) == SUPPORTED
    assert lpr.fraction_verdict([0.001, 0.05]) == INCONCLUSIVE
    assert lpr.fraction_verdict([0.2, 0.5]) == CONTRADICTED
    assert lpr.fraction_verdict([]) == INCONCLUSIVE


def test_bad_hf_config_fails_before_any_work(tmp_path):
    bad = tmp_path / "l.yaml"
    shipped = Path(CONFIG).read_text().replace("include: base/", f"include: {Path(CONFIG).resolve().parent}/base/")
    bad.write_text(shipped.replace("model_type: qwen2", "model_typ: qwen2"))
    with pytest.raises(Exception, match=r"study.hf_configs.Qwen2.5-0.5B.model_type: required"):
        load(bad)


def _saved(tmp_path, fractions_hf=(0.001, 0.002, 0.009), match=True):
    rows = []
    for model, kind, fracs in (("pocket", "bench", (0.01, 0.02, 0.05)), ("hf", "hf_config", fractions_hf)):
        for target, frac in zip(("q+v", "attention", "attention+mlp"), fracs):
            for rank in (1, 8):
                rows.append({"model": model, "kind": kind, "target_set": target, "modules": "x",
                             "rank": rank, "adapted_matrices": 4, "trainable_peft": 100 * rank,
                             "trainable_formula": 100 * rank, "formula_source": "config",
                             "counts_match": match, "total_parameters": 10_000,
                             "trainable_fraction": frac * rank / 8, "adapter_bytes": 400 * rank + 900,
                             "full_checkpoint_bytes": 40_000})
        rows.append({"model": model, "kind": kind, "target_set": "full fine-tuning", "modules": "all",
                     "rank": float("nan"), "adapted_matrices": float("nan"), "trainable_peft": 10_000,
                     "trainable_formula": 10_000, "formula_source": "config", "counts_match": True,
                     "total_parameters": 10_000, "trainable_fraction": 1.0, "adapter_bytes": 40_000,
                     "full_checkpoint_bytes": 40_000})
    counts = pd.DataFrame(rows)
    counts.to_csv(tmp_path / "params.csv", index=False)
    pd.DataFrame([lp.example_check(512, 64, 8)]).to_csv(tmp_path / "example.csv", index=False)
    acc = pd.DataFrame([{"rank": r, "steps": 300, "seed": s, "world_trained_em": 0.3, "world_heldout_em": 0.02,
                         "world_reading_em": 0.6, "train_seconds": 100.0, "trainable_parameters": 1000,
                         "adapter_cached": True} for r in (2, 16) for s in (0, 1)])
    acc.to_csv(tmp_path / "accuracy_per_seed.csv", index=False)
    summary, wide = lpr.tables(counts, acc)
    summary.to_csv(tmp_path / "summary.csv", index=False)
    wide.to_csv(tmp_path / "accuracy.csv", index=False)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"config": {"study": {"verdict_rank": 8, "small_fraction": 0.01}}, "timings_seconds": {"total": 7.0}}))
    return summary


def test_claims_and_redraw_from_saved_tables_alone(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert {c.verdict for c in lpr.claims(empty)} == {NOT_RUN}
    assert lpr.redraw(empty) == []
    summary = _saved(tmp_path)
    assert list(summary.columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]
    main, example = lpr.claims(tmp_path)
    assert main.verdict == SUPPORTED and "hf (" in main.measured and "pocket (" in main.measured
    assert example.verdict == SUPPORTED and "4,608" in example.measured
    assert sorted(p.name for p in lpr.redraw(tmp_path)) == ["accuracy_vs_rank.png", "lora_params.png"]
    # the run's own settings, when given, decide the rank judged (else the manifest's)
    assert "at r=1 by" in lpr.claims(tmp_path, Settings(ranks=(1, 8), verdict_rank=1))[0].measured


def test_claims_judge_the_hf_configs_and_distrust_disagreeing_counts(tmp_path):
    _saved(tmp_path, fractions_hf=(0.001, 0.002, 0.02))
    assert lpr.claims(tmp_path)[0].verdict == INCONCLUSIVE
    _saved(tmp_path, match=False)
    assert lpr.claims(tmp_path)[0].verdict == INCONCLUSIVE


@pytest.mark.parametrize("quick", [False, True])
def test_accuracy_vs_rank_uses_the_forgetting_rank_sweep_adapters(quick):
    """Same world, seeds, template arm, steps and ranks -> the adapters come from the cache."""
    from bench.studies.forgetting.shared import template_arm, variant_arm
    from bench.studies.forgetting.sweep import sweep_seeds

    cfg, s = load(CONFIG, quick=quick)
    fcfg, fs = load("experiments/forgetting.yaml", quick=quick, study="forgetting")
    assert cfg.data == fcfg.data and cfg.model == fcfg.model and cfg.seeds == sweep_seeds(fcfg, fs)
    assert s.accuracy_steps == fs.base_steps and set(s.accuracy_ranks) <= set(fs.ranks)
    for kind in ("lora", "hybrid"):
        for rank in s.accuracy_ranks:
            ours = variant_arm(template_arm(cfg, kind, "x"), s.accuracy_steps, rank)
            theirs = variant_arm(template_arm(fcfg, kind, "x"), fs.base_steps, rank)
            assert ours == theirs        # the same name and settings: the same job and adapter keys


def test_the_reading_half_alone_rewrites_tables_plots_and_report(tmp_path):
    """`--report-only`: summary.csv, accuracy.csv, both plots and report.md from the saved
    params.csv, example.csv and accuracy_per_seed.csv (no model), the same bytes every time."""
    _saved(tmp_path)
    for name in ("summary.csv", "accuracy.csv"):
        (tmp_path / name).unlink()
    report = run_study("lora-params", CONFIG, tmp_path, report_only=True, progress=False)
    text = report.read_text()
    assert "Run time 7 s" in text and "![lora_params](lora_params.png)" in text
    assert "![accuracy_vs_rank](accuracy_vs_rank.png)" in text and "**supported**" in text
    assert list(pd.read_csv(tmp_path / "accuracy.csv")["rank"]) == [2, 16]
    written = {name: (tmp_path / name).read_bytes() for name in ("summary.csv", "accuracy.csv", "report.md")}
    run_study("lora-params", CONFIG, tmp_path, report_only=True, progress=False)
    assert {name: (tmp_path / name).read_bytes() for name in written} == written
