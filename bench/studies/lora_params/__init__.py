"""lora-params: how many parameters LoRA trains, and how big the adapter is, by rank and target
modules, against full fine-tuning; for the bench's model and for Hugging Face configs.

Claim tested: LoRA trains a small fraction of the parameters (the article's example: a 512 x 64
matrix has 32,768 weights; LoRA at r=8 trains 8 x (512 + 64) = 4,608).

Every count comes twice: from peft, wrapping the real module tree (built from the config on the
meta device, so no weights are loaded or downloaded), and from arithmetic on the config alone,
r x (d_in + d_out) per adapted matrix; the two must agree. Adapter size on disk is the size of
the files peft writes (adapter_model.safetensors + adapter_config.json), written for real from
the adapter's state-dict shapes (a file's size depends only on names, shapes and dtypes). Full
fine-tuning trains every parameter; its checkpoint size is parameters x bytes per parameter.

Accuracy vs rank reuses the forgetting study's rank-sweep adapters (same world, recipe and
seeds, and the same arms, bench.studies.forgetting.shared, so they come from the adapter
cache): closed-book EM on the trained and held-out test-world facts and reading EM with one
retrieved passage (hybrid arm), answerable items.

counts.py does the arithmetic and peft's counts; measure.py runs them and accuracy vs rank;
read.py turns the saved tables into the summary, claims, plots and report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.config import ConfigError
from bench.studies.forgetting.shared import template_arm
from bench.studies.lora_params import read
from bench.studies.lora_params.counts import ATTENTION, MLP
from bench.studies.registry import Study, register_study


def _default_sets() -> dict:
    return {"q+v": ["q_proj", "v_proj"], "attention": list(ATTENTION),
            "attention+mlp": list(ATTENTION + MLP)}


@dataclass(frozen=True)
class Settings:
    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    target_sets: dict = field(default_factory=_default_sets)   # name -> module names
    hf_configs: dict = field(default_factory=dict)              # name -> a transformers config dict
    verdict_rank: int = read.VERDICT_RANK
    small_fraction: float = read.SMALL_FRACTION   # "a small fraction": below 1% of the parameters
    bytes_per_parameter: int = 4          # full fine-tuning checkpoint (fp32, as the adapters)
    example: tuple[int, ...] = (512, 64, 8)   # (d_out, d_in, rank) of the article's example
    accuracy_ranks: tuple[int, ...] = (16, 64)      # adapters shared with forgetting; [] = skip
    accuracy_steps: int = 300

    def validate(self, where: str) -> None:
        if not self.ranks or min(self.ranks) < 1:
            raise ConfigError(f"{where}.ranks: expected ranks >= 1, got {list(self.ranks)}")
        if self.verdict_rank not in self.ranks:
            raise ConfigError(f"{where}.verdict_rank: {self.verdict_rank} must be one of ranks")
        if not isinstance(self.target_sets, dict) or not self.target_sets:
            raise ConfigError(f"{where}.target_sets: expected a mapping name -> list of module names")
        for name, mods in self.target_sets.items():
            if not isinstance(mods, list) or not mods or not all(isinstance(m, str) for m in mods):
                raise ConfigError(f"{where}.target_sets.{name}: expected a non-empty list of module names")
        if not isinstance(self.hf_configs, dict):
            raise ConfigError(f"{where}.hf_configs: expected a mapping name -> config dict")
        for name, conf in self.hf_configs.items():
            if not isinstance(conf, dict) or not isinstance(conf.get("model_type"), str):
                raise ConfigError(f"{where}.hf_configs.{name}.model_type: required (e.g. qwen2, llama)")
        if len(self.example) != 3 or min(self.example) < 1:
            raise ConfigError(f"{where}.example: expected [d_out, d_in, rank], got {list(self.example)}")
        if not 0 < self.small_fraction < 1:
            raise ConfigError(f"{where}.small_fraction: expected 0 < x < 1")
        if self.accuracy_ranks and min(self.accuracy_ranks) < 1:
            raise ConfigError(f"{where}.accuracy_ranks: expected ranks >= 1")


@register_study("lora-params")
class LoraParams(Study):
    order = 110
    Settings = Settings
    topics = (("lora-params", "LoRA trains a small fraction of the parameters (512 x 64: 32,768 -> 4,608 at r=8)"),)
    summary = "trainable parameters and adapter size by rank and target modules"
    measure = "bench.studies.lora_params.measure"
    base_tables = ("params.csv", "example.csv")     # and accuracy_per_seed.csv with accuracy_ranks

    def check(self, cfg, settings, source):
        from bench.studies.lora_params.counts import hf_config

        for name, conf in settings.hf_configs.items():     # a bad config dict fails here, before any work
            try:
                hf_config(conf)
            except Exception as e:  # transformers raises ValueError/KeyError/TypeError
                raise ConfigError(f"{source}: study.hf_configs.{name}: not a valid config: {e}") from None
        if settings.accuracy_ranks:
            if cfg.data.world is None:
                raise ConfigError(f"{source}: data.world: accuracy vs rank trains on a synthetic world")
            template_arm(cfg, "lora", source)
            if tuple(cfg.data.eval_splits) != ("train", "test"):
                raise ConfigError(f"{source}: data.eval_splits: accuracy vs rank asks trained and held-out "
                                  f"facts: expected [train, test], got {list(cfg.data.eval_splits)}")

    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        acc = folder / "accuracy_per_seed.csv"
        summary, wide = read.tables(pd.read_csv(folder / "params.csv"),
                                    pd.read_csv(acc) if acc.exists() else None)
        return {"summary.csv": summary, **({"accuracy.csv": wide} if wide is not None else {})}

    def claims(self, folder: Path):
        return read.claims(folder)

    def redraw(self, folder: Path):
        return read.redraw(folder)

    def report(self, folder: Path, run) -> str:
        return read.report_md(run.cfg, run.settings, folder, run.timings["total"])
