"""forgetting: what the base model knew (the pocket model's background world; for a real model,
general knowledge) before and after LoRA training on the test world, by training steps (epochs)
and by LoRA rank.

A real model (SmolLM2, any other) is asked bench/data/general_knowledge.jsonl (553 questions:
capitals, chemical symbols, authors, ...) closed-book, scored by answer containment; "known" =
the questions the base model answered, asked again of each adapter ("trained" columns: the
known ones, so the drop is the share forgotten; "doc-only" columns: all questions). The base
model is asked as the adapters are asked (the system message, no worked turns).

Claim tested: narrow fine-tuning causes catastrophic forgetting. The pocket model was pretrained
on a background world of people disjoint from every test world (bench/pocket/data.py); half of
the background facts it was also drilled on as closed-book QA ("trained", ~100% recalled), the
other half it only read in documents ("held-out"). A fixed sample of each is asked closed-book
of the base model and of every adapter. Each adapter is the accuracy experiment's LoRA arm
(same world, training data and settings) with only steps or rank changed, alpha scaled with the
rank (alpha / rank as in the template arm), so the 300-step, rank-16 adapter is the accuracy
experiment's own, and adapters shared with other studies come from the cache.

So that the price of forgetting sits beside what was bought, each adapter's test-world accuracy
is measured too: closed-book on the facts it was trained on (train split) and on held-out facts,
and reading with one retrieved passage in the prompt (the hybrid arm), all on answerable items.

measure.py asks the questions (the test world through the executor, the background sample as a
job view of its own); read.py turns the saved per_seed.csv into the tables, claims, plot and
report; sweep.py names the adapters; shared.py holds what lora-params shares with this study
(the template and variant arms: same settings, same adapter keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.config import ConfigError
from bench.studies.forgetting import read
from bench.studies.forgetting.shared import template_arm
from bench.studies.registry import Study, register_study


BACKGROUNDS = ("auto", "world", "general_knowledge")


def background_of(cfg, s) -> str:
    """The background a run asks about: auto = the pretraining world for the pocket model, the
    general-knowledge questions for any other."""
    if s.background != "auto":
        return s.background
    return "world" if cfg.model.name == "pocket" else "general_knowledge"


@dataclass(frozen=True)
class Settings:
    steps: tuple[int, ...] = (100, 300, 400)      # the steps sweep, at base_rank
    ranks: tuple[int, ...] = (16, 64)             # the rank sweep, at base_steps
    base_steps: int = 300                         # the accuracy adapter: in both sweeps
    base_rank: int = 16
    background_items: int = 200                   # per background split, a fixed sample
    reading: bool = True                          # also score the hybrid arm (RAG reading)
    sweep_seeds: tuple[int, ...] | None = None    # seeds of the other adapters (None: all seeds);
                                                  # the base adapter and the references use all
    # what the base model knew: the pocket model's pretraining world ("world"), or the shipped
    # general-knowledge questions a real model answers ("general_knowledge"); auto picks by model
    background: str = "auto"

    def validate(self, where: str) -> None:
        for key in ("steps", "ranks"):
            values = getattr(self, key)
            if not values or min(values) < 1 or len(set(values)) != len(values):
                raise ConfigError(f"{where}.{key}: expected distinct values >= 1, got {list(values)}")
        if self.base_steps not in self.steps:
            raise ConfigError(f"{where}.base_steps: {self.base_steps} must be one of steps {list(self.steps)}")
        if self.base_rank not in self.ranks:
            raise ConfigError(f"{where}.base_rank: {self.base_rank} must be one of ranks {list(self.ranks)}")
        if self.background_items < 1:
            raise ConfigError(f"{where}.background_items: expected >= 1")
        if self.background not in BACKGROUNDS:
            raise ConfigError(f"{where}.background: expected one of {list(BACKGROUNDS)}, got {self.background!r}")
        if self.sweep_seeds is not None and not self.sweep_seeds:
            raise ConfigError(f"{where}.sweep_seeds: expected at least one seed (or leave it out)")


@register_study("forgetting")
class Forgetting(Study):
    order = 90
    Settings = Settings
    topics = (("forgetting", "narrow fine-tuning causes catastrophic forgetting"),)
    summary = "background-world accuracy (a real model: general knowledge) before/after LoRA, by steps and rank"
    measure = "bench.studies.forgetting.measure"
    base_tables = ("per_seed.csv",)

    def check(self, cfg, settings, source):
        if background_of(cfg, settings) == "world" and cfg.model.name != "pocket":
            raise ConfigError(f"{source}: study.background: world is what the pocket model was "
                              f"pretrained on; model '{cfg.model.name}' needs general_knowledge (or auto)")
        if cfg.data.world is None:
            raise ConfigError(f"{source}: data.world: the study trains on a synthetic test world")
        if tuple(cfg.data.eval_splits) != ("train", "test"):
            raise ConfigError(f"{source}: data.eval_splits: expected [train, test] (trained and held-out "
                              f"test-world facts), got {list(cfg.data.eval_splits)}")
        for kind in ("closed_book", "lora") + (("rag", "hybrid") if settings.reading else ()):
            template_arm(cfg, kind, source)
        extra = sorted(set(settings.sweep_seeds or ()) - set(cfg.seeds))
        if extra:
            raise ConfigError(f"{source}: study.sweep_seeds: {extra} not in seeds {list(cfg.seeds)}")

    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        summary, wide = read.tables(pd.read_csv(folder / "per_seed.csv"), run.settings)
        return {"summary.csv": summary, "forgetting.csv": wide}

    def claims(self, folder: Path):
        return read.claims(folder)

    def redraw(self, folder: Path):
        return read.redraw(folder)

    def report(self, folder: Path, run) -> str:
        return read.report_md(run.cfg, run.settings, folder, run.timings["total"])
