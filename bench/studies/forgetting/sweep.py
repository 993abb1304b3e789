"""forgetting, the sweep: which adapters it trains (the steps sweep at base_rank, the rank sweep
at base_steps), at which seeds, and the arms the executor runs them as. No model code here."""

from __future__ import annotations

import dataclasses

from bench.config import ExperimentConfig
from bench.studies.forgetting.shared import template_arm, variant_arm


def variants(s) -> list[tuple[int, int]]:
    """(steps, rank) of every adapter: the steps sweep at base_rank, then the rank sweep."""
    out = [(st, s.base_rank) for st in s.steps]
    out += [(s.base_steps, r) for r in s.ranks if (s.base_steps, r) not in out]
    return out


def sweep_seeds(cfg: ExperimentConfig, s) -> tuple[int, ...]:
    return tuple(s.sweep_seeds) if s.sweep_seeds is not None else cfg.seeds


def seeds_of(cfg: ExperimentConfig, s, steps: int, rank: int) -> tuple[int, ...]:
    """The base adapter (the accuracy experiment's, cached) at every seed; the others at sweep_seeds."""
    return cfg.seeds if (steps, rank) == (s.base_steps, s.base_rank) else sweep_seeds(cfg, s)


def run_config(cfg: ExperimentConfig, s) -> ExperimentConfig:
    """The runner's view: the two references, then a lora (and hybrid) arm per variant."""
    arms = [template_arm(cfg, "closed_book", cfg.source)]
    if s.reading:
        arms.append(template_arm(cfg, "rag", cfg.source))
    lora = template_arm(cfg, "lora", cfg.source)
    arms += [variant_arm(lora, st, r) for st, r in variants(s)]
    if s.reading:
        hybrid = template_arm(cfg, "hybrid", cfg.source)
        arms += [variant_arm(hybrid, st, r) for st, r in variants(s)]
    return dataclasses.replace(cfg, arms=tuple(arms))
