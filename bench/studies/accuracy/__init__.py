"""accuracy: the head-to-head. The same test questions through closed_book, rag, lora and hybrid
(or whatever arms the YAML lists), scored in one per-item table: exact match, F1, ROUGE, BLEU,
semantic similarity, hallucination, faithfulness, retrieval recall, latency by stage, tokens.

It is also what `python -m bench run <your.yaml>` runs on your own corpus and arms.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.outputs import head_to_head_tables, load_item_table
from bench.studies.accuracy import read
from bench.studies.registry import Study, register_study


@register_study("accuracy")
class Accuracy(Study):
    order = 10
    topics = (("accuracy", "RAG beats fine-tuning on ROUGE (~16%) and BLEU (~15%) on average (Lakatos et al. 2024)"),
              ("hybrid", "combining fine-tuning with RAG can lower scores (Lakatos) / help (Balaguer, RAFT)"))
    summary = "closed_book vs rag vs lora vs hybrid on the same test questions"
    measure = "bench.studies.accuracy.measure"
    base_tables = ("items.csv", "cells.csv")

    def derive(self, folder: Path, run) -> dict[str, pd.DataFrame]:
        return head_to_head_tables(load_item_table(folder / "items.csv"))

    def claims(self, folder: Path):
        return read.claims(folder)

    def redraw(self, folder: Path):
        return read.redraw(folder)

    def report(self, folder: Path, run) -> str:
        return read.accuracy_report(run.cfg, load_item_table(folder / "items.csv"),
                                    pd.read_csv(folder / "summary.csv"), pd.read_csv(folder / "breakdown.csv"),
                                    pd.read_csv(folder / "cells.csv"))
