"""data-scaling, the plot and report.md, from the saved cells.csv alone (no model code)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.metrics.scores import EM_LEGEND
from bench.report.claims import fmt_ci, markdown_rows, results_present
from bench.studies.data_scaling.read import EVAL_SETS, VARIANTS, claims, curve_table, load_cells

PLOT = "data_scaling.png"
MARKERS = {"": "o", "recipe": "D", "passes": "^", "rank": "s"}


# -- plots -----------------------------------------------------------------------------------------

def redraw(results_dir: Path) -> list[Path]:
    from bench.report.plots import _save   # first: selects the Agg backend

    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    results_dir = Path(results_dir)
    if not results_present(results_dir, "cells.csv"):
        return []
    cells = load_cells(results_dir)
    curve = curve_table(cells)
    em = curve[curve["metric"] == "exact_match"]
    fig, grid = plt.subplots(2, 2, figsize=(13, 9.5))
    axes = grid.flatten()
    colors = {"lora": "tab:orange", "hybrid": "tab:red", "closed_book": "tab:gray", "rag": "tab:blue"}
    for ax, eval_set in zip(axes, ("reworded", "trained", "test")):
        e = em[em["eval_set"] == eval_set]
        swept = e[e["size"].notna()]
        for (kind, aug, variant), g in swept.groupby(["kind", "augmentation", "variant"], sort=False):
            g = g.sort_values("trained_items")
            x, y = g["trained_items"], 100 * g["mean"]
            err = [100 * (g["mean"] - g["ci_low"]), 100 * (g["ci_high"] - g["mean"])]
            ax.errorbar(x, y, yerr=err, marker=MARKERS[variant], capsize=3, color=colors.get(kind),
                        linestyle=":" if variant == "recipe" else "-" if aug else "--",
                        label=f"{kind} {'with' if aug else 'without'} paraphrases{VARIANTS[variant]}")
        for _, r in e[e["size"].isna()].iterrows():
            c = colors.get(r["kind"], "black")
            ax.axhline(100 * r["mean"], color=c, linestyle=":", label=f"{r['arm']} (reference)")
            if pd.notna(r["ci_low"]) and r["ci_high"] > r["ci_low"]:
                ax.axhspan(100 * r["ci_low"], 100 * r["ci_high"], color=c, alpha=0.12)
        _log_x(ax, swept["trained_items"], NullFormatter)
        ax.set_ylim(-3, 103)      # 2-seed t-intervals can reach past 0 and 100
        ax.set_ylabel("exact match, % (mean over seeds, 95% CI)")
        ax.set_title(f"{eval_set}: {EVAL_SETS[eval_set]}", fontsize=9)
    axes[0].legend(fontsize=7)
    ax = axes[3]
    gained = curve[(curve["metric"] == "facts_gained") & (curve["kind"] == "lora")
                   & (curve["eval_set"] == "reworded")]
    for (aug, variant), g in gained.groupby(["augmentation", "variant"], sort=False):
        g = g.sort_values("trained_items")
        ax.errorbar(g["trained_items"], g["mean"], yerr=[g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]],
                    marker=MARKERS[variant], capsize=3, color=colors["lora"],
                    linestyle=":" if variant == "recipe" else "-" if aug else "--",
                    label=f"lora {'with' if aug else 'without'} paraphrases{VARIANTS[variant]}")
    ax.axhline(0, color="tab:gray", linestyle=":")
    _log_x(ax, gained["trained_items"], NullFormatter)
    ax.set_ylabel("facts gained over closed-book (EM gain x trained items)")
    ax.set_title("trained facts lora added, answered in a never-trained wording", fontsize=9)
    ax.legend(fontsize=7)
    return [_save(fig, results_dir / PLOT)]


def _log_x(ax, xs, null_formatter) -> None:
    ax.set_xscale("log")
    ticks = sorted({round(x) for x in xs.dropna()})
    if ticks:
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(null_formatter())
    ax.set_xlabel("trained QA items (log)")
    ax.grid(alpha=0.3)


# -- report ----------------------------------------------------------------------------------------

def curve_markdown(curve: pd.DataFrame) -> list[str]:
    """One row per arm and setting: EM and seed-paired gain over closed-book on both sets."""
    def ci(g, metric, eval_set) -> str:
        r = g[(g["metric"] == metric) & (g["eval_set"] == eval_set)]
        return fmt_ci(*r[["mean", "ci_low", "ci_high"]].iloc[0]) if len(r) else ""

    lines = ["| arm | paraphrases | trained items | EM trained facts, reworded | gain vs closed-book "
             "| EM trained facts, trained wording | EM held-out test facts | gain vs closed-book |",
             "|---|---|---|---|---|---|---|---|"]
    keyed = curve.assign(_size=curve["size"].fillna(-1))
    for (arm, aug, variant, size), g in keyed.groupby(["arm", "augmentation", "variant", "_size"], sort=False,
                                                       dropna=False):
        if size == -1:
            lines.append(f"| {arm} | | reference | {ci(g, 'exact_match', 'reworded')} | "
                         f"| {ci(g, 'exact_match', 'trained')} | {ci(g, 'exact_match', 'test')} | |")
            continue
        lines.append(f"| {arm} | {'yes' if aug else 'no'}{VARIANTS[variant or '']} | {g['trained_items'].iloc[0]:.0f} | "
                     f"{ci(g, 'exact_match', 'reworded')} | {ci(g, 'em_gain_vs_closed_book', 'reworded')} | "
                     f"{ci(g, 'exact_match', 'trained')} | {ci(g, 'exact_match', 'test')} | "
                     f"{ci(g, 'em_gain_vs_closed_book', 'test')} |")
    return lines + ["", EM_LEGEND]


def report_md(cfg, s, out: Path, quick: bool) -> str:
    cells = load_cells(out)
    curve = curve_table(cells)
    steps_txt = steps_text(cells[cells["kind"] == "lora"])
    lo = next(a for a in cfg.arms if a.arm == "lora").settings
    md = [f"# data-scaling: {cfg.claim.strip()}", "", cfg.description.strip(), "",
          "## What was measured", "",
          f"- Model `{cfg.model.name}`, world of {cfg.data.world.entities if cfg.data.world else '?'} people, "
          f"seeds {list(cfg.seeds)} (each a fresh world and fresh adapters){', --quick' if quick else ''}.",
          f"- Sweep: {len(s.sizes)} sizes {sorted(s.sizes)} of train-split QA items x paraphrase augmentation "
          f"{[bool(a) for a in s.augmentation]}; one adapter per (size, augmentation, seed), shared by lora and hybrid. "
          f"Recipe otherwise the accuracy experiment's: documents + QA + reading replay, LoRA r={lo.lora.rank}, "
          f"batch {lo.lora.batch_size}, lr {lo.lora.lr}, replay_share {lo.lora.replay_share}.",
          f"- Steps: epochs x training examples (documents + QA) / rows per step, epochs = {s.epochs:g}, clamped to "
          f"[{s.min_steps}, {s.max_steps}] (the accuracy adapters train 300 steps, ~3 passes): {steps_txt}.",
          "- Held-out wording: every train item's last paraphrase is never trained; with augmentation an item "
          "trains in its two other wordings, without in its canonical question only.",
          f"- `reworded`: {EVAL_SETS['reworded']} (all trained items, at most {s.reworded_items} per setting and seed). "
          f"`trained`: {EVAL_SETS['trained']}, for contrast. `test`: {EVAL_SETS['test']} "
          f"({s.test_items} per seed). References closed_book and rag answer the same "
          "items; gains are seed-paired differences on identical items.",
          "- Exact match in %, mean over seeds with a 95% t-interval (n = seeds).", "",
          f"![learning curves]({PLOT})", "", *curve_markdown(curve), "",
          *diagnosis_lines(cells), "## Verdicts", "", markdown_rows(claims(out)), "",
          "## Reading the numbers", "",
          "- EM on trained facts is a per-fact rate over the n facts trained: at a fixed number of passes it can "
          "fall as n grows while the number of facts the adapter adds (EM gain x n, last panel of the plot) rises.",
          f"- With {len(cfg.seeds)} seeds the 95% t-interval is the mean +- {_t95(len(cfg.seeds)):.1f} standard "
          "errors, and it collapses to a point when every seed gives the same value (the suite's `mean_ci`); "
          "the verdicts use exactly these intervals.", ""]
    return "\n".join(md) + "\n"


def steps_text(lora: pd.DataFrame) -> str:
    """Mean steps and training examples per setting (size, augmentation, variant), over seeds: a
    variant (the recipe, the checks) trains far longer than the plain point of the same size, so
    each is its own entry rather than blended into the plain one."""
    steps = lora.groupby(["size", "augmentation", "variant"], sort=False)[
        ["steps", "train_qa_examples", "train_examples"]].mean()
    return "; ".join(f"n={int(n)}{'+para' if a else ''}{VARIANTS[v]}: {r['steps']:.0f} steps "
                     f"({r['train_qa_examples']:.0f} QA + {r['train_examples'] - r['train_qa_examples']:.0f} "
                     f"documents)" for (n, a, v), r in steps.iterrows())


def diagnosis_lines(cells: pd.DataFrame) -> list[str]:
    """Why EM on trained facts falls as n grows: at the largest size, the plain adapter against
    3x the passes and against 4x the rank (seed-paired, trained facts reworded and as trained)."""
    from bench.report.tables import mean_ci, paired

    lora = cells[(cells["kind"] == "lora")]
    checks = lora[lora["variant"].isin(["passes", "rank"])]
    if checks.empty:
        return []
    n, aug = int(checks["size"].iloc[0]), bool(checks["augmentation"].iloc[0])
    at = lora[(lora["size"] == n) & (lora["augmentation"] == aug)]
    out = [f"## Why EM falls as n grows: passes or capacity? (n={n}{', with paraphrases' if aug else ''})", "",
           "| adapter | steps | rank | EM reworded | EM as trained | EM held-out test | vs plain, reworded |",
           "|---|---|---|---|---|---|---|"]
    for variant in ("", "passes", "rank"):
        g = at[at["variant"] == variant]
        if g.empty:
            continue
        em = lambda e: fmt_ci(*mean_ci(g[g["eval_set"] == e]["exact_match"].tolist())[:3])
        diff = ""
        if variant:
            r = at[at["eval_set"] == "reworded"]
            d = paired(r[r["variant"].isin(["", variant])], variant, "", "exact_match", by="variant")
            diff = f"{fmt_ci(*d[:3])} points"
        first = g.iloc[0]
        out.append(f"| plain{VARIANTS[variant]} | {first['steps']:.0f} | {first['rank']:.0f} | {em('reworded')} | "
                   f"{em('trained')} | {em('test')} | {diff} |")
    return out + ["", "Three times the passes (the step cap raised with them) tests under-training; four times "
                  "the rank at the same steps tests the adapter's capacity. Seed-paired differences on the "
                  "same items, 95% CI.", ""]


def _t95(n: int) -> float:
    from scipy import stats
    return float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")
