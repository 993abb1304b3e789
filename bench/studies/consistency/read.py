"""consistency, the reading half: per-(arm, seed, temperature, split) cells -> summary (means
over seeds with 95% t-intervals; the SD of exact match across seeds with a chi-square interval
and across temperatures per seed, then a t-interval), claims, the plot and report.md. Saved
tables only; no model code.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from bench.metrics.scores import EM_LEGEND
from bench.report.claims import ONE_SEED_VERDICT, Claim, fmt_ci, interval_verdict, markdown_rows, not_run, results_present
from bench.report.plots import _save
from bench.report.tables import arm_of_kind, mean_ci, paired, seed_ci


EXPERIMENT = "consistency"
CLAIM_TEXT = "Fine-tuning gives consistent output while RAG varies with retrieval"
TRAINED_TEXT = ("Fine-tuning gives consistent output while RAG varies with retrieval "
                "(facts in the fine-tuning data)")
RETRIEVAL_TEXT = "RAG's answers vary with retrieval: a different top chunk for another wording changes the answer"
CELLS_CSV, SUMMARY_CSV, PLOT = "cells.csv", "summary.csv", "consistency.png"
GROUP_METRICS = ("agree_all", "pairwise_agree", "all_correct", "agree_given_any_correct",
                 "exact_match", "abstained", "top_chunk_differs", "gold_hit_differs",
                 "agree_same_top", "agree_diff_top")
RETRIEVAL_ONLY = ("top_chunk_differs", "gold_hit_differs", "agree_same_top", "agree_diff_top")


# -- the summary ------------------------------------------------------------------------------
CELL_KEYS = ["arm", "arm_kind", "seed", "temperature", "split"]
SPLITS = {"test": "held-out facts (test split)", "train": "facts in the fine-tuning data (train split)"}


def t_label(t: float) -> str:
    return f"T{float(t):g}"


def metric_name(split: str, metric: str, t: float | None = None) -> str:
    """'test:agree_all@T0' (per temperature) or 'test:top_chunk_differs' (temperature-free)."""
    return f"{split}:{metric}" + ("" if t is None else f"@{t_label(t)}")


def _splits(cells: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(cells["split"]))
    return [s for s in SPLITS if s in present] + [s for s in present if s not in SPLITS]


def sd_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Sample SD of independent values and its chi-square interval (NaN for fewer than 2)."""
    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=float)
    n = len(v)
    if n < 2:
        return math.nan, math.nan, math.nan, n
    s = float(v.std(ddof=1))
    lo = s * math.sqrt((n - 1) / stats.chi2.ppf((1 + confidence) / 2, n - 1))
    hi = s * math.sqrt((n - 1) / stats.chi2.ppf((1 - confidence) / 2, n - 1))
    return s, lo, hi, n


def exact_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells as the measuring half computed them, from a cells.csv saved with 6 significant
    digits (the runs before the study driver saved it so): every cell value is a share with a
    denominator of at most 3 x n_groups (questions, paraphrase pairs or items of three wordings),
    and exactly one such fraction rounds to the saved digits. Values saved in full are kept."""
    def exact(value, n_groups):
        saved = f"{value:.6g}"
        if math.isnan(value) or float(saved) != value:
            return value
        share = float(Fraction(value).limit_denominator(3 * int(n_groups)))
        return share if f"{share:.6g}" == saved else value

    return cells.assign(**{m: [exact(v, n) for v, n in zip(cells[m].astype(float), cells["n_groups"])]
                           for m in GROUP_METRICS if m in cells})


def derived_tables(results_dir: Path) -> dict[str, pd.DataFrame]:
    """summary.csv, from the saved cells."""
    return {SUMMARY_CSV: summarize(exact_cells(pd.read_csv(Path(results_dir) / CELLS_CSV)))}


def summarize(cells: pd.DataFrame) -> pd.DataFrame:
    """Long form (arm, metric, mean, ci_low, ci_high, n), metric = '<split>:<name>@T<t>': every
    cell metric per split and temperature, retrieval variance once per split (from the lowest
    temperature: retrieval does not sample), and the SD of exact match across seeds (per
    temperature, chi-square CI) and across temperatures (per seed, then a t-interval)."""
    rows = []

    def add(arm, metric, stat):
        m, lo, hi, n = stat
        rows.append({"arm": arm, "metric": metric, "mean": m, "ci_low": lo, "ci_high": hi, "n": n})

    temps = sorted(cells["temperature"].unique())
    for split in _splits(cells):
        for arm, a in cells[cells["split"] == split].groupby("arm", sort=False):
            for t in temps:
                c = a[a["temperature"] == t]
                for metric in GROUP_METRICS:
                    if metric not in RETRIEVAL_ONLY:
                        add(arm, metric_name(split, metric, t), mean_ci(c[metric].tolist()))
            base = a[a["temperature"] == temps[0]]
            if base["top_chunk_differs"].notna().any():
                for metric in RETRIEVAL_ONLY:
                    add(arm, metric_name(split, metric), mean_ci(base[metric].tolist()))
            for t in temps:
                add(arm, metric_name(split, "em_sd_over_seeds", t),
                    sd_ci(a[a["temperature"] == t]["exact_match"].tolist()))
            if len(temps) > 1:
                per_seed = a.groupby("seed")["exact_match"].std(ddof=1)
                add(arm, metric_name(split, "em_sd_over_temperatures"), mean_ci(per_seed.tolist()))
    out = pd.DataFrame(rows, columns=["arm", "metric", "mean", "ci_low", "ci_high", "n"])
    order = {arm: i for i, arm in enumerate(dict.fromkeys(cells["arm"]))}
    return out.sort_values("arm", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


# -- claims and plots from saved tables -------------------------------------------------------
def verdict(lo: float, hi: float, n: int) -> str:
    """interval_verdict, but one seed gives no interval: inconclusive."""
    return interval_verdict(lo, hi) if n >= 2 else ONE_SEED_VERDICT


def _ci(cells: pd.DataFrame, arm: str, metric: str) -> str:
    return fmt_ci(*seed_ci(cells, arm, metric)[:3])


def _agreement_claim(cells: pd.DataFrame, split: str, claim_id: str, text: str) -> Claim:
    lora, rag = arm_of_kind(cells, "lora"), arm_of_kind(cells, "rag")
    if not (lora and rag):
        return not_run(claim_id, text, EXPERIMENT)
    t = t_label(cells["temperature"].iloc[0])
    m, lo, hi, n = paired(cells, lora, rag, "agree_all")
    measured = (f"{SPLITS.get(split, split)}, all paraphrases agree ({t}): {lora} "
                f"{_ci(cells, lora, 'agree_all')}% vs {rag} {_ci(cells, rag, 'agree_all')}%; {lora} - {rag}: "
                f"{fmt_ci(m, lo, hi)} pp (n={n} seeds). Consistent and correct: {lora} "
                f"{_ci(cells, lora, 'all_correct')}% vs {rag} {_ci(cells, rag, 'all_correct')}%")
    return Claim(claim_id, text, EXPERIMENT, measured, verdict(lo, hi, n),
                 f"95% CI over seeds of ({lora} - {rag}) share of {split} questions whose normalised "
                 f"answers agree across all paraphrases ({t}, greedy): above 0 -> supported, below 0 "
                 f"-> contradicted, else (or with fewer than 2 seeds) inconclusive")


def claims(results_dir: Path) -> list[Claim]:
    """consistency (held-out facts, the headline), consistency.trained (facts the adapter was
    trained on) and consistency.retrieval (the mechanism), from cells.csv alone."""
    results_dir = Path(results_dir)
    ids = [(EXPERIMENT, CLAIM_TEXT), (f"{EXPERIMENT}.trained", TRAINED_TEXT),
           (f"{EXPERIMENT}.retrieval", RETRIEVAL_TEXT)]
    if not results_present(results_dir, CELLS_CSV):
        return [not_run(i, text, EXPERIMENT) for i, text in ids]
    cells = pd.read_csv(results_dir / CELLS_CSV)
    greedy = cells[cells["temperature"] == cells["temperature"].min()]
    out = []
    for (claim_id, text), split in zip(ids[:2], ("test", "train")):
        part = greedy[greedy["split"] == split]
        out.append(_agreement_claim(part, split, claim_id, text) if len(part) else
                   not_run(claim_id, text, EXPERIMENT))
    test = greedy[greedy["split"] == "test"]
    rag = arm_of_kind(test, "rag") if len(test) else None
    r = test[test["arm"] == rag] if rag else test.iloc[:0]
    if len(r) and r["top_chunk_differs"].notna().any():
        t = t_label(r["temperature"].iloc[0])
        m, lo, hi, n = mean_ci((r["agree_same_top"] - r["agree_diff_top"]).dropna().tolist())
        measured = (f"{rag}, held-out facts: top chunk differs across paraphrases for "
                    f"{_ci(r, rag, 'top_chunk_differs')}% of questions (gold hit differs for "
                    f"{_ci(r, rag, 'gold_hit_differs')}%); answers agree {_ci(r, rag, 'agree_same_top')}% "
                    f"with the same top chunk vs {_ci(r, rag, 'agree_diff_top')}% with differing ones; "
                    f"difference {fmt_ci(m, lo, hi)} pp (n={n} seeds)")
        out.append(Claim(ids[2][0], RETRIEVAL_TEXT, EXPERIMENT, measured, verdict(lo, hi, n),
                         f"95% CI over seeds of {rag}'s agreement (all paraphrases, {t}, test) on "
                         f"questions whose top chunk is the same for every wording minus on those "
                         f"where it differs: above 0 -> supported, below 0 -> contradicted, else (or "
                         f"with fewer than 2 seeds) inconclusive"))
    else:
        out.append(not_run(*ids[2], EXPERIMENT))
    return out


def _bars(ax, cells: pd.DataFrame, arms, temps, metric: str, title: str) -> None:
    width = 0.8 / len(temps)
    for i, t in enumerate(temps):
        st = [mean_ci(cells[(cells["arm"] == a) & (cells["temperature"] == t)][metric].tolist()) for a in arms]
        mean = np.array([s[0] for s in st])
        err = np.array([[s[0] - s[1] for s in st], [s[2] - s[0] for s in st]])
        xs = np.arange(len(arms)) + (i - (len(temps) - 1) / 2) * width
        ax.bar(xs, np.nan_to_num(mean), width, yerr=np.nan_to_num(err), capsize=3,
               label="greedy" if t == 0 else f"T={t:g}")
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels(arms)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of questions (95% CI)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, CELLS_CSV):
        return []
    cells = pd.read_csv(results_dir / CELLS_CSV)
    arms = list(dict.fromkeys(cells["arm"]))
    temps = sorted(cells["temperature"].unique())
    splits = _splits(cells)
    fig, axes = plt.subplots(1, len(splits) + 2, figsize=(5.2 * (len(splits) + 2), 4.5))
    for ax, split in zip(axes, splits):
        _bars(ax, cells[cells["split"] == split], arms, temps, "agree_all",
              f"all paraphrases agree: {SPLITS.get(split, split)}")
    _bars(axes[len(splits)], cells[cells["split"] == splits[0]], arms, temps, "all_correct",
          f"all paraphrases correct: {SPLITS.get(splits[0], splits[0])}")
    ax = axes[-1]
    for k, arm in enumerate(arms):
        for split, style in zip(splits, ("-", "--", ":")):
            c = cells[(cells["arm"] == arm) & (cells["split"] == split)]
            st = [mean_ci(c[c["temperature"] == t]["exact_match"].tolist()) for t in temps]
            mean = np.array([s[0] for s in st])
            ax.errorbar(temps, mean, yerr=[mean - [s[1] for s in st], [s[2] for s in st] - mean],
                        marker="o", capsize=3, linestyle=style, color=f"C{k}", label=f"{arm} ({split})")
    ax.set_xticks(temps)
    ax.set_xlabel("sampling temperature (0 = greedy)")
    ax.set_ylabel("exact match per paraphrase (95% CI)")
    ax.set_ylim(0, 1.05)
    ax.set_title("accuracy per temperature", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return [_save(fig, results_dir / PLOT)]


# -- report.md --------------------------------------------------------------------------------
def _table_md(summary: pd.DataFrame, split: str, temps) -> str:
    g = min(temps)
    cols = [(metric_name(split, "agree_all", g), "all agree"),
            (metric_name(split, "pairwise_agree", g), "pairwise agree"),
            (metric_name(split, "all_correct", g), "all correct"),
            (metric_name(split, "agree_given_any_correct", g), "agree given any correct"),
            (metric_name(split, "abstained", g), "abstained"),
            (metric_name(split, "top_chunk_differs"), "top chunk differs")]
    cols += [(metric_name(split, "agree_all", t), f"all agree {t_label(t)}") for t in sorted(temps)[1:]]
    cols += [(metric_name(split, "exact_match", t), f"EM {t_label(t)}") for t in sorted(temps)]
    cols += [(metric_name(split, "em_sd_over_seeds", g), f"EM SD seeds {t_label(g)}")]
    if len(temps) > 1:
        cols += [(metric_name(split, "em_sd_over_temperatures"), "EM SD temps")]
    lines = ["| arm | " + " | ".join(c[1] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for arm in dict.fromkeys(summary["arm"]):
        s = summary[summary["arm"] == arm].set_index("metric")
        vals = [fmt_ci(*s.loc[m, ["mean", "ci_low", "ci_high"]]) if m in s.index else "n/a" for m, _ in cols]
        lines.append(f"| {arm} | " + " | ".join(vals) + " |")
    return "\n".join(lines + ["", EM_LEGEND])


def report(results_dir: Path, cfg, timings: dict) -> str:
    """report.md from the saved tables, the run's config and the manifest's timings."""
    results_dir = Path(results_dir)
    summary = pd.read_csv(results_dir / SUMMARY_CSV)
    cells = pd.read_csv(results_dir / CELLS_CSV)
    temps = sorted(cells["temperature"].unique())
    n_groups = {split: int(c["n_groups"].median()) for split, c in cells.groupby("split")}
    md = [f"# consistency: {CLAIM_TEXT.lower()}?", "", cfg.description.strip(), "",
          f"Model `{cfg.model.name}`, seeds {list(cfg.seeds)} (each a fresh world and adapter), "
          f"questions per seed: {n_groups}, each asked in all its paraphrases; temperatures "
          f"{[float(t) for t in temps]} (0 = greedy; otherwise multinomial sampling at that "
          f"temperature, no top-k/top-p, seeded by the run seed). Arms and LoRA settings as in the "
          f"accuracy experiment. Numbers are % of questions (EM: % of paraphrase items), mean over "
          f"seeds [95% t-interval]; SDs are of per-seed exact match (chi-square interval across "
          f"seeds; across temperatures: per seed, then a t-interval).", "",
          f"![consistency]({PLOT})", ""]
    for split in _splits(cells):
        md += [f"## {SPLITS.get(split, split).capitalize()}", "", _table_md(summary, split, temps), ""]
    md += ["Columns: *all agree* = every wording gives the same normalised answer; *all correct* = "
           "every wording answered correctly; *agree given any correct* = all agree among questions "
           "that at least one wording got right; *top chunk differs* = the top retrieved passage is "
           "not the same for every wording.", "",
           "## Verdicts", "", markdown_rows(claims(results_dir)), "",
           f"Run time {timings.get('total', float('nan')):.0f} s."]
    return "\n".join(md) + "\n"
