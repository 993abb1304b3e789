"""freshness: world v1 -> v2 with a share of facts changed; each arm answers the same questions
before and after its own update step, and the update step is timed.

Claim tested: RAG absorbs changed facts by re-indexing while fine-tuning must be retrained.

Arms (each a name `kind+update`): closed_book (no update, the floor); rag+upsert (upsert the
changed chunks' v2 texts into the existing chroma collection, no rebuild); lora+retrain (a fresh
adapter trained from scratch on v2 with the arm's normal recipe); lora+continue (keep training
the v1 adapter on the changed facts only); hybrid+upsert (v1 adapter, updated index);
hybrid+upsert+continue (both). Each kind's settings (retrieval, training, LoRA recipe) are the
experiment's arm of that kind, the accuracy experiment's, so the v1 adapter is the one
`make accuracy` cached. Per seed, one chroma collection of v1 is built; each retrieving arm
upserts into it and the v1 texts are upserted back afterwards (rollback, also timed).

measure.py runs the arms and their updates (update.py: the worlds, the questions, the update
steps); read.py turns the saved items.csv and cells.csv into the tables, verdicts, plot and
report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.config import ConfigError
from bench.studies.freshness import read
from bench.studies.registry import Study, register_study


@dataclass(frozen=True)
class ContinueSettings:
    """Continued training of the v1 adapter on the changed facts only (fresh optimizer)."""
    steps: int = 60
    lr: float = 0.002
    batch_size: int = 32
    replay_share: float = 0.3

    def validate(self, where: str) -> None:
        for key in ("steps", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")
        if not 0 <= self.replay_share < 1:
            raise ConfigError(f"{where}.replay_share: expected 0 <= x < 1, got {self.replay_share}")


@dataclass(frozen=True)
class Settings:
    arms: tuple[str, ...] = tuple(read.ARMS)   # `kind+update`: the kind's settings are the experiment's arm
    changed_share: float = 0.2                 # share of facts world v2 changes
    splits: tuple[str, ...] = ("test", "train")
    unchanged_per_split: int = 100             # a fixed sample; every changed fact is asked
    continue_training: ContinueSettings = field(default_factory=ContinueSettings)

    def validate(self, where: str) -> None:
        bad = [a for a in self.arms if a not in read.ARMS]
        if bad or not self.arms:
            raise ConfigError(f"{where}.arms: unknown {bad}; expected some of {list(read.ARMS)}")
        if not 0 < self.changed_share < 1:
            raise ConfigError(f"{where}.changed_share: expected 0 < x < 1, got {self.changed_share}")
        if not self.splits or [s for s in self.splits if s not in ("train", "test")]:
            raise ConfigError(f"{where}.splits: expected a non-empty list of 'train'/'test', got {list(self.splits)}")
        if self.unchanged_per_split < 0:
            raise ConfigError(f"{where}.unchanged_per_split: expected >= 0, got {self.unchanged_per_split}")


def kinds(settings: Settings) -> list[str]:
    """The arm kinds the study's arms are made of, in order."""
    return list(dict.fromkeys(a.split("+")[0] for a in settings.arms))


@register_study("freshness")
class Freshness(Study):
    order = 30
    Settings = Settings
    topics = (("freshness", "RAG updates by re-indexing; fine-tuning needs retraining"),)
    summary = "world v1 -> v2, each arm's update step and its effect"
    measure = "bench.studies.freshness.measure"
    base_tables = ("items.csv", "cells.csv")

    def check(self, cfg, settings, source):
        world = cfg.data.world
        if world is None:
            raise ConfigError(f"{source}: data.world: the freshness study needs the synthetic world "
                              "(v2 = the next version of v1)")
        if world.seed_offset:
            raise ConfigError(f"{source}: data.world.seed_offset: the freshness study builds world v1 "
                              f"from the run seed; expected 0, got {world.seed_offset}")
        present = {a.arm for a in cfg.arms}
        for kind in kinds(settings):
            if kind not in present:
                raise ConfigError(f"{source}: arms: study.arms needs an arm of kind '{kind}' (its "
                                  f"settings); the experiment has {sorted(present)}")
        used = [read.arm_of(cfg, k).settings for k in kinds(settings)]
        stores = {(r.chunking, r.chunk_size, r.overlap, r.embedder, r.search)
                  for r in (s.retrieval for s in used if hasattr(s, "retrieval"))}
        if len(stores) > 1:
            raise ConfigError(f"{source}: arms: the retrieving arms share one index, so their chunking, "
                              f"chunk_size, overlap, embedder and search must agree; got {sorted(stores)}")

    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        summary = read.summarize(read.cell_metrics(pd.read_csv(folder / "items.csv"),
                                                   pd.read_csv(folder / "cells.csv")))
        return {"summary.csv": summary, "freshness.csv": read.wide(summary, read.updates(run.settings.arms))}

    def claims(self, folder: Path):
        return read.claims(folder)

    def redraw(self, folder: Path):
        return read.redraw(folder)

    def report(self, folder: Path, run) -> str:
        return read.report_md(folder, run.cfg, run.settings, run.quick, run.timings)
