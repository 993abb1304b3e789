"""consistency: the same question in several wordings, greedy and sampled; do the answers agree?

Claim tested: fine-tuning gives consistent output while RAG varies with retrieval. Every sampled
question (held-out `test` facts: the headline; `train` facts, which the adapter saw as QA in
every wording: the fine-tuning's home ground) is asked in each of its paraphrases (the world
writes three wordings per question; each becomes its own item sharing the question's gold
answer, kind and popularity, `data.paraphrases_as_items`), by every arm, greedily and at each
sampling temperature (`model.temperature`, sampling seeded by the run seed so the table is
reproducible). Per (arm, seed, temperature, split) cell and question ("group"):

- agree_all: all paraphrases give the same normalised answer (SQuAD normalisation);
- pairwise_agree: the share of paraphrase pairs that give the same normalised answer;
- all_correct: every paraphrase is answered correctly (consistent *and* right);
- agree_given_any_correct: agree_all among the questions at least one wording got right;
- top_chunk_differs (retrieving arms): the top retrieved chunk is not the same passage for all
  wordings; gold_hit_differs: the top chunk states the gold fact for some wordings only;
  agree_same_top / agree_diff_top: agree_all among questions whose top chunk is / is not the
  same for all wordings (retrieval variance is the mechanism the claim names).

Cell values are averaged over questions, then means over seeds with 95% t-intervals; score
variance is reported as the SD of exact match across seeds (chi-square CI) and across
temperatures (per seed, then a t-interval).

measure.py runs the arms once per temperature (model code) and keeps the cells (cells.csv);
read.py turns them into the summary, claims, plot and report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.config import ConfigError
from bench.studies.consistency import read
from bench.studies.registry import Study, register_study


@dataclass(frozen=True)
class Settings:
    temperatures: tuple[float, ...] = (0.0, 1.0)        # 0 = greedy

    def validate(self, where: str) -> None:
        t = list(self.temperatures)
        if not t or any(x < 0 or x > 5 for x in t) or len(set(t)) != len(t):
            raise ConfigError(f"{where}.temperatures: expected distinct values 0 (greedy) <= T <= 5, got {t}")


@register_study("consistency")
class Consistency(Study):
    order = 50
    Settings = Settings
    topics = (("consistency", "fine-tuning gives consistent output"),)
    summary = "answers across paraphrases, seeds and temperatures"
    measure = "bench.studies.consistency.measure"
    base_tables = (read.CELLS_CSV,)
    claims = staticmethod(read.claims)       # verdicts, from the saved tables
    redraw = staticmethod(read.redraw)       # plots, from the saved tables

    def check(self, cfg, settings, source):
        if not cfg.data.paraphrases_as_items:
            raise ConfigError(f"{source}: data.paraphrases_as_items: the consistency study asks every "
                              "wording of a question as its own item; set it to true")

    def derive(self, folder: Path, run):
        return read.derived_tables(folder)

    def report(self, folder: Path, run) -> str:
        return read.report(folder, run.cfg, run.timings)
