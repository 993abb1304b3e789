"""latency, the reading half: the per-item timings (items.csv) and their summary -> the wide
table, both claims, the plot and report.md. Saved tables only; no model code."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.report.claims import (Claim, NOT_RUN, all_of, arm_names, interval_text, interval_verdict,
                                 markdown_rows, not_run, range_verdict, results_present)
from bench.report.plots import _save
from bench.report.tables import lookup, mean_ci, paired_difference

STAGES = ["t_embed", "t_search", "t_prompt", "t_generate"]
QUOTED_MS = (100.0, 300.0)
ITEMS_CSV, SUMMARY_CSV, WIDE_CSV = "items.csv", "summary.csv", "latency_wide.csv"
MERGED = "_merged"     # an adapted arm served with its adapter merged into the weights: `<arm>_merged`


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


def wide(summary: pd.DataFrame) -> pd.DataFrame:
    """latency_wide.csv: one row per arm@batch, one column per metric (the means)."""
    return summary.pivot(index="arm", columns="metric", values="mean").reset_index()


def plot(table: pd.DataFrame, summary: pd.DataFrame, out: Path) -> Path:
    labels = list(dict.fromkeys(table["label"]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    bottom = np.zeros(len(labels))
    for stage in STAGES:
        ms = np.array([lookup(summary, lab, f"{stage}_ms") for lab in labels])
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
    return _save(fig, out / "latency.png")


LATENCY_TEXT = "retrieval adds latency; a fine-tuned model answers without a retrieval step"
QUOTED_TEXT = "retrieval adds typically 100-300 ms per query"
ITEM_COLUMNS = ["label", "arm", "batch_size", "seed", "item_id", *STAGES, "t_total", "prompt_tokens",
                "completion_tokens"]


def _ms(diff) -> tuple:
    m, lo, hi, n = diff
    return m * 1000, lo * 1000, hi * 1000, n


def differences(one: pd.DataFrame, base: str) -> list[str]:
    """Every arm against the base model at one batch size, seed-paired (described, not judged)."""
    lines = []
    for arm in dict.fromkeys(one["arm"]):
        if arm != base:
            m, lo, hi, _ = _ms(paired_difference(one, arm, base, "t_total"))
            word = "slower" if lo > 0 else "faster" if hi < 0 else "not different"
            lines.append(f"- {arm} vs {base}: {interval_text(m, lo, hi, 1, '+.1f', ' ms')} per query -> **{word}**")
    return lines


def verdicts(table: pd.DataFrame, kinds: dict[str, str]) -> list[Claim]:
    """Both claims from the per-item timings at the smallest batch size; `kinds` maps arm kind
    to arm name. An adapted arm counts as served with its adapter merged where that was measured."""
    bs = int(table["batch_size"].min())
    one = table[table["batch_size"] == bs]
    arms = set(one["arm"])
    base, rag, lora, hybrid = (next((a for a in (f"{kinds.get(k)}{MERGED}", kinds.get(k)) if a in arms), None)
                               for k in ("closed_book", "rag", "lora", "hybrid"))
    pairs = [(a, b) for a, b in ((rag, base), (hybrid, lora)) if a and b]
    diffs = {p: _ms(paired_difference(one, *p, "t_total")) for p in pairs + [(rag, lora)] if p[0] and p[1]}
    text = {p: f"{p[0]} - {p[1]} {interval_text(m, lo, hi, 1, '+.1f', ' ms')}" for p, (m, lo, hi, _) in diffs.items()}
    rule = (f"seed-paired difference of the mean total latency per query at batch size {bs}: supported "
            f"when its 95% CI lies above zero for each retrieval arm against the same model without "
            f"retrieval (rag - closed_book, hybrid - lora; merged adapters where measured), "
            f"contradicted when one lies below zero, inconclusive otherwise")
    n = f" (n={next(iter(diffs.values()))[3]} seeds)" if diffs else ""
    out = [Claim("latency", LATENCY_TEXT, "latency", "; ".join(text.values()) + n or "needs a rag and a "
                 "closed_book arm", all_of(interval_verdict(diffs[p][1], diffs[p][2]) for p in pairs), rule)]
    rule = (f"the 95% CI of the seed-paired rag - closed_book latency per query (batch size {bs}; embedded "
            f"chroma, no network, no re-ranker) inside [{QUOTED_MS[0]:.0f}, {QUOTED_MS[1]:.0f}] ms -> "
            f"supported, entirely outside -> contradicted, else inconclusive")
    if (rag, base) not in diffs:
        return out + [Claim("latency.quoted", QUOTED_TEXT, "latency", "needs a rag and a closed_book arm",
                            NOT_RUN, rule)]
    r, c = one[one["arm"] == rag], one[one["arm"] == base]
    measured = (f"{text[(rag, base)]} per query{n}, of which query embedding + vector search "
                f"{(r['t_embed'].mean() + r['t_search'].mean()) * 1000:.1f} ms (search alone "
                f"{r['t_search'].mean() * 1000:.2f} ms), the rest generation: a longer prompt "
                f"({r['prompt_tokens'].mean():.0f} vs {c['prompt_tokens'].mean():.0f} tokens) and answer "
                f"({r['completion_tokens'].mean():.1f} vs {c['completion_tokens'].mean():.1f} tokens)")
    _, lo, hi, _ = diffs[(rag, base)]
    return out + [Claim("latency.quoted", QUOTED_TEXT, "latency", measured,
                        range_verdict(lo, hi, *QUOTED_MS), rule)]


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, ITEMS_CSV, "manifest.json"):
        return [not_run("latency", LATENCY_TEXT, "latency"), not_run("latency.quoted", QUOTED_TEXT, "latency")]
    return verdicts(pd.read_csv(results_dir / ITEMS_CSV), arm_names(results_dir))


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, ITEMS_CSV, SUMMARY_CSV):
        return []
    return [plot(pd.read_csv(results_dir / ITEMS_CSV), pd.read_csv(results_dir / SUMMARY_CSV), results_dir)]


def report_md(results_dir: Path, run) -> str:
    """report.md from items.csv, the run's config and settings. Its table summarises the per-item
    timings afresh: a summary.csv written to 6 significant digits would round differently
    (1.865 tokens reads 1.86, the unrounded mean 1.8650000000000002 reads 1.87)."""
    cfg, s = run.cfg, run.settings
    table = pd.read_csv(results_dir / ITEMS_CSV)
    summary = summarize(table)
    base = next((a.name for a in cfg.arms if a.arm == "closed_book"), None)
    one = table[table["batch_size"] == table["batch_size"].min()]
    items = ("every test question" if cfg.data.max_items is None
             else f"{cfg.data.max_items} test questions per seed")
    md = [f"# latency: {cfg.claim.strip() or 'retrieval adds latency'}", "",
          cfg.description.strip(), "",
          f"Model `{cfg.model.name}`, seeds {list(cfg.seeds)}, {items}, batch sizes {list(s.batch_sizes)}; "
          f"per-query time at batch size N is the batch wall time / N. Means over seeds with 95% CIs; "
          f"percentiles per seed, then averaged.", "",
          "![latency](latency.png)", "", _table(summary), "", "## Verdicts (computed from items.csv)", "",
          markdown_rows(claims(results_dir)), ""]
    if base:
        md += [f"Seed-paired differences of mean total latency against {base} at batch size "
               f"{one['batch_size'].min()} (95% CI):", "", *differences(one, base)]
    return "\n".join(md) + "\n"


def _table(summary: pd.DataFrame) -> str:
    cols = ["t_embed_ms", "t_search_ms", "t_prompt_ms", "t_generate_ms", "t_total_ms", "p50_ms",
            "p95_ms", "p99_ms", "throughput_qps", "prompt_tokens", "completion_tokens"]
    lines = ["| arm@batch | " + " | ".join(c.removesuffix("_ms").removeprefix("t_") + (" ms" if c.endswith("_ms") else "")
                                         for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for arm in dict.fromkeys(summary["arm"]):
        cells = []
        for c in cols:
            v = lookup(summary, arm, c)
            cells.append(f"{v:.2f}" if v < 10 else f"{v:.1f}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
