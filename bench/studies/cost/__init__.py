"""cost: one-off costs (LoRA training, index build, storage) and per-query costs (time, tokens),
priced with scenarios the user sets in the YAML, and the break-even query counts.

Claim tested: RAG is cheap to set up but dearer per query; fine-tuning is the reverse. Per price
scenario it is supported when the 95% CIs over seeds of the one-off cost put rag below lora and
those of the cost per 1k queries put rag above lora. The price model (prices.py) is pure
arithmetic on measured quantities (tested on its own):
  one_off   = (train_s + index_build_s) / 3600 * compute_per_hour
              + (adapter_bytes + index_bytes) / 1e9 * storage_per_gb_month * months
  per_query = t_total_s / 3600 * compute_per_hour
              + prompt_tokens / 1e6 * per_1m_prompt_tokens + completion_tokens / 1e6 * per_1m_completion_tokens
  total(q)  = one_off + q * per_query; arms a and b break even at q = (one_off_b - one_off_a) / (per_a - per_b)

measure.py runs the arms and saves the measured quantities (inputs.csv); read.py prices them
(summary.csv, break_even.csv), so `--report-only` reprices a run with the YAML's scenarios.
Results saved before inputs.csv existed keep their priced tables as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.config import ConfigError, build
from bench.studies.cost import read
from bench.studies.cost.prices import Prices
from bench.studies.registry import Study, register_study


@dataclass(frozen=True)
class Settings:
    scenarios: dict = field(default_factory=dict)     # name -> Prices mapping
    horizon: int = read.HORIZON                       # largest query count on the plot

    def validate(self, where: str) -> None:
        if not self.scenarios:
            raise ConfigError(f"{where}.scenarios: expected at least one price scenario")
        for name, raw in self.scenarios.items():
            build(Prices, raw, f"{where}.scenarios.{name}")

    def prices(self) -> dict[str, Prices]:
        return {name: build(Prices, raw, name) for name, raw in self.scenarios.items()}


@register_study("cost")
class Cost(Study):
    order = 120
    timed = True      # its jobs' wall times are the measurement: run here, not on workers
    Settings = Settings
    topics = (("cost", "RAG costs more per query; fine-tuning costs more up front"),)
    summary = "one-off and per-query costs priced by scenario, break-even query counts"
    measure = "bench.studies.cost.measure"
    # measure's table is inputs.csv; results saved before it hold only the priced tables, which
    # --report-only then keeps as they are (derive checks for one or the other)
    base_tables = ()

    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        if (folder / read.INPUTS_CSV).exists():
            return read.price_tables(pd.read_csv(folder / read.INPUTS_CSV), run.settings.prices())
        for name in (read.SUMMARY_CSV, read.BREAK_EVEN_CSV):
            if not (folder / name).exists():
                raise ConfigError(f"{folder}/{read.INPUTS_CSV}: no saved table; run without --report-only first")
        return {}

    claims = staticmethod(read.claims)
    redraw = staticmethod(read.redraw)
    report = staticmethod(read.report_md)    # (folder, run) -> report.md
