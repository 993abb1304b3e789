"""data-scaling: LoRA and hybrid learning curves over the number of training QA items, with and
without paraphrase augmentation (Ovadia et al. 2023); closed-book and RAG as reference lines.

Claims tested: 100-500 examples already show measurable gains from fine-tuning, and paraphrase
augmentation improves knowledge injection (Ovadia et al. 2023).

The sweep: for every size n (train-split QA items, `TrainingData.max_train_questions`) and
augmentation setting (`TrainingData.paraphrases`) one adapter per seed is trained with the
accuracy recipe otherwise (documents + n QA items + reading replay, replay_share as there);
the `lora` and `hybrid` arms of a setting share it through the adapter cache.

Held-out wording: every train item's *last* paraphrase is never trained (the adapter trains on a
view of the dataset without it), so with augmentation an item trains in its other wordings, and
without in its canonical question only. Without augmentation that view trains the same examples
as the full dataset, so those adapters keep the keys they would have anyway.

Evaluation sets per seed:
- `reworded`: the facts the adapter was trained on (the n trained items, at most
  `reworded_items` of them), asked in the held-out wording: knowledge, not string recall;
- `trained`: the same facts asked in their canonical (trained) question, for contrast;
- `test`: held-out test-split facts (a fixed sample of answerable items), which appear only
  inside the training documents.

Steps: a fixed number of passes (`epochs`) over the training examples (documents + QA), clamped
to [min_steps, max_steps], so a bigger training set costs more compute, as it would in practice,
and every example is seen about equally often at every size (until the cap).

measure.py plans the sweep as executor jobs (each with its data view) and writes cells.csv;
read.py turns it into the curves, the summary and the verdicts; report.py draws the plot and
writes report.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.config import KEY_OMIT_DEFAULT, ConfigError
from bench.injection.recipe import Recipe
from bench.studies.data_scaling import read
from bench.studies.data_scaling import report as page
from bench.studies.registry import Study, register_study


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...] = (50, 150, 500)    # train-split QA items per adapter
    augmentation: tuple[bool, ...] = (False, True)
    epochs: float = 2.0                        # passes over documents + QA examples ...
    min_steps: int = 10                        # ... clamped to [min_steps, max_steps]
    max_steps: int = 150
    test_items: int = 100                      # held-out test facts per seed (fixed sample)
    reworded_items: int = 100                  # trained facts per setting and seed (at most)
    # the injection recipe (bench.injection) trained on top of each size with paraphrases: a
    # third curve; None = none
    recipe: Recipe | None = field(default=None, metadata=KEY_OMIT_DEFAULT)
    # at the largest size, two more adapters: 3x the passes (cap raised with them) and 4x the
    # rank, to tell under-training from capacity when EM falls as n grows
    diagnose: bool = field(default=False, metadata=KEY_OMIT_DEFAULT)

    def validate(self, where: str) -> None:
        if not self.sizes or min(self.sizes) < 1 or len(set(self.sizes)) != len(self.sizes):
            raise ConfigError(f"{where}.sizes: expected distinct sizes >= 1, got {list(self.sizes)}")
        if not self.augmentation or len(set(self.augmentation)) != len(self.augmentation):
            raise ConfigError(f"{where}.augmentation: expected [false], [true] or [false, true]")
        if self.epochs <= 0:
            raise ConfigError(f"{where}.epochs: expected > 0, got {self.epochs}")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ConfigError(f"{where}.min_steps/max_steps: expected 1 <= min_steps <= max_steps")
        for key in ("test_items", "reworded_items"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1")


@register_study("data-scaling")
class DataScaling(Study):
    order = 80
    Settings = Settings
    topics = (("data-scaling", "100-500 examples already show measurable gains"),)
    summary = "LoRA/hybrid learning curves over training-set size, +/- paraphrases"
    measure = "bench.studies.data_scaling.measure"
    base_tables = ("cells.csv",)

    def check(self, cfg, settings, source):
        """One arm per kind; a closed_book and a lora arm; a hybrid arm trains what lora does."""
        kinds = {}
        for i, arm in enumerate(cfg.arms):
            if arm.arm in kinds:
                raise ConfigError(f"{source}: arms[{i}].arm: one arm per kind here, '{arm.arm}' twice")
            kinds[arm.arm] = arm
        for kind in ("closed_book", "lora"):
            if kind not in kinds:
                raise ConfigError(f"{source}: arms: needs a '{kind}' arm (the sweep and its reference)")
        if "hybrid" in kinds:
            lo, hy = kinds["lora"].settings, kinds["hybrid"].settings
            if (lo.training, lo.lora) != (hy.training, hy.lora):
                i = list(cfg.arms).index(kinds["hybrid"])
                raise ConfigError(f"{source}: arms[{i}]: training/lora must equal the lora arm's "
                                  f"(the two share one adapter per setting)")

    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        curve = read.curve_table(read.load_cells(folder))
        return {"curve.csv": curve, "summary.csv": read.summary_table(curve)}

    def claims(self, folder: Path):
        return read.claims(folder)

    def redraw(self, folder: Path):
        return page.redraw(folder)

    def report(self, folder: Path, run) -> str:
        return page.report_md(run.cfg, run.settings, folder, run.quick)
