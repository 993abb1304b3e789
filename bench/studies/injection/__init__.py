"""injection: knowledge-injection recipes head to head (bench.injection). Which training data makes
a LoRA adapter answer facts it only read in documents, what it costs, what it forgets.

Every arm x seed answers, on a training view of the world (each train item's last wording never
trained, as in data-scaling):
- `test`: held-out test facts (a fixed sample of answerable items): only inside the documents;
- `reworded`: facts whose questions the adapter trained on, asked in the held-out wording;
then every closed-book adapter (and the base model once) is asked the background questions: the
pocket model's pretraining world, or general knowledge for a real model (as in forgetting).
Cost per adapter: LoRA seconds and tokens, plus the seconds to generate the recipe's data
(writer, teacher), kept as measured when the adapter was trained.

Claims, with verdicts from the tables: paraphrase augmentation improves injection (Ovadia),
synthetic data recovers most of RAG's gain (EntiGraph), prompt distillation matches RAG
(Kujanpää), RAFT beats fine-tune-then-RAG (Zhang). `study:` names the arm each compares.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from bench.config import ConfigError
from bench.report.claims import read_manifest
from bench.studies.injection import read
from bench.studies.registry import Study, register_study


@dataclass(frozen=True)
class Settings:
    test_items: int = 150            # held-out test facts per seed (fixed sample)
    reworded_items: int = 150        # trained facts asked in their held-out wording, per seed
    background_items: int = 100      # pocket: per background split, a fixed sample
    background: str = "auto"         # auto | world | general_knowledge (as in forgetting)
    metric: str = "exact_match"      # what the claims judge: exact_match, or contains (instruct models)
    # the arms each claim compares ("" skips a claim)
    plain_arm: str = "documents"         # today's recipe: the raw documents
    renderings_arm: str = "renderings"   # Ovadia: the same, augmented
    synthetic_arm: str = "renderings"    # EntiGraph: synthetic continued pretraining
    distill_arm: str = "distill"         # Kujanpää, against the rag arm
    raft_arm: str = "hybrid_raft"        # Zhang ...
    hybrid_arm: str = "hybrid_documents"  # ... against fine-tune-then-RAG

    def validate(self, where: str) -> None:
        for key in ("test_items", "reworded_items", "background_items"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")
        if self.background not in ("auto", "world", "general_knowledge"):
            raise ConfigError(f"{where}.background: expected auto, world or general_knowledge")
        if self.metric not in ("exact_match", "contains"):
            raise ConfigError(f"{where}.metric: expected exact_match or contains, got {self.metric!r}")


ARM_KEYS = ("plain_arm", "renderings_arm", "synthetic_arm", "distill_arm", "raft_arm", "hybrid_arm")


@register_study("injection")
class Injection(Study):
    order = 85
    Settings = Settings
    topics = (("injection", "knowledge-injection recipes: paraphrase augmentation (Ovadia), synthetic data "
                            "(EntiGraph), prompt distillation (Kujanpää), RAFT (Zhang)"),)
    summary = "knowledge-injection recipes: accuracy on held-out facts vs training cost"
    measure = "bench.studies.injection.measure"
    base_tables = ("per_seed.csv",)

    def check(self, cfg, settings, source):
        names = {a.name: a for a in cfg.arms}
        if not any(a.arm == "closed_book" for a in cfg.arms):
            raise ConfigError(f"{source}: arms: needs a closed_book arm (the base model's reference)")
        if cfg.data.world is None:
            raise ConfigError(f"{source}: data: the injection study needs the synthetic world "
                              f"(held-out wordings and facts); run your corpus with `bench run`")
        for key in ARM_KEYS:
            name = getattr(settings, key)
            if name and name not in names:
                raise ConfigError(f"{source}: study.{key}: no arm named {name!r} (arms: {sorted(names)})")

    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        return {"summary.csv": read.summary_table(read.load(folder))}

    def claims(self, folder: Path):
        return read.claims(folder, _settings(folder))

    def redraw(self, folder: Path):
        return read.redraw(folder, _settings(folder))

    def report(self, folder: Path, run) -> str:
        from bench.studies.injection.report import report_md

        return report_md(run.cfg, asdict(run.settings), folder, run.quick)


def _settings(folder: Path) -> dict:
    return (read_manifest(folder).get("config") or {}).get("study") or asdict(Settings())
