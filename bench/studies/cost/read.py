"""cost, the reading half: the measured inputs (inputs.csv) priced with the YAML's scenarios ->
summary.csv and break_even.csv, the claim per scenario, the plot and report.md. Saved tables
only; no model code."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED, Claim, all_of, arm_names,
                                 markdown_rows, not_run, read_manifest, results_present)
from bench.report.plots import _save
from bench.studies.cost.prices import break_even_table, price_summary, priced

INPUTS_CSV, SUMMARY_CSV, BREAK_EVEN_CSV = "inputs.csv", "summary.csv", "break_even.csv"
HORIZON = 10_000_000                                  # largest query count on the plot (the default)


def price_tables(inputs: pd.DataFrame, prices: dict) -> dict[str, pd.DataFrame]:
    costs = priced(inputs, prices)
    return {SUMMARY_CSV: price_summary(costs), BREAK_EVEN_CSV: break_even_table(costs)}


def plot(summary: pd.DataFrame, horizon: int, out: Path) -> Path:
    """Total cost vs queries served, per scenario: one-off + queries x per-query (means over seeds)."""
    scenarios = list(dict.fromkeys(m.split(":")[0] for m in summary["metric"]))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.5), squeeze=False)
    q = np.logspace(0, math.log10(horizon), 200)
    for ax, scenario in zip(axes[0], scenarios):
        for arm in dict.fromkeys(summary["arm"]):
            one_off, per_1k = (_mean(summary, arm, f"{scenario}:{m}") for m in ("one_off_usd", "per_1k_queries_usd"))
            ax.plot(q, one_off + q * per_1k / 1000, label=arm)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("queries served")
        ax.set_ylabel("total cost, $")
        ax.set_title(scenario)
        ax.legend(fontsize=8)
    return _save(fig, out / "cost.png")


def _row(summary: pd.DataFrame, arm: str, metric: str) -> pd.Series:
    return summary[(summary["arm"] == arm) & (summary["metric"] == metric)].iloc[0]


def _mean(summary: pd.DataFrame, arm: str, metric: str) -> float:
    return float(_row(summary, arm, metric)["mean"])


def inputs_section(m: pd.DataFrame | None) -> list[str]:
    head = ("Measured inputs (mean over seeds; times in seconds on this machine, see manifest; LoRA "
            "train s is machine seconds: the training's seconds times the share of the machine it held, "
            "1 unless jobs ran side by side on Ray)")
    if m is None:   # results saved before inputs.csv was: only the priced tables were kept
        return [f"{head}: not saved with these results (they predate `inputs.csv`); the tables below "
                "were priced from them. `make cost` measures them again."]
    q = m.groupby("arm", sort=False).mean(numeric_only=True)
    lines = [f"{head}:", "",
             "| arm | LoRA train s | index build s | stored MB | s / query | prompt tokens | completion tokens |",
             "|---|---|---|---|---|---|---|"]
    for arm, r in q.iterrows():
        lines.append(f"| {arm} | {r['train_seconds']:.1f} | {r['index_build_seconds']:.1f} | "
                     f"{r['stored_bytes'] / 1e6:.2f} | {r['t_total']:.4f} | {r['prompt_tokens']:.1f} | "
                     f"{r['completion_tokens']:.1f} |")
    return lines


def report_md(results_dir: Path, run) -> str:
    """report.md from the saved tables, the run's config and its price scenarios."""
    cfg, s = run.cfg, run.settings
    summary, be = pd.read_csv(results_dir / SUMMARY_CSV), pd.read_csv(results_dir / BREAK_EVEN_CSV)
    m = pd.read_csv(results_dir / INPUTS_CSV) if (results_dir / INPUTS_CSV).exists() else None
    lines = [f"# cost: {cfg.claim.strip()}", "", cfg.description.strip(), "", *inputs_section(m)]
    lines += ["", "Price scenarios (from the YAML): " + "; ".join(
        f"**{k}**: " + ", ".join(f"{a}={b}" for a, b in v.items()) for k, v in s.scenarios.items()), "",
        "![cost](cost.png)", "", "| arm | metric | mean | 95% CI |", "|---|---|---|---|"]
    for _, r in summary.iterrows():
        lines.append(f"| {r['arm']} | {r['metric']} | {r['mean']:.6g} | [{r['ci_low']:.6g}, {r['ci_high']:.6g}] |")
    lines += ["", "Break-even (queries after which arm_a's total cost equals arm_b's; blank: never):", "",
              "| scenario | arm_a | arm_b | queries |", "|---|---|---|---|"]
    for _, r in be.iterrows():
        qv = "" if pd.isna(r["break_even_queries"]) else f"{r['break_even_queries']:,.0f}"
        lines.append(f"| {r['scenario']} | {r['arm_a']} | {r['arm_b']} | {qv} |")
    lines += ["", "## Verdict (computed from summary.csv)", "", markdown_rows(claims(results_dir))]
    return "\n".join(lines) + "\n"


COST_TEXT = "RAG costs more per query; fine-tuning costs more up front"
COST_RULE = ("per price scenario: RAG cheaper up front when the 95% CIs over seeds of the one-off cost "
             "do not overlap with rag below lora, and dearer per query when those of the cost per 1k "
             "queries do not overlap with rag above lora; supported when both hold, contradicted when "
             "either is separated the other way, inconclusive otherwise")


def _separated(low: pd.Series, high: pd.Series) -> str:
    """SUPPORTED when low's CI lies entirely below high's, CONTRADICTED when entirely above."""
    return SUPPORTED if low["ci_high"] < high["ci_low"] else \
        CONTRADICTED if low["ci_low"] > high["ci_high"] else INCONCLUSIVE


def _usd(r: pd.Series) -> str:
    return f"${r['mean']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]"


def _break_even(be: pd.DataFrame | None, scenario: str, arms: set) -> float:
    if be is None:
        return math.nan
    hit = be[(be["scenario"] == scenario) & be["arm_a"].isin(arms) & be["arm_b"].isin(arms)]
    return float(hit["break_even_queries"].iloc[0]) if len(hit) else math.nan


def verdicts(summary: pd.DataFrame, kinds: dict[str, str], be: pd.DataFrame | None = None) -> list[Claim]:
    """One claim per price scenario; `kinds` maps arm kind to arm name."""
    scenarios = list(dict.fromkeys(m.split(":")[0] for m in summary["metric"]))
    rag, lora = kinds.get("rag"), kinds.get("lora")
    if rag is None or lora is None or not scenarios:
        return [Claim("cost", COST_TEXT, "cost", "needs a rag and a lora arm", NOT_RUN, COST_RULE)]
    out = []
    for scenario in scenarios:
        (r1, l1), (r2, l2) = ((_row(summary, rag, f"{scenario}:{m}"), _row(summary, lora, f"{scenario}:{m}"))
                              for m in ("one_off_usd", "per_1k_queries_usd"))
        q = _break_even(be, scenario, {rag, lora})
        out.append(Claim(
            f"cost.{scenario}", f"{COST_TEXT} ({scenario} prices)", "cost",
            f"one-off: {rag} {_usd(r1)}, {lora} {_usd(l1)}; per 1k queries: {rag} {_usd(r2)}, "
            f"{lora} {_usd(l2)}; break-even: " + ("never" if math.isnan(q) else f"{q:,.0f} queries"),
            all_of([_separated(r1, l1), _separated(l2, r2)]), COST_RULE))
    return out


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, SUMMARY_CSV, "manifest.json"):
        return [not_run("cost", COST_TEXT, "cost")]
    be = pd.read_csv(results_dir / BREAK_EVEN_CSV) if (results_dir / BREAK_EVEN_CSV).exists() else None
    return verdicts(pd.read_csv(results_dir / SUMMARY_CSV), arm_names(results_dir), be)


def redraw(results_dir: Path) -> list[Path]:
    """The plot's query range is the run's `horizon`, as saved in manifest.json."""
    results_dir = Path(results_dir)
    if not results_present(results_dir, SUMMARY_CSV, "manifest.json"):
        return []
    study = (read_manifest(results_dir).get("config") or {}).get("study") or {}
    return [plot(pd.read_csv(results_dir / SUMMARY_CSV), study.get("horizon", HORIZON), results_dir)]
