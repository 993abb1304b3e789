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

from bench.report.manifest import write_manifest
from bench.report.plots import _save
from bench.report.summary import mean_ci
from bench.runner import cell_stats, run_experiment
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


def plot(costs: pd.DataFrame, horizon: int, out: Path) -> None:
    scenarios = list(dict.fromkeys(costs["scenario"]))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.5), squeeze=False)
    q = np.logspace(0, math.log10(horizon), 200)
    mean = costs.groupby(["scenario", "arm"], sort=False)[["one_off_usd", "per_query_usd"]].mean()
    for ax, scenario in zip(axes[0], scenarios):
        for arm in dict.fromkeys(costs[costs["scenario"] == scenario]["arm"]):
            r = mean.loc[(scenario, arm)]
            ax.plot(q, r["one_off_usd"] + q * r["per_query_usd"], label=arm)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("queries served")
        ax.set_ylabel("total cost, $")
        ax.set_title(scenario)
        ax.legend(fontsize=8)
    _save(fig, out / "cost.png")


def run(config: Path, out: Path, quick: bool = False, progress: bool = True) -> Path:
    cfg, s = load_study(config, Settings, quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run_cfg = with_changes(cfg, max_items=s.max_items)
    table = run_experiment(run_cfg, out, progress=progress)
    table = table[table["split"] == cfg.data.eval_splits[0]]
    inputs = measured(table, cell_stats(run_cfg, out))
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
    plot(costs, s.horizon, out)
    write_manifest(out / "manifest.json", cfg.name, {"experiment": run_cfg.to_json(), "study": asdict(s)},
                   cfg.source, {"total": round(time.perf_counter() - start, 1)})
    return write_text(report(cfg, s, summary, be, inputs), out / "report.md")


def report(cfg, s: Settings, summary: pd.DataFrame, be: pd.DataFrame, m: pd.DataFrame) -> str:
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
    lines += ["", "## Verdict", "", *verdict(summary, cfg)]
    return "\n".join(lines) + "\n"


def verdict(summary: pd.DataFrame, cfg) -> list[str]:
    """Per scenario: RAG cheaper up front and dearer per query than LoRA, by CI separation."""
    kinds = {a.arm: a.name for a in cfg.arms}
    if "rag" not in kinds or "lora" not in kinds:
        return ["not run: needs a rag and a lora arm"]
    out = ["Rule: 'cheaper' when the 95% CIs over seeds do not overlap; otherwise inconclusive.", ""]
    for scenario in dict.fromkeys(m.split(":")[0] for m in summary["metric"]):
        parts = []
        for metric, want in (("one_off_usd", "rag cheaper up front"), ("per_1k_queries_usd", "rag dearer per query")):
            get = lambda arm: summary[(summary["arm"] == kinds[arm]) & (summary["metric"] == f"{scenario}:{metric}")].iloc[0]
            r, lo = get("rag"), get("lora")
            if metric == "one_off_usd":
                ok = r["ci_high"] < lo["ci_low"]
                bad = r["ci_low"] > lo["ci_high"]
            else:
                ok = r["ci_low"] > lo["ci_high"]
                bad = r["ci_high"] < lo["ci_low"]
            parts.append(f"{want}: **{'supported' if ok else 'contradicted' if bad else 'inconclusive'}**")
        out.append(f"- {scenario}: " + "; ".join(parts))
    return out
