"""Plots drawn from saved tables only, so `make report` can redraw them without any model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

# shown on one 0..1 axis; BLEU is divided by 100 for the plot only
BAR_METRICS = ["exact_match", "token_f1", "rougeL", "bleu", "semantic_similarity", "hallucinated",
               "faithfulness"]
STAGE_COLUMNS = ["t_embed", "t_search", "t_prompt", "t_generate"]


def _save(fig, path: Path) -> Path:
    from bench.io import atomic_write

    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)


def grouped_bars(summary: pd.DataFrame, path: Path, title: str, metrics=BAR_METRICS) -> Path:
    arms = list(dict.fromkeys(summary["arm"]))
    metrics = [m for m in metrics if m in set(summary["metric"])]
    fig, ax = plt.subplots(figsize=(1.6 * len(metrics) + 2, 4))
    width = 0.8 / max(1, len(arms))
    for i, arm in enumerate(arms):
        s = summary[summary["arm"] == arm].set_index("metric").reindex(metrics)
        scale = [100.0 if m == "bleu" else 1.0 for m in metrics]
        mean = s["mean"] / scale
        err = [(s["mean"] - s["ci_low"]) / scale, (s["ci_high"] - s["mean"]) / scale]
        xs = [j + (i - (len(arms) - 1) / 2) * width for j in range(len(metrics))]
        ax.bar(xs, mean.fillna(0), width, yerr=[e.fillna(0) for e in err], capsize=3, label=arm)
        for x, v in zip(xs, mean):
            if pd.isna(v):   # not applicable: say so instead of drawing a zero
                ax.text(x, 0.01, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(["bleu/100" if m == "bleu" else m for m in metrics], rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over seeds (95% CI)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def latency_stages(summary: pd.DataFrame, path: Path, title: str) -> Path:
    arms = list(dict.fromkeys(summary["arm"]))
    fig, ax = plt.subplots(figsize=(1.4 * len(arms) + 2, 4))
    bottom = [0.0] * len(arms)
    for stage in STAGE_COLUMNS:
        ms = [1000 * _mean(summary, arm, stage) for arm in arms]
        ax.bar(arms, ms, bottom=bottom, label=stage.removeprefix("t_"))
        bottom = [b + m for b, m in zip(bottom, ms)]
    ax.set_ylabel("ms per query (mean over seeds)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _mean(summary: pd.DataFrame, arm: str, metric: str) -> float:
    hit = summary[(summary["arm"] == arm) & (summary["metric"] == metric)]["mean"]
    return float(hit.iloc[0]) if len(hit) and pd.notna(hit.iloc[0]) else 0.0
