"""hallucination: answerable and unanswerable questions through every arm, and the Gekhman sweep.

Claims tested: "RAG grounds facts, fine-tuning hallucinates outside its training data", and
Gekhman et al. 2024: fine-tuning longer on facts the model could not know raises hallucination.

Every arm answers all test questions of the world (held-out answerable facts, questions about
people who are not in the world, questions about attributes a person does not have) and the
train-split questions (the facts LoRA was fine-tuned on as QA). Per (arm, seed) cell:

- hallucination rate: the answer asserts something (does not abstain) and is not the gold one;
  on all test questions, on the answerable and on the unanswerable ones, and on trained facts;
- abstention rate on unanswerable questions (wanted) and on answerable ones (over-refusal);
- faithfulness (share of answer tokens found in the retrieved text) and citation accuracy (the
  top-1 retrieved chunk contains a sentence stating the gold fact), for retrieving arms only:
  without retrieval both are not applicable (NaN with a reason), never 0.

The Gekhman sweep trains the `lora` arm for each of `gekhman_steps` (same data and settings
otherwise; the arm's own step count is the accuracy experiment's adapter, reused) and measures
hallucination on held-out answerable facts and on unanswerable questions after each.
Means over seeds with 95% t-intervals.

measure.py runs the arms and the sweep (model code) and keeps the per-(arm, seed) rates
(seeds.csv, gekhman_seeds.csv) and the per-job stats (cells.csv); read.py turns those into the
summary, claims, plots and report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.config import ConfigError
from bench.studies.hallucination import read
from bench.studies.registry import Study, register_study


@dataclass(frozen=True)
class Settings:
    gekhman_arm: str = "lora"                       # the arm (kind lora) whose steps are swept
    gekhman_steps: tuple[int, ...] = (100, 300, 400)
    gekhman_seeds: tuple[int, ...] = (0, 1)

    def validate(self, where: str) -> None:
        steps = list(self.gekhman_steps)
        if len(steps) < 2 or min(steps) < 1 or steps != sorted(set(steps)):
            raise ConfigError(f"{where}.gekhman_steps: expected at least two increasing step counts >= 1, "
                              f"got {steps}")
        if not self.gekhman_seeds or len(set(self.gekhman_seeds)) != len(self.gekhman_seeds):
            raise ConfigError(f"{where}.gekhman_seeds: expected distinct seeds, got {list(self.gekhman_seeds)}")


def gekhman_arm(cfg, s: Settings, source) -> object:
    """The arm the sweep retrains: it must be an arm of kind lora."""
    hit = [a for a in cfg.arms if a.name == s.gekhman_arm]
    if not hit or hit[0].arm != "lora":
        raise ConfigError(f"{source}: study.gekhman_arm: '{s.gekhman_arm}' is not an arm of kind lora "
                          f"in arms {[a.name for a in cfg.arms]}")
    return hit[0]


@register_study("hallucination")
class Hallucination(Study):
    order = 70
    Settings = Settings
    topics = (("hallucination", "RAG grounds facts, fine-tuning hallucinates outside its training data"),)
    summary = "unanswerable + answerable questions, abstention, faithfulness, citation"
    measure = "bench.studies.hallucination.measure"
    base_tables = (read.SEEDS_CSV, read.GEKHMAN_CSV, read.CELLS_CSV)
    claims = staticmethod(read.claims)       # verdicts, from the saved tables
    redraw = staticmethod(read.redraw)       # plots, from the saved tables

    def check(self, cfg, settings, source):
        gekhman_arm(cfg, settings, source)

    def derive(self, folder: Path, run):
        return read.derived_tables(folder, run.settings.gekhman_arm)

    def report(self, folder: Path, run) -> str:
        return read.report(folder, run.cfg, run.settings, run.quick, run.timings)
