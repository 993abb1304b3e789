"""cost: one-off costs (LoRA training, index build, storage) and per-query costs (time, tokens),
priced with scenarios the user sets in the YAML, and the break-even query counts.

Claim tested: RAG is cheap to set up but dearer per query; fine-tuning is the reverse.
The price model is pure arithmetic on measured quantities (tested on its own):
  one_off   = (train_s + index_build_s) / 3600 * compute_per_hour
              + (adapter_bytes + index_bytes) / 1e9 * storage_per_gb_month * months
  per_query = t_total_s / 3600 * compute_per_hour
              + prompt_tokens / 1e6 * per_1m_prompt_tokens + completion_tokens / 1e6 * per_1m_completion_tokens
  total(q)  = one_off + q * per_query; arms a and b break even at q = (one_off_b - one_off_a) / (per_a - per_b)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED, Claim, all_of, arm_names,
                                 markdown_rows, not_run, read_manifest, results_present)
from bench.report.manifest import write_manifest
from bench.report.plots import _save
from bench.report.tables import mean_ci
from bench.studies.common import load_study, with_changes, write_csv, write_text


@dataclass(frozen=True)
class Prices:
    compute_per_hour: float = 0.0        # $ per hour of the machine that trains, indexes and serves
    per_1m_prompt_tokens: float = 0.0    # $ per million prompt tokens (an API-served model)
    per_1m_completion_tokens: float = 0.0
    storage_per_gb_month: float = 0.0
    months: float = 1.0

    def validate(self, where: str) -> None:
        from bench.config import ConfigError
        for key, value in asdict(self).items():
            if value < 0:
                raise ConfigError(f"{where}.{key}: expected >= 0, got {value}")


@dataclass(frozen=True)
class Settings:
    scenarios: dict = field(default_factory=dict)     # name -> Prices mapping
    max_items: int = 200
    horizon: int = 10_000_000                         # largest query count on the plot

    def validate(self, where: str) -> None:
        from bench.config import ConfigError, build
        if not self.scenarios:
            raise ConfigError(f"{where}.scenarios: expected at least one price scenario")
        for name, raw in self.scenarios.items():
            build(Prices, raw, f"{where}.scenarios.{name}")

    def prices(self) -> dict[str, Prices]:
        from bench.config import build
        return {name: build(Prices, raw, name) for name, raw in self.scenarios.items()}


def one_off_cost(p: Prices, train_seconds: float, index_seconds: float, stored_bytes: float) -> float:
    return ((train_seconds + index_seconds) / 3600 * p.compute_per_hour
            + stored_bytes / 1e9 * p.storage_per_gb_month * p.months)


def per_query_cost(p: Prices, seconds: float, prompt_tokens: float, completion_tokens: float) -> float:
    return (seconds / 3600 * p.compute_per_hour + prompt_tokens / 1e6 * p.per_1m_prompt_tokens
            + completion_tokens / 1e6 * p.per_1m_completion_tokens)


def break_even(one_off_a: float, per_a: float, one_off_b: float, per_b: float) -> float:
    """Queries after which a's total cost equals b's; NaN when the lines never cross ahead."""
    if per_a == per_b:
        return float("nan")
    q = (one_off_b - one_off_a) / (per_a - per_b)
    return q if q > 0 else float("nan")


def measured(table: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, seed): the measured quantities the price model needs."""
    per_query = table.groupby(["arm", "seed"], sort=False)[
        ["t_total", "prompt_tokens", "completion_tokens"]].mean().reset_index()
    c = cells.copy()
    for col in ("train_seconds", "index_build_seconds", "adapter_disk_bytes", "index_disk_bytes"):
        c[col] = pd.to_numeric(c[col], errors="coerce").fillna(0.0) if col in c else 0.0
    c["stored_bytes"] = c["adapter_disk_bytes"] + c["index_disk_bytes"]
    return per_query.merge(c[["arm", "seed", "train_seconds", "index_build_seconds", "stored_bytes"]],
                           on=["arm", "seed"])


def priced(m: pd.DataFrame, prices: dict[str, Prices]) -> pd.DataFrame:
    rows = []
    for scenario, p in prices.items():
        for _, r in m.iterrows():
            rows.append({"scenario": scenario, "arm": r["arm"], "seed": r["seed"],
                         "one_off_usd": one_off_cost(p, r["train_seconds"], r["index_build_seconds"],
                                                     r["stored_bytes"]),
                         "per_query_usd": per_query_cost(p, r["t_total"], r["prompt_tokens"],
                                                         r["completion_tokens"])})
    return pd.DataFrame(rows)


def break_even_table(costs: pd.DataFrame) -> pd.DataFrame:
    mean = costs.groupby(["scenario", "arm"], sort=False)[["one_off_usd", "per_query_usd"]].mean()
    rows = []
    for scenario in dict.fromkeys(costs["scenario"]):
        arms = list(dict.fromkeys(costs[costs["scenario"] == scenario]["arm"]))
        for i, a in enumerate(arms):
            for b in arms[i + 1:]:
                ra, rb = mean.loc[(scenario, a)], mean.loc[(scenario, b)]
                q = break_even(ra["one_off_usd"], ra["per_query_usd"], rb["one_off_usd"], rb["per_query_usd"])
                rows.append({"scenario": scenario, "arm_a": a, "arm_b": b, "break_even_queries": q})
    return pd.DataFrame(rows)


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


def run(config: Path, out: Path, quick: bool = False, progress: bool = True) -> Path:
    from bench.runner import run_experiment   # the model stack, only when measuring

    cfg, s = load_study(config, Settings, quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run_cfg = with_changes(cfg, max_items=s.max_items)
    table, stats = run_experiment(run_cfg, out, progress=progress)
    table = table[table["split"] == cfg.data.eval_splits[0]]
    inputs = measured(table, stats)
    costs = priced(inputs, s.prices())
    rows = []
    for (scenario, arm), g in costs.groupby(["scenario", "arm"], sort=False):
        for metric, scale in (("one_off_usd", 1), ("per_query_usd", 1000)):
            m, lo, hi, n = mean_ci((g[metric] * scale).tolist())
            name = "per_1k_queries_usd" if scale == 1000 else metric
            rows.append({"arm": arm, "metric": f"{scenario}:{name}", "mean": m, "ci_low": lo,
                         "ci_high": hi, "n": n})
    summary = pd.DataFrame(rows)
    be = break_even_table(costs)
    write_csv(summary, out / "summary.csv")
    write_csv(be, out / "break_even.csv")
    plot(summary, s.horizon, out)
    write_manifest(out / "manifest.json", cfg.name, {"experiment": run_cfg.to_json(), "study": asdict(s)},
                   cfg.source, {"total": round(time.perf_counter() - start, 1)})
    return write_text(report(cfg, s, summary, be, inputs), out / "report.md")


def report(cfg, s: Settings, summary: pd.DataFrame, be: pd.DataFrame, m: pd.DataFrame) -> str:
    kinds = {a.arm: a.name for a in reversed(cfg.arms)}   # the first arm of each kind
    q = m.groupby("arm", sort=False).mean(numeric_only=True)
    lines = [f"# cost: {cfg.claim.strip()}", "", cfg.description.strip(), "",
             "Measured inputs (mean over seeds; times in seconds on this machine, see manifest):", "",
             "| arm | LoRA train s | index build s | stored MB | s / query | prompt tokens | completion tokens |",
             "|---|---|---|---|---|---|---|"]
    for arm, r in q.iterrows():
        lines.append(f"| {arm} | {r['train_seconds']:.1f} | {r['index_build_seconds']:.1f} | "
                     f"{r['stored_bytes'] / 1e6:.2f} | {r['t_total']:.4f} | {r['prompt_tokens']:.1f} | "
                     f"{r['completion_tokens']:.1f} |")
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
    lines += ["", "## Verdict (computed from summary.csv)", "", markdown_rows(verdicts(summary, kinds, be))]
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
    if not results_present(results_dir, "summary.csv", "manifest.json"):
        return [not_run("cost", COST_TEXT, "cost")]
    be = pd.read_csv(results_dir / "break_even.csv") if (results_dir / "break_even.csv").exists() else None
    return verdicts(pd.read_csv(results_dir / "summary.csv"), arm_names(results_dir), be)


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, "summary.csv", "manifest.json"):
        return []
    study = (read_manifest(results_dir).get("config") or {}).get("study") or {}
    return [plot(pd.read_csv(results_dir / "summary.csv"), study.get("horizon", Settings.horizon), results_dir)]
