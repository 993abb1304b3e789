"""coldstart, the reading half: the per-(arm, seed) cold-start timings (cells.csv) and their
summary -> the claim, the plot and report.md. Saved tables only; no model code."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.metrics.scores import header
from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED, Claim, arm_names, fmt_ci,
                                 markdown_rows, not_run, results_present)
from bench.report.plots import _save
from bench.report.tables import summarize_wide

METRICS = ["prepare_seconds", "first_answer_seconds", "first_correct_seconds", "exact_match"]
CELLS_CSV, SUMMARY_CSV = "cells.csv", "summary.csv"


def summarize(cells: pd.DataFrame) -> pd.DataFrame:
    return summarize_wide(cells, METRICS)


def plot(summary: pd.DataFrame, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for arm in dict.fromkeys(summary["arm"]):
        s = summary[summary["arm"] == arm].set_index("metric")
        x, y = s.loc["first_correct_seconds"], s.loc["exact_match"]
        ax.errorbar(x["mean"], 100 * y["mean"], xerr=[[x["mean"] - x["ci_low"]], [x["ci_high"] - x["mean"]]],
                    yerr=[[100 * (y["mean"] - y["ci_low"])], [100 * (y["ci_high"] - y["mean"])]],
                    fmt="o", capsize=3, label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("seconds from raw documents to the first correct answer (log)")
    ax.set_ylabel("exact match reached, %")
    ax.legend(fontsize=8)
    return _save(fig, out / "coldstart.png")


COLD_TEXT = "RAG starts fast (chunk, embed, index) while fine-tuning takes long to train"
COLD_RULE = ("supported when the 95% CIs over seeds of the seconds from raw documents to the first correct "
             "answer do not overlap with rag below lora (or lora never answers correctly), contradicted "
             "when they do not overlap with rag above lora, inconclusive otherwise")


def verdicts(summary: pd.DataFrame, kinds: dict[str, str]) -> list[Claim]:
    """`kinds` maps arm kind to arm name."""
    rag, lora = kinds.get("rag"), kinds.get("lora")
    if rag is None or lora is None:
        return [Claim("coldstart", COLD_TEXT, "coldstart", "needs a rag and a lora arm", NOT_RUN, COLD_RULE)]
    get = lambda arm, metric: summary[(summary["arm"] == arm) & (summary["metric"] == metric)].iloc[0]  # noqa: E731
    r, lo = get(rag, "first_correct_seconds"), get(lora, "first_correct_seconds")
    if math.isnan(lo["mean"]):
        verdict = INCONCLUSIVE if math.isnan(r["mean"]) else SUPPORTED
    else:
        verdict = SUPPORTED if r["ci_high"] < lo["ci_low"] else \
            CONTRADICTED if r["ci_low"] > lo["ci_high"] else INCONCLUSIVE
    parts = []
    for arm in dict.fromkeys(summary["arm"]):
        t, em = get(arm, "first_correct_seconds"), get(arm, "exact_match")
        seconds = "never correct" if math.isnan(t["mean"]) else f"{fmt_ci(t['mean'], t['ci_low'], t['ci_high'], 1)} s"
        parts.append(f"{arm} {seconds} (EM reached {fmt_ci(em['mean'], em['ci_low'], em['ci_high'])}%)")
    ratio = lo["mean"] / r["mean"] if r["mean"] > 0 else math.nan
    measured = "to the first correct answer: " + "; ".join(parts) + \
        ("" if math.isnan(ratio) else f"; {lora} / {rag} = {ratio:.0f}x")
    return [Claim("coldstart", COLD_TEXT, "coldstart", measured, verdict, COLD_RULE)]


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, SUMMARY_CSV, "manifest.json"):
        return [not_run("coldstart", COLD_TEXT, "coldstart")]
    return verdicts(pd.read_csv(results_dir / SUMMARY_CSV), arm_names(results_dir))


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, SUMMARY_CSV):
        return []
    return [plot(pd.read_csv(results_dir / SUMMARY_CSV), results_dir)]


def report_md(results_dir: Path, run) -> str:
    """report.md from summary.csv and the run's config."""
    cfg = run.cfg
    summary = pd.read_csv(results_dir / SUMMARY_CSV)
    table = ["| arm | " + " | ".join(header(m) for m in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for arm in dict.fromkeys(summary["arm"]):
        srow = summary[summary["arm"] == arm].set_index("metric")
        table.append(f"| {arm} | " + " | ".join(
            f"{srow.loc[m, 'mean'] * (100 if m == 'exact_match' else 1):.1f} "
            f"[{srow.loc[m, 'ci_low'] * (100 if m == 'exact_match' else 1):.1f}, "
            f"{srow.loc[m, 'ci_high'] * (100 if m == 'exact_match' else 1):.1f}]" for m in METRICS) + " |")
    items = "every test question" if cfg.data.max_items is None else f"{cfg.data.max_items} test questions"
    md = [f"# coldstart: {cfg.claim.strip()}", "", cfg.description.strip(), "",
          f"Model `{cfg.model.name}`, seeds {list(cfg.seeds)} (each a fresh world), {items}; seconds on this "
          f"machine (see manifest); exact match in %.", "",
          "![coldstart](coldstart.png)", "", *table, "", "## Verdict (computed from summary.csv)", "",
          markdown_rows(claims(results_dir))]
    return "\n".join(md) + "\n"
