"""coldstart: wall time from raw documents to the first correct answer, per arm, with empty caches.

Claim tested: RAG starts fast (chunk, embed, index, deploy) while fine-tuning takes long to train.
Every arm starts from an empty cache folder of its own, so nothing built earlier is reused:
rag = load model + chunk + embed + index; lora = load model + train; hybrid = both, in sequence.
The clock runs until the end of the first answer batch that contains a correct answer; the
arm then answers the rest so the quality reached is measured on the same items. Supported when
the 95% CIs over seeds of the seconds to the first correct answer put rag below lora (or lora
never answers correctly).

The experiment's seeds are the cells' (each a fresh world, and every seed retrains both LoRA
arms from scratch); data.max_items caps the test questions per seed. measure.py times the cells
(not executor jobs, on purpose: see its cold_cell); read.py turns the saved cells.csv and
summary.csv into the claim, plot and report.
"""

from __future__ import annotations

from bench.studies.coldstart import read
from bench.studies.registry import Study, register_study


@register_study("coldstart")
class Coldstart(Study):
    order = 40
    topics = (("coldstart", "cold start: days to train vs fast to index"),)
    summary = "raw documents -> first correct answer, empty caches"
    measure = "bench.studies.coldstart.measure"
    # the summary is a base table: it is taken from the unrounded timings, which cells.csv of
    # the committed results holds to 6 significant digits only
    base_tables = (read.CELLS_CSV, read.SUMMARY_CSV)

    claims = staticmethod(read.claims)
    redraw = staticmethod(read.redraw)
    report = staticmethod(read.report_md)    # (folder, run) -> report.md
