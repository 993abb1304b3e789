"""hallucination: answerable and unanswerable questions through every arm, and the Gekhman sweep.

Claims tested: "RAG grounds facts, fine-tuning hallucinates outside its training data", and
Gekhman et al. 2024: fine-tuning longer on facts the model could not know raises hallucination.

Every arm answers all test questions of the world (held-out answerable facts, questions about
people who are not in the world, questions about attributes a person does not have) and the
train-split questions (the facts LoRA was fine-tuned on as QA). Per (arm, seed) cell:

- hallucination rate: the answer asserts something (does not abstain) and is not the gold one;
  on all test questions, on the answerable and on the unanswerable ones, and on trained facts;
- abstention rate on unanswerable questions (wanted) and on answerable ones (over-refusal);
- faithfulness (share of answer tokens found in the retrieved text) and citation accuracy (the
  top-1 retrieved chunk contains a sentence stating the gold fact), for retrieving arms only:
  without retrieval both are not applicable (NaN with a reason), never 0.

The Gekhman sweep trains the `lora` arm for each of `gekhman_steps` (same data and settings
otherwise; the arm's own step count is the accuracy experiment's adapter, reused) and measures
hallucination on held-out answerable facts and on unanswerable questions after each.
Means over seeds with 95% t-intervals; `claims()` and `redraw()` read only the saved CSVs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.config import CACHE_DIR, ConfigError
from bench.metrics.scores import Metric
from bench.report import plots
from bench.report.claims import (NOT_RUN, Claim, fmt_ci, interval_verdict, markdown_rows, not_run,
                                 results_present)
from bench.report.tables import arm_of_kind, paired, summarize_long
from bench.report.tables import ci_of as _ci
from bench.studies.common import load_study, write_csv, write_text
from bench.studies.shrink import shrink, with_lora_steps

EXPERIMENT = "hallucination"
GROUNDING_TEXT = "RAG grounds facts; fine-tuning hallucinates outside its training data"
GEKHMAN_TEXT = ("Training longer on facts the model could not know raises hallucination "
                "(Gekhman et al. 2024)")
SEEDS_CSV, GEKHMAN_CSV = "seeds.csv", "gekhman_seeds.csv"
UNANSWERABLE_KINDS = ("unknown_entity", "missing_attribute")
# differences of the held-out hallucination rate smaller than this (a share) count as no change:
# with two seeds a t-interval can be spuriously narrow around a sub-point difference
GEKHMAN_MIN_EFFECT = 0.01


@dataclass(frozen=True)
class Settings:
    gekhman_arm: str = "lora"                       # the arm (kind lora) whose steps are swept
    gekhman_steps: tuple[int, ...] = (100, 300, 400)
    gekhman_seeds: tuple[int, ...] = (0, 1)
    # overrides of the experiment sections (None = as in the YAML; used by `quick:`)
    entities: int | None = None
    lora_steps: int | None = None
    seeds: tuple[int, ...] | None = None
    max_items: int | None = None

    def validate(self, where: str) -> None:
        steps = list(self.gekhman_steps)
        if len(steps) < 2 or min(steps) < 1 or steps != sorted(set(steps)):
            raise ConfigError(f"{where}.gekhman_steps: expected at least two increasing step counts >= 1, "
                              f"got {steps}")
        if not self.gekhman_seeds or len(set(self.gekhman_seeds)) != len(self.gekhman_seeds):
            raise ConfigError(f"{where}.gekhman_seeds: expected distinct seeds, got {list(self.gekhman_seeds)}")
        for key in ("entities", "lora_steps", "max_items"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")


# -- citation accuracy: a pure metric with its needs declared ---------------------------------

def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def citation_na_reason(retrieved_ids, gold_ids) -> str:
    """Why citation accuracy is undefined for this item ("" when it is defined)."""
    if _missing(retrieved_ids):
        return "arm does not retrieve"
    if _missing(gold_ids) or len(gold_ids) == 0:
        return "unanswerable: no gold fact to cite"
    return ""


def citation_accuracy(retrieved_ids, gold_ids) -> float:
    """1.0 if the top-1 retrieved chunk's passage ids include a gold passage (a sentence stating
    the fact), 0.0 if not (or if nothing was retrieved), NaN when not applicable."""
    if citation_na_reason(retrieved_ids, gold_ids):
        return math.nan
    if len(retrieved_ids) == 0:
        return 0.0
    return float(bool(set(retrieved_ids[0]) & set(gold_ids)))


CITATION = Metric("citation_accuracy", citation_accuracy, ("retrieved_ids", "gold_ids"),
                  "1 if the top retrieved chunk contains a gold passage; NaN without retrieval or gold")


# -- per (arm, seed) rates ---------------------------------------------------------------------

# name -> (item subset, per-item column, what it means)
RATES: dict[str, tuple[str, str, str]] = {
    "hallucination_rate": ("test", "hallucinated", "all test questions"),
    "hallucination_answerable": ("answerable", "hallucinated", "held-out answerable facts"),
    "hallucination_unanswerable": ("unanswerable", "hallucinated", "unanswerable questions"),
    "hallucination_unknown_entity": ("unknown_entity", "hallucinated", "questions about unknown people"),
    "hallucination_missing_attribute": ("missing_attribute", "hallucinated", "questions about missing attributes"),
    "hallucination_trained": ("trained", "hallucinated", "train-split facts (LoRA's QA training data)"),
    "abstention_unanswerable": ("unanswerable", "abstained", "unanswerable questions"),
    "abstention_answerable": ("answerable", "abstained", "held-out answerable facts"),
    "exact_match_answerable": ("answerable", "exact_match", "held-out answerable facts"),
    "exact_match_trained": ("trained", "exact_match", "train-split facts"),
    "faithfulness": ("test", "faithfulness", "all test questions the arm answered"),
    "citation_accuracy": ("answerable", "citation_accuracy", "held-out answerable facts"),
}
NA_REASON_COLUMN = {"faithfulness": "faithfulness_na", "citation_accuracy": "citation_na"}
GEKHMAN_METRICS = ["hallucination_answerable", "hallucination_unanswerable", "abstention_unanswerable",
                   "hallucination_trained", "exact_match_trained", "exact_match_answerable"]


def _subsets(cell: pd.DataFrame) -> dict[str, pd.DataFrame]:
    test = cell[cell["split"] == "test"]
    return {"test": test,
            "answerable": test[test["kind"] == "answerable"],
            "unanswerable": test[test["kind"].isin(UNANSWERABLE_KINDS)],
            "unknown_entity": test[test["kind"] == "unknown_entity"],
            "missing_attribute": test[test["kind"] == "missing_attribute"],
            "trained": cell[(cell["split"] == "train") & (cell["kind"] == "answerable")]}


def add_citation(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["citation_accuracy"] = [citation_accuracy(r, g) for r, g in zip(table["retrieved_ids"], table["gold_ids"])]
    table["citation_na"] = [citation_na_reason(r, g) for r, g in zip(table["retrieved_ids"], table["gold_ids"])]
    return table


def seed_metrics(table: pd.DataFrame, metrics=tuple(RATES)) -> pd.DataFrame:
    """Scored per-item table -> one row per (arm, seed, metric): value, items it averages over,
    and na_reason (why the value is NaN, "" when it is a number)."""
    if {"retrieved_ids", "gold_ids"} <= set(table.columns):   # recomputed: a pure function of the row
        table = add_citation(table)
    rows = []
    for (arm, seed), cell in table.groupby(["arm", "seed"], sort=False):
        kind = cell["arm_kind"].iloc[0] if "arm_kind" in cell else arm
        subsets = _subsets(cell)
        for name in metrics:
            subset, column, _ = RATES[name]
            items = subsets[subset]
            values = items[column].astype(float)
            defined = values.dropna()
            reason = ""
            if not len(items):
                reason = f"no {subset} items evaluated"
            elif not len(defined):
                reasons = items[NA_REASON_COLUMN[column]] if column in NA_REASON_COLUMN else []
                reason = Counter(reasons).most_common(1)[0][0] if len(reasons) else "undefined"
            rows.append({"arm": arm, "arm_kind": kind, "seed": int(seed), "metric": name,
                         "value": float(defined.mean()) if len(defined) else math.nan,
                         "items": int(len(defined)), "na_reason": reason})
    return pd.DataFrame(rows, columns=["arm", "arm_kind", "seed", "metric", "value", "items", "na_reason"])


def summarize(seeds: pd.DataFrame, by: str = "arm") -> pd.DataFrame:
    """Long form (arm, metric, mean, ci_low, ci_high, n): mean over seeds, 95% t-interval,
    n = seeds with a defined value (0 and NaN mean when not applicable)."""
    return summarize_long(seeds, by)


# -- claims and plots from saved tables --------------------------------------------------------

def _pct(summary: pd.DataFrame, key, metric: str, by: str = "arm") -> str:
    return fmt_ci(*_ci(summary, key, metric, by)[:3], unit="%")


def _points(m, lo, hi, n) -> str:
    if math.isnan(m):
        return "n/a"
    return f"{100 * m:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] points (n={n} seeds)"


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


# -- the run -----------------------------------------------------------------------------------

def gekhman_arm(cfg, s: Settings, source) -> object:
    hit = [a for a in cfg.arms if a.name == s.gekhman_arm]
    if not hit or hit[0].arm != "lora":
        raise ConfigError(f"{source}: study.gekhman_arm: '{s.gekhman_arm}' is not an arm of kind lora "
                          f"in arms {[a.name for a in cfg.arms]}")
    return hit[0]


def sweep_plan(cfg, s: Settings, arm):
    """(config of the sweep cells still to run, steps reused from the main run's arm)."""
    base = arm.settings.lora.steps
    reuse = base in s.gekhman_steps and set(s.gekhman_seeds) <= set(cfg.seeds)
    arms = tuple(with_lora_steps(arm, st, sweep_label(arm.name, st)) for st in s.gekhman_steps
                 if not (reuse and st == base))
    return dataclasses.replace(cfg, arms=arms, seeds=tuple(s.gekhman_seeds)), base if reuse else None


def sweep_label(name: str, steps: int) -> str:
    return f"{name}@{steps}steps"


def run(config: Path, out: Path, quick: bool = False, progress: bool = True,
        cache_dir: Path = CACHE_DIR) -> Path:
    from bench.report.manifest import write_manifest
    from bench.runner import run_experiment

    start = time.perf_counter()
    cfg, s = load_study(config, Settings, quick)
    cfg = shrink(cfg, entities=s.entities, lora_steps=s.lora_steps, seeds=s.seeds, max_items=s.max_items)
    arm = gekhman_arm(cfg, s, config)
    sweep_cfg, reused = sweep_plan(cfg, s, arm)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    table, cells = run_experiment(cfg, out, cache_dir, progress=progress)
    t_main = time.perf_counter() - start
    cells = cells.assign(steps=lambda d: [
        a.settings.lora.steps if hasattr(a.settings, "lora") else None for a in cfg.arms for _ in cfg.seeds])
    parts, sweep_cells = [], pd.DataFrame()
    if sweep_cfg.arms:
        sweep_table, sweep_cells = run_experiment(sweep_cfg, out, cache_dir, progress=progress)
        parts.append(sweep_table)
        sweep_cells = sweep_cells.assign(steps=lambda d: [
            a.settings.lora.steps for a in sweep_cfg.arms for _ in sweep_cfg.seeds])
    if reused is not None:
        parts.append(table[(table["arm"] == arm.name) & table["seed"].isin(s.gekhman_seeds)]
                     .assign(arm=sweep_label(arm.name, reused)))
    sweep = pd.concat(parts, ignore_index=True)
    steps_of = {sweep_label(arm.name, st): st for st in s.gekhman_steps}

    seeds = seed_metrics(table)
    g = seed_metrics(sweep, GEKHMAN_METRICS)
    g.insert(0, "steps", g["arm"].map(steps_of))
    g = g.drop(columns=["arm", "arm_kind"]).sort_values(["steps", "seed"], kind="stable")
    summary = pd.concat([summarize(seeds),
                         summarize(g.assign(arm=g["steps"].map(lambda st: sweep_label(arm.name, st))))],
                        ignore_index=True)
    write_csv(seeds, out / SEEDS_CSV)
    write_csv(g, out / GEKHMAN_CSV)
    write_csv(summary, out / "summary.csv")
    all_cells = pd.concat([cells, sweep_cells], ignore_index=True)
    write_csv(all_cells, out / "cells.csv")
    timings = {"total": round(time.perf_counter() - start, 1), "main_run": round(t_main, 1),
               "gekhman_sweep": round(time.perf_counter() - start - t_main, 1)}
    redraw(out)
    found = claims(out)
    report = write_text(report_md(cfg, s, quick, seeds, g, all_cells, found, timings), out / "report.md")
    write_manifest(out / "manifest.json", cfg.name, {"experiment": cfg.to_json(), "study": asdict(s)},
                   cfg.source, timings, {"quick": quick,
                                         "verdicts": {c.id: c.verdict for c in found}})
    return report


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


def report_md(cfg, s: Settings, quick: bool, seeds: pd.DataFrame, g: pd.DataFrame, cells: pd.DataFrame,
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
          "![hallucination](hallucination.png)", "", *table, "",
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
