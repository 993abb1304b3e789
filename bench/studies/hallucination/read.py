"""hallucination, the reading half: the per-(arm, seed) rates and the Gekhman sweep's -> summary,
claims, plots and report.md. Saved tables only; no model code.

Verdicts: grounding is supported when the 95% CI over seeds of the seed-paired lora - rag
hallucination rate on the test split lies above 0; the Gekhman claim when the CI of (longest -
shortest training) on held-out answerable facts lies above +GEKHMAN_MIN_EFFECT.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.metrics.scores import EM_LEGEND
from bench.report import plots
from bench.report.claims import (Claim, NOT_RUN, fmt_ci, interval_text, interval_verdict,
                                 markdown_rows, not_run, results_present)
from bench.report.tables import arm_of_kind, paired, summarize_long
from bench.report.tables import ci_of as _ci

EXPERIMENT = "hallucination"
GROUNDING_TEXT = "RAG grounds facts; fine-tuning hallucinates outside its training data"
GEKHMAN_TEXT = ("Training longer on facts the model could not know raises hallucination "
                "(Gekhman et al. 2024)")
SEEDS_CSV, GEKHMAN_CSV, CELLS_CSV = "seeds.csv", "gekhman_seeds.csv", "cells.csv"
# differences of the held-out hallucination rate smaller than this (a share) count as no change:
# with two seeds a t-interval can be spuriously narrow around a sub-point difference
GEKHMAN_MIN_EFFECT = 0.01


def summarize(seeds: pd.DataFrame, by: str = "arm") -> pd.DataFrame:
    """Long form (arm, metric, mean, ci_low, ci_high, n): mean over seeds, 95% t-interval,
    n = seeds with a defined value (0 and NaN mean when not applicable)."""
    return summarize_long(seeds, by)


def sweep_label(name: str, steps: int) -> str:
    return f"{name}@{steps}steps"


def exact_rates(seeds: pd.DataFrame) -> pd.DataFrame:
    """The per-seed rates as the measuring half computed them: a rate of 0/1 item scores is
    k/items exactly, which restores it from a table saved with 6 significant digits (the runs
    before the study driver saved seeds.csv so); faithfulness (a share per item) is kept as read."""
    rate = (seeds["metric"] != "faithfulness") & (seeds["items"] > 0)
    exact = (seeds["value"] * seeds["items"]).round() / seeds["items"]
    return seeds.assign(value=seeds["value"].where(~rate, exact))


def read_rates(path: Path) -> pd.DataFrame:
    return exact_rates(pd.read_csv(path))


def summary_table(seeds: pd.DataFrame, g: pd.DataFrame, swept: str) -> pd.DataFrame:
    """summary.csv: every arm's rates, then the sweep's as arms `<swept>@<steps>steps`."""
    return pd.concat([summarize(seeds), summarize(g.assign(arm=g["steps"].map(lambda st: sweep_label(swept, st))))],
                     ignore_index=True)


def derived_tables(results_dir: Path, swept: str) -> dict[str, pd.DataFrame]:
    """summary.csv, from the saved per-seed rates of the arms and of the sweep of arm `swept`."""
    results_dir = Path(results_dir)
    return {"summary.csv": summary_table(read_rates(results_dir / SEEDS_CSV), read_rates(results_dir / GEKHMAN_CSV),
                                         swept)}


# -- claims and plots from saved tables --------------------------------------------------------

def _pct(summary: pd.DataFrame, key, metric: str, by: str = "arm") -> str:
    return fmt_ci(*_ci(summary, key, metric, by)[:3], unit="%")


def _points(m, lo, hi, n) -> str:
    if math.isnan(m):
        return "n/a"
    return f"{interval_text(m, lo, hi, 100, '+.1f')} points (n={n} seeds)"


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    out = []
    if not results_present(results_dir, SEEDS_CSV):
        out.append(not_run(f"{EXPERIMENT}.grounding", GROUNDING_TEXT, EXPERIMENT))
    else:
        out.append(_grounding_claim(pd.read_csv(results_dir / SEEDS_CSV)))
    if not results_present(results_dir, GEKHMAN_CSV):
        out.append(not_run(f"{EXPERIMENT}.gekhman", GEKHMAN_TEXT, EXPERIMENT))
    else:
        out.append(_gekhman_claim(pd.read_csv(results_dir / GEKHMAN_CSV)))
    return out


def _grounding_claim(seeds: pd.DataFrame) -> Claim:
    rule = ("supported when the 95% CI over seeds of the seed-paired difference lora - rag in "
            "hallucination rate on the test split (held-out answerable facts + unanswerable "
            "questions) lies above 0; contradicted when it lies below 0; otherwise inconclusive")
    lora, rag = arm_of_kind(seeds, "lora"), arm_of_kind(seeds, "rag")
    if lora is None or rag is None:
        return Claim(f"{EXPERIMENT}.grounding", GROUNDING_TEXT, EXPERIMENT,
                     "the saved tables have no lora and rag arm", NOT_RUN, rule)
    s = summarize(seeds)
    diff = paired(seeds, lora, rag, "hallucination_rate")
    parts = [f"hallucination on test questions: {lora} {_pct(s, lora, 'hallucination_rate')}, "
             f"{rag} {_pct(s, rag, 'hallucination_rate')}; {lora} - {rag} = {_points(*diff)}",
             f"held-out answerable: {lora} {_pct(s, lora, 'hallucination_answerable')} vs "
             f"{rag} {_pct(s, rag, 'hallucination_answerable')}",
             f"unanswerable: {lora} {_pct(s, lora, 'hallucination_unanswerable')} vs "
             f"{rag} {_pct(s, rag, 'hallucination_unanswerable')}"]
    trained = _ci(s, lora, "hallucination_trained")
    if not math.isnan(trained[0]):
        parts.append(f"{lora} on its own trained facts: {fmt_ci(*trained[:3], unit='%')}")
    return Claim(f"{EXPERIMENT}.grounding", GROUNDING_TEXT, EXPERIMENT, "; ".join(parts),
                 interval_verdict(diff[1], diff[2]), rule)


def _gekhman_claim(g: pd.DataFrame) -> Claim:
    rule = (f"supported when the 95% CI over seeds of (hallucination rate on held-out answerable "
            f"test facts after the longest training - after the shortest), paired by seed, lies "
            f"above +{100 * GEKHMAN_MIN_EFFECT:.0f} point (the minimum effect counted: about 5 of "
            f"~500 items per seed); contradicted when it lies below -{100 * GEKHMAN_MIN_EFFECT:.0f} "
            f"point; otherwise inconclusive (the unanswerable rate is reported beside it)")
    steps = sorted(g["steps"].unique())
    if len(steps) < 2:
        return Claim(f"{EXPERIMENT}.gekhman", GEKHMAN_TEXT, EXPERIMENT,
                     "the sweep has fewer than two step counts", NOT_RUN, rule)
    s = summarize(g, by="steps")
    lo_s, hi_s = steps[0], steps[-1]
    diff = paired(g, hi_s, lo_s, "hallucination_answerable", by="steps")
    unans = paired(g, hi_s, lo_s, "hallucination_unanswerable", by="steps")
    curve = ", ".join(f"{st} steps {_pct(s, st, 'hallucination_answerable', 'steps')}"
                      for st in steps)
    parts = [f"hallucination on held-out answerable facts: {curve}; {hi_s} - {lo_s} steps = {_points(*diff)}",
             f"on unanswerable questions: {hi_s} - {lo_s} steps = {_points(*unans)}"]
    em_lo, em_hi = _ci(s, lo_s, "exact_match_trained", "steps"), _ci(s, hi_s, "exact_match_trained", "steps")
    if not math.isnan(em_lo[0]):
        parts.append(f"exact match on the trained facts: {fmt_ci(*em_lo[:3], unit='%')} after {lo_s} steps, "
                     f"{fmt_ci(*em_hi[:3], unit='%')} after {hi_s}")
    base = _ci(s, lo_s, "hallucination_answerable", "steps")[0]
    if base >= 0.95:
        parts.append(f"already {100 * base:.0f}% after {lo_s} steps: near the ceiling, so a rise can hardly show")
    return Claim(f"{EXPERIMENT}.gekhman", GEKHMAN_TEXT, EXPERIMENT, "; ".join(parts),
                 interval_verdict(diff[1], diff[2], GEKHMAN_MIN_EFFECT), rule)


BAR_METRICS = ["hallucination_answerable", "hallucination_unanswerable", "hallucination_trained",
               "abstention_unanswerable", "abstention_answerable", "faithfulness", "citation_accuracy"]


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    drawn = []
    if results_present(results_dir, SEEDS_CSV):
        seeds = pd.read_csv(results_dir / SEEDS_CSV)
        drawn.append(plots.grouped_bars(summarize(seeds), results_dir / "hallucination.png",
                                        "hallucination and abstention per arm (test split unless 'trained')",
                                        metrics=BAR_METRICS))
    if results_present(results_dir, GEKHMAN_CSV):
        drawn.append(plot_gekhman(pd.read_csv(results_dir / GEKHMAN_CSV), results_dir / "gekhman.png"))
    return drawn


def plot_gekhman(g: pd.DataFrame, path: Path) -> Path:
    s = summarize(g, by="steps")
    steps = sorted(g["steps"].unique())
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    lines = [("hallucination_answerable", "hallucination, held-out answerable facts", "-", "o"),
             ("hallucination_unanswerable", "hallucination, unanswerable questions", "-", "s"),
             ("exact_match_trained", "exact match, trained facts", "--", "^")]
    for metric, label, style, marker in lines:
        cis = [_ci(s, st, metric, "steps") for st in steps]
        if all(math.isnan(c[0]) for c in cis):
            continue
        ys = [100 * c[0] for c in cis]
        err = [[100 * (c[0] - c[1]) for c in cis], [100 * (c[2] - c[0]) for c in cis]]
        ax.errorbar(steps, ys, yerr=err, fmt=marker, linestyle=style, capsize=3, label=label)
    n = int(g["seed"].nunique())
    ax.set_xlabel("LoRA training steps")
    ax.set_xticks(steps)
    ax.set_ylim(-2, 102)
    ax.set_ylabel(f"% (mean over {n} seeds, 95% CI)")
    ax.set_title("Gekhman sweep: the LoRA arm trained longer")
    ax.legend(fontsize=8)
    return plots._save(fig, path)


def _cell(summary: pd.DataFrame, seeds: pd.DataFrame, arm: str, metric: str) -> str:
    m, lo, hi, _ = _ci(summary, arm, metric)
    if math.isnan(m):
        reasons = seeds[(seeds["arm"] == arm) & (seeds["metric"] == metric)]["na_reason"]
        return f"n/a ({reasons.iloc[0]})" if len(reasons) and reasons.iloc[0] else "n/a"
    return fmt_ci(m, lo, hi)


def _reading_notes(summary: pd.DataFrame, seeds: pd.DataFrame) -> list[str]:
    """What the table implies, with its numbers (computed, so a rerun cannot leave stale text)."""
    notes = []
    closed = [a for a in dict.fromkeys(seeds["arm"])
              if seeds[seeds["arm"] == a]["arm_kind"].iloc[0] in ("closed_book", "lora")]
    if closed:
        rates = ", ".join(f"{a} {_pct(summary, a, 'abstention_unanswerable')}" for a in closed)
        notes.append(f"- Without retrieval the model (base or adapted) almost never abstains on unanswerable "
                     f"questions ({rates}): the closed-book training targets are always a value (the train "
                     "split has only answerable questions), so every question it cannot answer becomes a "
                     "hallucination and the held-out rate sits near its ceiling whatever the training length.")
    notes.append("- Gekhman et al. measured how fine-tuning on unknown facts degrades answers about facts the "
                 "model already knew; the closest measurement here is the forgetting study "
                 "(background-world accuracy by LoRA steps, the same adapters as this sweep).")
    return notes


TABLE_COLUMNS = [("hallucination_rate", "halluc. all test"), ("hallucination_answerable", "halluc. held-out"),
                 ("hallucination_unanswerable", "halluc. unanswerable"),
                 ("hallucination_trained", "halluc. trained facts"),
                 ("abstention_unanswerable", "abstain unanswerable"),
                 ("abstention_answerable", "abstain answerable"),
                 ("exact_match_answerable", "EM held-out"), ("faithfulness", "faithfulness"),
                 ("citation_accuracy", "citation acc.")]


def report_md(cfg, s, quick: bool, seeds: pd.DataFrame, g: pd.DataFrame, cells: pd.DataFrame,
              found: list[Claim], timings: dict) -> str:
    summary = summarize(seeds)
    arms = list(dict.fromkeys(seeds["arm"]))
    counts = seeds[seeds["arm"] == arms[0]].groupby("metric")["items"].mean()
    table = ["| arm | " + " | ".join(label for _, label in TABLE_COLUMNS) + " |",
             "|---|" + "---|" * len(TABLE_COLUMNS)]
    table += [f"| {a} | " + " | ".join(_cell(summary, seeds, a, m) for m, _ in TABLE_COLUMNS) + " |"
              for a in arms]
    gs = summarize(g, by="steps")
    steps = sorted(int(x) for x in g["steps"].unique())
    sweep_cells = cells[(cells["arm"].str.contains("@", regex=False) | (cells["arm"] == s.gekhman_arm))
                        & cells["seed"].isin(g["seed"].unique())]
    gtable = ["| LoRA steps | halluc. held-out | halluc. unanswerable | abstain unanswerable | "
              "EM trained facts | EM held-out | train s (mean) |", "|---|---|---|---|---|---|---|"]
    for st in steps:
        secs = sweep_cells[sweep_cells["steps"] == st]["train_seconds"]
        gtable.append(f"| {st} | " + " | ".join(
            fmt_ci(*_ci(gs, st, m, "steps")[:3]) for m in ("hallucination_answerable",
                                                           "hallucination_unanswerable",
                                                           "abstention_unanswerable",
                                                           "exact_match_trained",
                                                           "exact_match_answerable"))
            + f" | {secs.mean():.0f} |")
    adapted = cells["adapter_cached"].dropna() if "adapter_cached" in cells else pd.Series(dtype=bool)
    cached = int(adapted.astype(bool).sum())
    world = cfg.data.world.entities if cfg.data.world else cfg.data.corpus
    md = [f"# hallucination: {cfg.claim.strip()}", "", cfg.description.strip(), "",
          f"Model `{cfg.model.name}`; synthetic world of {world} people, a fresh world per seed; seeds "
          f"{list(cfg.seeds)}{' (--quick)' if quick else ''}; every item of the splits {list(cfg.data.eval_splits)}"
          f"{'' if cfg.data.max_items is None else f' (at most {cfg.data.max_items} per split)'}. Items per "
          f"seed (mean): {counts.get('hallucination_answerable', 0):.0f} held-out answerable, "
          f"{counts.get('hallucination_unknown_entity', 0):.0f} about unknown people, "
          f"{counts.get('hallucination_missing_attribute', 0):.0f} about missing attributes (test split), "
          f"{counts.get('hallucination_trained', 0):.0f} trained facts (train split). "
          + ("--quick: a small world and short LoRA training." if quick else
             "Arms and LoRA settings as in experiments/accuracy.yaml, so the adapters are the accuracy "
             "experiment's."), "",
          "Hallucinated = the answer is not an abstention ('unknown', 'I don't know', ...) and not the gold "
          "answer (on unanswerable questions every assertion is one). Faithfulness = share of the answer's "
          "tokens found in the retrieved text (items with an answer). Citation accuracy = the top-1 "
          "retrieved chunk contains a sentence stating the gold fact (answerable items). Both are n/a for "
          "arms without retrieval. Percentages: mean over seeds [95% t-interval].", "",
          "![hallucination](hallucination.png)", "", *table, "", EM_LEGEND, "",
          f"## Gekhman sweep: `{s.gekhman_arm}` trained for {list(steps)} steps", "",
          f"Seeds {sorted(g['seed'].unique().tolist())}; same training data (documents, train-split "
          "questions with paraphrases, reading replay) and settings, only the number of steps changes. "
          "Every fact of the world is unknown to the base model; held-out facts are the test-split "
          "questions (their sentences are in the training documents, their questions are not).", "",
          "![gekhman](gekhman.png)", "", *gtable, "",
          "## Claims and verdicts", "", markdown_rows(found), "",
          "## Notes", "",
          *_reading_notes(summary, seeds),
          f"- Adapters: {cached} of {len(adapted)} adapted cells loaded from the cache (they keep the "
          "train seconds measured when they were trained).",
          f"- Timings: total {timings['total']:.0f} s (main run {timings['main_run']:.0f} s, sweep "
          f"{timings['gekhman_sweep']:.0f} s).",
          "- Tables: `seeds.csv` (arm, seed, metric, value, items, na_reason), `gekhman_seeds.csv`, "
          "`summary.csv` (long form; sweep rows as `lora@<steps>steps`), `cells.csv` (per-cell prepare stats)."]
    return "\n".join(md) + "\n"


def report(folder: Path, cfg, s, quick: bool, timings: dict) -> str:
    """report.md from the saved tables, the run's config and the manifest's timings."""
    return report_md(cfg, s, quick, read_rates(folder / SEEDS_CSV), read_rates(folder / GEKHMAN_CSV),
                     pd.read_csv(folder / CELLS_CSV), claims(folder), timings)
