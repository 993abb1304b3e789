"""format, the reading half: per-(arm, split, seed) cells -> summary (means over seeds with 95%
t-intervals), the claim, the plot and report.md, with the failure reasons and sample outputs the
measuring half kept. Saved tables only; no model code.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.metrics.scores import EM_LEGEND
from bench.report.claims import ONE_SEED_VERDICT, Claim, fmt_ci, interval_verdict, markdown_rows, not_run, results_present
from bench.report.plots import _save
from bench.report.tables import mean_ci, paired, seed_ci, summarize_wide


EXPERIMENT = "format"
CLAIM_TEXT = "Fine-tuning gives format-adherent output"
CELLS_CSV, SUMMARY_CSV, REASONS_CSV, EXAMPLES_CSV, PLOT = (
    "cells.csv", "summary.csv", "reasons.csv", "examples.csv", "format.png")
METRICS = ("valid_json", "schema_valid", "value_em", "em_plain")
CELL_KEYS = ["arm", "arm_kind", "format_source", "split", "seed"]
SPLITS = {"test": "held-out facts (test split)", "train": "facts in the fine-tuning data (train split)"}


def _splits(cells: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(cells["split"]))
    return [s for s in SPLITS if s in present] + [s for s in present if s not in SPLITS]


def exact_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells as the measuring half computed them: each metric is a share of the cell's
    n_items 0/1 scores, k / n_items exactly, which restores it from a cells.csv saved with 6
    significant digits (the runs before the study driver saved it so)."""
    return cells.assign(**{m: (cells[m] * cells["n_items"]).round() / cells["n_items"] for m in METRICS})


def derived_tables(results_dir: Path) -> dict[str, pd.DataFrame]:
    """summary.csv, from the saved cells."""
    return {SUMMARY_CSV: summarize(exact_cells(pd.read_csv(Path(results_dir) / CELLS_CSV)))}


def summarize(cells: pd.DataFrame) -> pd.DataFrame:
    """Long form (arm, metric, mean, ci_low, ci_high, n), metric = '<split>:<metric>'."""
    out = pd.concat([summarize_wide(cells[cells["split"] == split], METRICS, name=lambda m, s=split: f"{s}:{m}")
                     for split in _splits(cells)], ignore_index=True)
    order = {arm: i for i, arm in enumerate(dict.fromkeys(cells["arm"]))}
    return out.sort_values("arm", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


# -- claims and plots from saved tables -------------------------------------------------------
def _arm(cells: pd.DataFrame, kind: str, source: str) -> str | None:
    hit = cells[(cells["arm_kind"] == kind) & (cells["format_source"] == source)]["arm"]
    return hit.iloc[0] if len(hit) else None


def _ci(cells: pd.DataFrame, arm: str, metric: str) -> str:
    return fmt_ci(*seed_ci(cells, arm, metric)[:3])


def claims(results_dir: Path) -> list[Claim]:
    """The format claim on held-out (test) questions, from cells.csv alone."""
    results_dir = Path(results_dir)
    if not results_present(results_dir, CELLS_CSV):
        return [not_run(EXPERIMENT, CLAIM_TEXT, EXPERIMENT)]
    all_cells = pd.read_csv(results_dir / CELLS_CSV)
    cells = all_cells[all_cells["split"] == "test"]
    taught, prompted = _arm(cells, "lora", "fine-tuning"), _arm(cells, "rag", "prompt")
    if not (taught and prompted):
        return [not_run(EXPERIMENT, CLAIM_TEXT, EXPERIMENT)]
    m, lo, hi, n = paired(cells, taught, prompted, "schema_valid")
    measured = (f"held-out questions, schema-valid output: {taught} {_ci(cells, taught, 'schema_valid')}% "
                f"vs {prompted} {_ci(cells, prompted, 'schema_valid')}%; difference {fmt_ci(m, lo, hi)} pp "
                f"(n={n} seeds). Value exact match: {taught} {_ci(cells, taught, 'value_em')}% vs "
                f"{prompted} {_ci(cells, prompted, 'value_em')}% (its raw output as a plain answer: "
                f"{_ci(cells, prompted, 'em_plain')}%)")
    hybrid = _arm(cells, "hybrid", "fine-tuning")
    if hybrid:
        measured += (f"; {hybrid} (taught adapter + retrieval) schema-valid {_ci(cells, hybrid, 'schema_valid')}%, "
                     f"value EM {_ci(cells, hybrid, 'value_em')}%")
    train = all_cells[(all_cells["split"] == "train") & (all_cells["arm"] == taught)]
    if len(train):
        measured += (f"; on facts in its training data {taught} value EM "
                     f"{_ci(train, taught, 'value_em')}%")
    return [Claim(EXPERIMENT, CLAIM_TEXT, EXPERIMENT, measured,
                  interval_verdict(lo, hi) if n >= 2 else ONE_SEED_VERDICT,
                  f"95% CI over seeds of ({taught}, format taught by LoRA on JSON targets) minus "
                  f"({prompted}, format asked for in the prompt) schema-conforming output rate on "
                  f"held-out questions: above 0 -> supported, below 0 -> contradicted, else (or with "
                  f"fewer than 2 seeds) inconclusive")]


LABELS = {"valid_json": "valid JSON", "schema_valid": "schema-valid",
          "value_em": "value exact match", "em_plain": "raw output as plain answer (EM)"}


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, CELLS_CSV):
        return []
    cells = pd.read_csv(results_dir / CELLS_CSV)
    arms = list(dict.fromkeys(cells["arm"]))
    source = cells.drop_duplicates("arm").set_index("arm")["format_source"]
    splits = _splits(cells)
    fig, axes = plt.subplots(len(splits), 1, figsize=(1.6 * len(arms) + 3, 4.2 * len(splits)), squeeze=False)
    width = 0.8 / len(METRICS)
    for ax, split in zip(axes[:, 0], splits):
        part = cells[cells["split"] == split]
        for i, metric in enumerate(METRICS):
            st = [mean_ci(part.loc[part["arm"] == a, metric].tolist()) for a in arms]
            mean = np.array([s[0] for s in st])
            err = np.array([[s[0] - s[1] for s in st], [s[2] - s[0] for s in st]])
            xs = np.arange(len(arms)) + (i - (len(METRICS) - 1) / 2) * width
            ax.bar(xs, np.nan_to_num(mean), width, yerr=np.nan_to_num(err), capsize=3, label=LABELS[metric],
                   hatch="//" if metric == "em_plain" else None, alpha=0.6 if metric == "em_plain" else 1.0)
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels([f"{a}\n(format: {source[a]})" for a in arms], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of items (95% CI)")
        ax.set_title(f"JSON answers, format in the prompt vs taught by fine-tuning: "
                     f"{SPLITS.get(split, split)}", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(hspace=0.4)
    return [_save(fig, results_dir / PLOT)]


# -- report.md --------------------------------------------------------------------------------
def _table_md(summary: pd.DataFrame, cells: pd.DataFrame, split: str) -> str:
    source = cells.drop_duplicates("arm").set_index("arm")["format_source"]
    head = ["valid JSON", "schema-valid", "value EM", "raw EM (plain)"]
    lines = ["| arm | format from | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for arm in dict.fromkeys(summary["arm"]):
        s = summary[summary["arm"] == arm].set_index("metric")
        vals = [fmt_ci(*s.loc[f"{split}:{m}", ["mean", "ci_low", "ci_high"]]) if f"{split}:{m}" in s.index
                else "n/a" for m in METRICS]
        lines.append(f"| {arm} | {source.get(arm, '?')} | " + " | ".join(vals) + " |")
    return "\n".join(lines + ["", EM_LEGEND])


def _examples_md(results_dir: Path) -> list[str]:
    path = results_dir / EXAMPLES_CSV
    if not path.exists():
        return []
    ex = pd.read_csv(path, keep_default_na=False)
    lines = ["| arm | split | question | gold | output | reason |", "|---|---|---|---|---|---|"]
    for r in ex.itertuples():
        out = str(r.prediction).replace("|", "\\|") or "(empty)"
        lines.append(f"| {r.arm} | {r.split} | {r.question} | {r.gold} | `{out}` | {r.reason} |")
    return ["## Sample outputs (seed " + str(ex["seed"].min()) + ")", "", *lines, ""]


def report(results_dir: Path, cfg, s, timings: dict) -> str:
    """report.md from the saved tables, the run's config and settings and the manifest's timings."""
    results_dir = Path(results_dir)
    summary = pd.read_csv(results_dir / SUMMARY_CSV)
    cells = pd.read_csv(results_dir / CELLS_CSV)
    reasons = pd.read_csv(results_dir / REASONS_CSV) if (results_dir / REASONS_CSV).exists() else None
    n_items = {split: int(c["n_items"].median()) for split, c in cells.groupby("split")}
    md = [f"# format: {CLAIM_TEXT.lower()}?", "", cfg.description.strip(), "",
          f"Model `{cfg.model.name}`, seeds {list(cfg.seeds)}, questions per split and seed: "
          f"{n_items} (answerable and unanswerable; the gold of an unanswerable one is `unknown`), "
          f"up to {cfg.model.max_new_tokens} new tokens. Schema `{json.dumps(s.schema)}`, answer "
          f"key `{s.value_key}`. Numbers are % of items, mean over seeds [95% t-interval; with 2 "
          f"seeds the t quantile is 12.7, so intervals are wide].", "",
          f"![format]({PLOT})", ""]
    for split in _splits(cells):
        md += [f"## {SPLITS.get(split, split).capitalize()}", "", _table_md(summary, cells, split), ""]
    md += ["*valid JSON*: the whole output parses as one JSON value (a bare year such as `1843` "
           "is valid JSON, which is most of the prompt-only arms' share); *schema-valid*: it conforms "
           "to the schema; *value EM*: exact match of the value under the answer key (0 when not "
           "conforming); *raw EM (plain)*: the raw output scored as a plain answer, i.e. the "
           "knowledge without the format.", ""]
    if reasons is not None and len(reasons):
        md += ["## Why outputs fail (share of items, both splits, all seeds; top 3 per arm)", "",
               "| arm | reason | share |", "|---|---|---|"]
        for r in reasons.itertuples():
            md.append(f"| {r.arm} | {str(r.reason).replace('|', '/')} | {100 * r.share:.1f}% |")
        md.append("")
    md += _examples_md(results_dir)
    trained = timings.get("adapter_training_seconds")
    md += ["## Verdict", "", markdown_rows(claims(results_dir)), "",
           f"Run time {timings.get('total', float('nan')):.0f} s"
           + (f"; LoRA training of the adapters this config uses took {trained:.0f} s when each was "
              f"trained ({timings.get('adapters_trained_now', 0)} trained in this run, the others "
              f"came from the cache)." if trained is not None else ".")]
    return "\n".join(md) + "\n"
