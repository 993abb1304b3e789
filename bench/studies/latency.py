"""latency: per-query latency of every arm, stage by stage, at batch size 1 and N.

Claim tested: retrieval adds latency ("typically 100-300 ms") while a fine-tuned model answers
at once. Each batch size is one runner pass (its own prediction logs, so a rerun replays the
original timings). Batch size 1 is what one user waits; batch size N is amortised per query.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.report.manifest import write_manifest
from bench.report.plots import _save
from bench.report.summary import mean_ci, paired_difference
from bench.runner import run_experiment
from bench.studies.common import load_study, with_changes, write_csv, write_text

STAGES = ["t_embed", "t_search", "t_prompt", "t_generate"]
QUOTED_MS = (100.0, 300.0)


@dataclass(frozen=True)
class Settings:
    batch_sizes: tuple[int, ...] = (1, 64)
    max_items: int = 200

    def validate(self, where: str) -> None:
        from bench.config import ConfigError
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"{where}.batch_sizes: expected a list of sizes >= 1")


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Long form: per (arm@bs) the stage means (ms), percentiles of the total, throughput."""
    rows = []
    for (label, bs), group in table.groupby(["label", "batch_size"], sort=False):
        per_seed = group.groupby("seed")
        metrics = {f"{s}_ms": per_seed[s].mean() * 1000 for s in STAGES + ["t_total"]}
        for q in (50, 95, 99):
            metrics[f"p{q}_ms"] = per_seed["t_total"].quantile(q / 100) * 1000
        metrics["throughput_qps"] = 1.0 / per_seed["t_total"].mean()
        metrics["prompt_tokens"] = per_seed["prompt_tokens"].mean()
        metrics["completion_tokens"] = per_seed["completion_tokens"].mean()
        for name, values in metrics.items():
            m, lo, hi, n = mean_ci(values.tolist())
            rows.append({"arm": label, "metric": name, "mean": m, "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, summary: pd.DataFrame, out: Path) -> None:
    labels = list(dict.fromkeys(table["label"]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    bottom = np.zeros(len(labels))
    for stage in STAGES:
        ms = np.array([_get(summary, lab, f"{stage}_ms") for lab in labels])
        ax1.bar(labels, ms, bottom=bottom, label=stage.removeprefix("t_"))
        bottom += ms
    ax1.set_ylabel("ms per query (mean over seeds)")
    ax1.set_title("latency by stage")
    ax1.tick_params(axis="x", rotation=45)
    ax1.legend(fontsize=8)
    single = table[table["batch_size"] == table["batch_size"].min()]
    arms = list(dict.fromkeys(single["arm"]))
    ax2.boxplot([single[single["arm"] == a]["t_total"] * 1000 for a in arms], showfliers=True)
    ax2.set_xticks(range(1, len(arms) + 1))
    ax2.set_xticklabels(arms)
    ax2.set_yscale("log")
    ax2.set_ylabel("ms per query")
    ax2.set_title(f"distribution at batch size {single['batch_size'].min()}")
    _save(fig, out / "latency.png")


def _get(summary: pd.DataFrame, arm: str, metric: str) -> float:
    hit = summary[(summary["arm"] == arm) & (summary["metric"] == metric)]["mean"]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def verdicts(table: pd.DataFrame, cfg) -> list[str]:
    kinds = {a.arm: a.name for a in cfg.arms}
    bs = int(table["batch_size"].min())
    one = table[table["batch_size"] == bs]
    lines = [f"Rule: an arm is slower than another when the 95% CI of the seed-paired difference "
             f"of mean total latency (batch size {bs}) lies above zero; faster when below; "
             f"inconclusive otherwise.", ""]
    base = kinds.get("closed_book")
    for kind in ("rag", "hybrid", "lora"):
        if kind not in kinds or base is None:
            continue
        diff = paired_difference(one, kinds[kind], base, "t_total")
        m, lo, hi, _ = (x * 1000 if isinstance(x, float) else x for x in diff)
        word = "slower" if lo > 0 else "faster" if hi < 0 else "not different"
        lines.append(f"- {kinds[kind]} vs {base}: {m:+.1f} ms [{lo:+.1f}, {hi:+.1f}] per query "
                     f"-> **{word}**")
    if "rag" in kinds and base:
        r = one[one["arm"] == kinds["rag"]]
        c = one[one["arm"] == base]
        added = (r["t_total"].mean() - c["t_total"].mean()) * 1000
        retrieval = (r["t_embed"].mean() + r["t_search"].mean()) * 1000
        inside = QUOTED_MS[0] <= added <= QUOTED_MS[1]
        lines += ["", f"The quoted 'retrieval adds 100-300 ms': measured **{added:.1f} ms** added per "
                  f"query at batch size {bs}, of which query embedding + vector search "
                  f"{retrieval:.1f} ms (search alone {r['t_search'].mean() * 1000:.2f} ms) and the "
                  f"rest the longer prompt ({r['prompt_tokens'].mean():.0f} vs "
                  f"{c['prompt_tokens'].mean():.0f} tokens) -> "
                  f"**{'inside' if inside else 'outside'}** the quoted range on this machine "
                  f"(embedded chroma, no network, no re-ranker)."]
    return lines


def run(config: Path, out: Path, quick: bool = False, progress: bool = True) -> Path:
    cfg, s = load_study(config, Settings, quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start, parts = time.perf_counter(), []
    for bs in s.batch_sizes:
        t = run_experiment(with_changes(cfg, batch_size=bs, max_items=s.max_items),
                           out / f"bs{bs}", progress=progress)
        t["batch_size"] = bs
        t["label"] = t["arm"] + f"@bs{bs}"
        parts.append(t)
    table = pd.concat(parts, ignore_index=True)
    table = table[table["split"] == cfg.data.eval_splits[0]]
    summary = summarize(table)
    write_csv(summary, out / "summary.csv")
    wide = summary.pivot(index="arm", columns="metric", values="mean").reset_index()
    write_csv(wide, out / "latency_wide.csv")
    plot(table, summary, out)
    md = [f"# latency: {cfg.claim.strip() or 'retrieval adds latency'}", "",
          cfg.description.strip(), "",
          f"Model `{cfg.model.name}`, seeds {list(cfg.seeds)}, {s.max_items} test questions per "
          f"seed, batch sizes {list(s.batch_sizes)}; per-query time at batch size N is the batch "
          f"wall time / N. Means over seeds with 95% CIs; percentiles per seed, then averaged.", "",
          "![latency](latency.png)", "", _table(summary), "", "## Verdicts", "", *verdicts(table, cfg)]
    write_manifest(out / "manifest.json", cfg.name, {"experiment": cfg.to_json(), "study": s.__dict__},
                   cfg.source, {"total": round(time.perf_counter() - start, 1)})
    return write_text("\n".join(md) + "\n", out / "report.md")


def _table(summary: pd.DataFrame) -> str:
    cols = ["t_embed_ms", "t_search_ms", "t_prompt_ms", "t_generate_ms", "t_total_ms", "p50_ms",
            "p95_ms", "p99_ms", "throughput_qps", "prompt_tokens", "completion_tokens"]
    lines = ["| arm@batch | " + " | ".join(c.removesuffix("_ms").removeprefix("t_") + (" ms" if c.endswith("_ms") else "")
                                         for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for arm in dict.fromkeys(summary["arm"]):
        cells = []
        for c in cols:
            v = _get(summary, arm, c)
            cells.append(f"{v:.2f}" if v < 10 else f"{v:.1f}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
