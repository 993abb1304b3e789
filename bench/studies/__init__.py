"""Studies: experiments that need more than one runner pass (latency sweeps, cost models,
cold start, freshness updates, scale sweeps). Each module has `run(config, out, quick, progress)`
and writes a results folder with the same conventions as the accuracy experiment:
summary.csv (arm, metric, mean, ci_low, ci_high, n), plots, report.md, manifest.json.
"""

from __future__ import annotations

import importlib

STUDIES = ("latency", "cost", "coldstart", "freshness", "scale",
           "hallucination", "consistency", "format", "data-scaling", "forgetting", "popularity",
           "lora-params")


def get_study(name: str):
    if name not in STUDIES:
        raise KeyError(f"unknown study '{name}'; known: {list(STUDIES)}")
    return importlib.import_module(f"bench.studies.{name.replace('-', '_')}")
