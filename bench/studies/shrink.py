"""Study-level overrides of an experiment config (used by `quick:` settings): a smaller world,
fewer LoRA steps, other seeds, an item cap. Each override left at None keeps the YAML's value,
so the full run's cells, and with them the cached adapters, stay exactly those of the YAML."""

from __future__ import annotations

import dataclasses

from bench.config import ArmConfig, ExperimentConfig


def with_lora_steps(arm: ArmConfig, steps: int, name: str | None = None) -> ArmConfig:
    """A copy of an adapted arm that trains for `steps` (everything else unchanged)."""
    settings = dataclasses.replace(arm.settings, lora=dataclasses.replace(arm.settings.lora, steps=steps))
    return dataclasses.replace(arm, name=name or arm.name, settings=settings)


def shrink(cfg: ExperimentConfig, *, entities: int | None = None, lora_steps: int | None = None,
           seeds: tuple[int, ...] | None = None, max_items: int | None = None) -> ExperimentConfig:
    data = cfg.data
    if entities is not None and data.world is not None:
        data = dataclasses.replace(data, world=dataclasses.replace(data.world, entities=entities))
    if max_items is not None:
        data = dataclasses.replace(data, max_items=max_items)
    arms = cfg.arms
    if lora_steps is not None:
        arms = tuple(with_lora_steps(a, lora_steps) if hasattr(a.settings, "lora") else a for a in arms)
    return dataclasses.replace(cfg, data=data, arms=arms, seeds=tuple(seeds) if seeds else cfg.seeds)
