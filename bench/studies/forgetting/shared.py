"""What forgetting and lora-params share, kept in one place so that the two studies name the same
adapters: the template arm of a kind (from the YAML) and its variants with only steps and rank
changed. Same template and (steps, rank) -> same arm settings -> same adapter cache key, whichever
study asks; lora-params' accuracy-vs-rank adapters are forgetting's rank sweep.

Also how both studies read answers and per-seed rows: exact match per split, an adapter's
test-world row, and a per-seed table -> means with 95% CIs in long form and as `<metric>`,
`<metric>_lo`, `<metric>_hi` columns.
No model code here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from bench.config import ArmConfig, ConfigError, ExperimentConfig
from bench.report.tables import summarize_wide


def template_arm(cfg: ExperimentConfig, kind: str, where: str) -> ArmConfig:
    arms = [a for a in cfg.arms if a.arm == kind]
    if len(arms) != 1:
        raise ConfigError(f"{where}: arms: expected exactly one `arm: {kind}` (the template the "
                          f"sweeps vary), found {len(arms)}")
    return arms[0]


def variant_arm(template: ArmConfig, steps: int, rank: int) -> ArmConfig:
    """The template LoRA/hybrid arm with only steps and rank changed; alpha keeps its ratio to
    the rank, so the template's own (steps, rank) gives the template's adapter exactly."""
    lora = template.settings.lora
    alpha = lora.alpha * rank / lora.rank
    if alpha != int(alpha):
        raise ConfigError(f"{template.name}: alpha {lora.alpha} / rank {lora.rank} gives a "
                          f"non-integer alpha at rank {rank}")
    settings = replace(template.settings, lora=replace(lora, steps=steps, rank=rank, alpha=int(alpha)))
    return ArmConfig(f"{template.arm}_s{steps}_r{rank}", template.arm, settings)


GENERAL_KNOWLEDGE = Path(__file__).resolve().parents[2] / "data" / "general_knowledge.jsonl"


def general_knowledge_items() -> list:
    """The shipped general-knowledge questions a real model's forgetting is measured on (all,
    in file order)."""
    from bench.data.loaders import read_qa

    return read_qa(GENERAL_KNOWLEDGE)


def em_by_split(rows, splits=("train", "test"), metric=None) -> dict[str, float]:
    """Exact match (or `metric`) per split over the prediction rows that have a gold answer
    (NaN for a split with none)."""
    from bench.metrics.scores import exact_match

    metric = metric or exact_match
    out = {}
    for split in splits:
        scores = [metric(r["prediction"], r["answers"]) for r in rows if r["answers"] and r["split"] == split]
        out[split] = sum(scores) / len(scores) if scores else float("nan")
    return out


def adapter_cells(world: dict, stats: pd.DataFrame, name: str, hybrid: str, seed: int) -> dict:
    """One adapter at one seed: its test-world EM (closed-book on the trained and the held-out
    facts from `world[(name, seed)]`, reading through its hybrid arm `hybrid`; NaN without one)
    and what its training cost (`stats`, the executor's per-job table indexed by arm and seed)."""
    cell = stats.loc[(name, seed)]
    return {"world_trained_em": world[(name, seed)]["train"], "world_heldout_em": world[(name, seed)]["test"],
            "world_reading_em": world.get((hybrid, seed), {}).get("test", float("nan")),
            "train_seconds": float(cell["train_seconds"]),
            "trainable_parameters": int(cell["trainable_parameters"]),
            "adapter_cached": bool(cell["adapter_cached"])}


def seed_summary(per_seed: pd.DataFrame, by: str, metrics, label=str) -> tuple[pd.DataFrame, dict]:
    """Per-seed rows -> (the long summary: arm = label(key), metric, mean, ci_low, ci_high, n;
    {key: {metric: mean, metric_lo: ci_low, metric_hi: ci_high}}), keys in table order."""
    long = summarize_wide(per_seed, metrics, by=(by,))
    wide: dict = {}
    for key, metric, m, lo, hi in zip(long[by], long["metric"], long["mean"], long["ci_low"], long["ci_high"]):
        wide.setdefault(key, {}).update({metric: m, f"{metric}_lo": lo, f"{metric}_hi": hi})
    long = long.assign(**{by: [label(k) for k in long[by]]}).rename(columns={by: "arm"})
    return long, wide
