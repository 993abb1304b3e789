"""freshness, the reading half: per-item answers -> per-(arm, seed) metrics -> summary with CIs
over seeds -> wide table, plot, verdicts (computed here from the table, rules stated) and
report.md. Saved tables only; no model code."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd

from bench.metrics.scores import EM_LEGEND
from bench.report.claims import (CONTRADICTED, Claim, INCONCLUSIVE, NOT_RUN, SUPPORTED, all_of,
                                 interval_text, markdown_rows, not_run, read_manifest,
                                 results_present)
from bench.report.tables import lookup, summarize_wide

EXPERIMENT = "freshness"
# the study's arms: `kind+update` -> what the update step does
ARMS = {"closed_book": "none (the base model; the floor)",
        "rag+upsert": "upsert changed chunks into the existing collection",
        "lora+retrain": "fresh adapter trained from scratch on v2 (same recipe as v1)",
        "lora+continue": "continue the v1 adapter on the changed facts only",
        "hybrid+upsert": "upsert only; the v1 adapter is kept",
        "hybrid+upsert+continue": "upsert, then continue the v1 adapter on the changed facts"}

PHASES = ("before", "after")
# summary.csv metrics, in order
METRICS = ["changed_em_before", "changed_em_after", "changed_gain", "stale_rate_before",
           "stale_rate_after", "unchanged_em_before", "unchanged_em_after", "update_seconds",
           "changed_em_before_train", "changed_em_after_train", "changed_em_before_test",
           "changed_em_after_test"]

# verdict rules (points = percentage points of exact match)
ABSORB_GAIN = 0.30        # an update "absorbs" the changes: changed-fact EM rises >= 30 points ...
ABSORB_STALE = 0.10       # ... and <= 10% of changed facts still get the v1 value after it
KEEP_UNCHANGED = 0.05     # ... and unchanged-fact EM moves by <= 5 points
COMPARABLE = 0.10         # a LoRA update is "comparable" to RAG within 10 points of its changed EM


def _mean(series: pd.Series) -> float:
    s = series.dropna()
    return float(s.mean()) if len(s) else math.nan


def cell_metrics(items: pd.DataFrame, cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (arm, seed). `items` has arm, seed, phase, group, split, em, stale
    (stale = EM against the v1 value, NaN on unchanged facts); `cells` adds update_seconds."""
    rows = []
    for (arm, seed), g in items.groupby(["arm", "seed"], sort=False):
        row = {"arm": arm, "seed": seed}
        for phase in PHASES:
            p = g[g["phase"] == phase]
            changed, same = p[p["group"] == "changed"], p[p["group"] == "unchanged"]
            row[f"changed_em_{phase}"] = _mean(changed["em"])
            row[f"stale_rate_{phase}"] = _mean(changed["stale"])
            row[f"unchanged_em_{phase}"] = _mean(same["em"])
            for split in ("train", "test"):
                row[f"changed_em_{phase}_{split}"] = _mean(changed[changed["split"] == split]["em"])
        row["changed_gain"] = row["changed_em_after"] - row["changed_em_before"]
        rows.append(row)
    out = pd.DataFrame(rows)
    if cells is not None and len(out):
        out = out.merge(cells[["arm", "seed", "update_seconds"]], on=["arm", "seed"], how="left")
    return out


def summarize(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Long form: arm, metric, mean, ci_low, ci_high, n (95% t-interval over seeds)."""
    return summarize_wide(per_seed, METRICS)


def value(summary: pd.DataFrame, arm: str, metric: str, col: str = "mean") -> float:
    return lookup(summary, arm, metric, col)


def updates(arms) -> dict[str, str]:
    """{study arm: what its update step does}, in the study's order."""
    return {a: ARMS[a] for a in arms}


def arm_of(cfg, kind: str):
    """The experiment's first arm of `kind` (its settings are that kind's in this study)."""
    return next((a for a in cfg.arms if a.arm == kind), None)


def wide(summary: pd.DataFrame, updates: dict[str, str]) -> pd.DataFrame:
    """One row per arm: each metric's mean and CI side by side."""
    rows = []
    for arm in dict.fromkeys(summary["arm"]):
        row = {"arm": arm, "update": updates.get(arm, "")}
        for metric in METRICS:
            row[metric] = value(summary, arm, metric)
            row[f"{metric}_ci_low"] = value(summary, arm, metric, "ci_low")
            row[f"{metric}_ci_high"] = value(summary, arm, metric, "ci_high")
        rows.append(row)
    return pd.DataFrame(rows)


def absorbs(summary: pd.DataFrame, arm: str) -> bool:
    gain = value(summary, arm, "changed_gain")
    stale = value(summary, arm, "stale_rate_after")
    drift = abs(value(summary, arm, "unchanged_em_after") - value(summary, arm, "unchanged_em_before"))
    return gain >= ABSORB_GAIN and stale <= ABSORB_STALE and drift <= KEEP_UNCHANGED


def _pts(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:+.1f}"


ABSORB_RULE = (f"an update absorbs the changes when changed-fact EM rises >= {100 * ABSORB_GAIN:.0f} points, "
               f"<= {100 * ABSORB_STALE:.0f}% of changed facts still get the v1 value after it and "
               f"unchanged-fact EM moves <= {100 * KEEP_UNCHANGED:.0f} points (means over seeds)")
RAG_TEXT = "RAG absorbs changed facts by re-indexing (upsert into the existing index, no rebuild)"
RETRAIN_TEXT = "fine-tuning must be retrained: continued training on the changes does not suffice"
COST_TEXT = "RAG's update is cheaper than any fine-tuning update that gets as far"


def updated_in_place(cells: pd.DataFrame) -> bool:
    """Every upserting arm kept its collection's name and chunk count (no rebuild)."""
    rag = cells[cells["arm"].str.contains("upsert")]
    return bool(len(rag)) and bool(rag["collection_same"].all()) and \
        bool((rag["count_before"] == rag["count_after"]).all())


def _absorb_numbers(summary: pd.DataFrame, arm: str) -> str:
    drift = value(summary, arm, "unchanged_em_after") - value(summary, arm, "unchanged_em_before")
    return (f"{arm}: gain {_fmt(summary, arm, 'changed_gain')} points, stale after "
            f"{_fmt(summary, arm, 'stale_rate_after')}%, unchanged {_pts(drift)} points")


def _missing(claim_id: str, text: str, rule: str, what: str) -> Claim:
    return Claim(claim_id, text, EXPERIMENT, f"no {what} arm in this run", NOT_RUN, rule)


def verdicts(summary: pd.DataFrame, in_place: bool) -> list[Claim]:
    """The claim in three checks, each with its rule and the numbers it used."""
    arms = set(summary["arm"])
    rag_rule = ABSORB_RULE + "; supported when rag+upsert absorbs them and its collection keeps its name " \
                             "and count in every seed, contradicted otherwise"
    if "rag+upsert" in arms:
        ok = absorbs(summary, "rag+upsert") and in_place
        out = [Claim(EXPERIMENT, RAG_TEXT, EXPERIMENT, _absorb_numbers(summary, "rag+upsert") +
                     f"; in place: {in_place}", SUPPORTED if ok else CONTRADICTED, rag_rule)]
    else:
        out = [_missing(EXPERIMENT, RAG_TEXT, rag_rule, "rag+upsert")]
    retrain_rule = (ABSORB_RULE + "; supported when lora+retrain absorbs them and lora+continue does "
                    "not, contradicted when lora+continue absorbs them, inconclusive when neither does")
    if {"lora+retrain", "lora+continue"} <= arms:
        retrain, cont = absorbs(summary, "lora+retrain"), absorbs(summary, "lora+continue")
        verdict = CONTRADICTED if cont else SUPPORTED if retrain else INCONCLUSIVE
        note = "" if retrain or cont else "; neither retraining nor continued training absorbs them"
        out.append(Claim(f"{EXPERIMENT}.retrain", RETRAIN_TEXT, EXPERIMENT,
                         "; ".join(_absorb_numbers(summary, a) for a in ("lora+retrain", "lora+continue")) + note,
                         verdict, retrain_rule))
    else:
        out.append(_missing(f"{EXPERIMENT}.retrain", RETRAIN_TEXT, retrain_rule, "lora+retrain and lora+continue"))
    out.append(update_cost(summary, arms))
    return out


def update_cost(summary: pd.DataFrame, arms: set) -> Claim:
    rule = (f"supported when rag+upsert's update seconds are below those of the cheapest LoRA update "
            f"whose changed-fact EM after is within {100 * COMPARABLE:.0f} points of RAG's (or when none "
            f"gets that close), contradicted when that LoRA update is as fast or faster")
    lora_arms = sorted(a for a in arms if a.startswith("lora+"))
    if "rag+upsert" not in arms or not lora_arms:
        return Claim(f"{EXPERIMENT}.update-cost", COST_TEXT, EXPERIMENT, "needs rag+upsert and a LoRA arm",
                     NOT_RUN, rule)
    rag_em, rag_s = value(summary, "rag+upsert", "changed_em_after"), value(summary, "rag+upsert", "update_seconds")
    close = [a for a in lora_arms if value(summary, a, "changed_em_after") >= rag_em - COMPARABLE]
    cheapest = min(close or lora_arms, key=lambda a: value(summary, a, "update_seconds"))
    seconds = (f"rag+upsert {_fmt(summary, 'rag+upsert', 'update_seconds', 1.0, 2)} s vs {cheapest} "
               f"{_fmt(summary, cheapest, 'update_seconds', 1.0, 1)} s")
    if close:
        verdict = SUPPORTED if rag_s < value(summary, cheapest, "update_seconds") else CONTRADICTED
        return Claim(f"{EXPERIMENT}.update-cost", COST_TEXT, EXPERIMENT, seconds, verdict, rule)
    best = max(value(summary, a, "changed_em_after") for a in lora_arms)
    return Claim(f"{EXPERIMENT}.update-cost", COST_TEXT, EXPERIMENT,
                 f"changed-fact EM after: rag+upsert {_fmt(summary, 'rag+upsert', 'changed_em_after')}%, best "
                 f"LoRA update {100 * best:.1f}% (none gets within {100 * COMPARABLE:.0f} points); {seconds} "
                 f"(the cheapest LoRA update)", SUPPORTED, rule)


def plot(summary: pd.DataFrame, path, title: str):
    """Changed-fact EM after the update vs the update's seconds (log x), 95% CIs both ways."""
    from bench.report.plots import _save, plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm in dict.fromkeys(summary["arm"]):
        x, y = value(summary, arm, "update_seconds"), value(summary, arm, "changed_em_after")
        if math.isnan(y):
            continue
        if not x > 0:   # no update step (closed_book): the floor, drawn as a line
            ax.axhline(100 * y, ls="--", color="grey", lw=1)
            ax.text(0.01, 100 * y, f" {arm} (no update)", transform=ax.get_yaxis_transform(),
                    va="bottom", fontsize=8, color="grey")
            continue
        xl, xh = value(summary, arm, "update_seconds", "ci_low"), value(summary, arm, "update_seconds", "ci_high")
        yl, yh = value(summary, arm, "changed_em_after", "ci_low"), value(summary, arm, "changed_em_after", "ci_high")
        xerr = [[max(0.0, x - max(xl, x * 1e-3))], [max(0.0, xh - x)]]
        ax.errorbar([x], [100 * y], xerr=xerr, yerr=[[100 * (y - yl)], [100 * (yh - y)]],
                    fmt="o", capsize=3, label=arm)
        ax.annotate(arm, (x, 100 * y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("update time, seconds (log; mean over seeds, 95% CI)")
    ax.set_ylabel("EM on changed facts after the update, %")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="center right")
    return _save(fig, path)


def _fmt(summary: pd.DataFrame, arm: str, metric: str, scale: float = 100.0, digits: int = 1) -> str:
    m = value(summary, arm, metric)
    if math.isnan(m):
        return "n/a"
    lo, hi = value(summary, arm, metric, "ci_low"), value(summary, arm, metric, "ci_high")
    return interval_text(m, lo, hi, scale, f".{digits}f")


def markdown(summary: pd.DataFrame, updates: dict[str, str], checks: list[Claim], setup: list[str],
             claim: str, notes: list[str]) -> str:
    arms = list(dict.fromkeys(summary["arm"]))
    cols = [("changed EM before", "changed_em_before"), ("changed EM after", "changed_em_after"),
            ("stale before", "stale_rate_before"), ("stale after", "stale_rate_after"),
            ("unchanged EM before", "unchanged_em_before"), ("unchanged EM after", "unchanged_em_after")]
    lines = ["# freshness: world v1 -> v2, and what each arm's update absorbs", "",
             f"**Claim tested:** {claim.strip()}", "", "## Setup", "", *[f"- {s}" for s in setup], "",
             "## Results (%, mean over seeds [95% CI]; update seconds measured in this run)", "",
             "| arm | update step | " + " | ".join(c for c, _ in cols) + " | update s |",
             "|---|---|" + "---|" * (len(cols) + 1)]
    for arm in arms:
        cells = [_fmt(summary, arm, m) for _, m in cols]
        lines.append(f"| {arm} | {updates.get(arm, '')} | " + " | ".join(cells)
                     + f" | {_fmt(summary, arm, 'update_seconds', 1.0, 2)} |")
    lines += ["", "Changed facts by split (EM %, before -> after): `train` facts were trained on as QA "
              "(LoRA sees their v1 question in the v1 adapter, their v2 question in retrain/continue); "
              "`test` facts only as document text.", "",
              "| arm | train before | train after | test before | test after |", "|---|---|---|---|---|"]
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(_fmt(summary, arm, f"changed_em_{p}_{s}")
                                                for s in ("train", "test") for p in PHASES) + " |")
    lines += ["", EM_LEGEND, "", "![changed-fact EM vs update time](freshness.png)", "", "## Verdicts (computed from the table)", "",
              markdown_rows(checks), "",
              f"Overall: **{all_of(c.verdict for c in checks)}** (supported only if every check above is).",
              "", "## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, "summary.csv", "cells.csv"):
        return [not_run(f"{EXPERIMENT}{s}", t, EXPERIMENT)
                for s, t in (("", RAG_TEXT), (".retrain", RETRAIN_TEXT), (".update-cost", COST_TEXT))]
    return verdicts(pd.read_csv(results_dir / "summary.csv"),
                    updated_in_place(pd.read_csv(results_dir / "cells.csv")))


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, "summary.csv"):
        return []
    name = read_manifest(results_dir).get("experiment", EXPERIMENT)
    return [plot(pd.read_csv(results_dir / "summary.csv"), results_dir / "freshness.png",
                 f"{name}: changed-fact EM after the update vs its cost")]


def _recipe(cfg, s) -> str:
    """The arms' settings as the setup states them: model, retrieval, LoRA recipe."""
    used = [arm_of(cfg, a.split("+")[0]).settings for a in s.arms]
    retrieval = next((x.retrieval for x in used if hasattr(x, "retrieval")), None)
    adapted = next((x for x in used if hasattr(x, "lora")), None)
    parts = [f"Model {cfg.model.name}"]
    if retrieval is not None:
        parts.append(f"retrieval k = {retrieval.k}, chunk size {retrieval.chunk_size}")
    if adapted is not None:
        lora = adapted.lora
        parts.append(f"LoRA r = {lora.rank}, {lora.steps} steps, batch {lora.batch_size}, lr {lora.lr}, "
                     f"training data {dataclasses.asdict(adapted.training)} (the accuracy experiment's recipe)")
    return "; ".join(parts) + "."


def report_md(folder: Path, cfg, s, quick: bool, timings: dict) -> str:
    """report.md from the saved tables, the run's config and settings and its timings."""
    summary, cells = pd.read_csv(folder / "summary.csv"), pd.read_csv(folder / "cells.csv")
    arms, c = updates(s.arms), s.continue_training
    first = cells.iloc[0] if len(cells) else {}
    setup = [
        f"Per seed ({list(cfg.seeds)}{', --quick' if quick else ''}): world v1 = generate_world({cfg.data.world.entities} people), "
        f"v2 = next_version(v1) changing {100 * s.changed_share:.0f}% of facts "
        f"({int(cells['n_changes'].mean()) if len(cells) else 0} changes per seed on average; passage ids kept).",
        f"Questions ({int(cells['n_questions'].mean()) if len(cells) else 0} per seed): every changed fact's question "
        f"in splits {list(s.splits)}, scored against the v2 value (EM) and the v1 value (stale), plus "
        f"{s.unchanged_per_split} unchanged facts per split.",
        _recipe(cfg, s),
        f"Continue: {c.steps} steps (batch {c.batch_size}, lr {c.lr}, replay {c.replay_share}) on only the v2 "
        f"sentences that state a changed fact and the changed train-split facts' v2 questions (with paraphrases).",
        "Update seconds: RAG = embedding + chroma upsert of the changed chunks; retrain = the fresh adapter's "
        "training loop; continue = the continued training loop; hybrid+upsert+continue = both. Model loading "
        "is not counted.",
        *[f"{a}: {text}" for a, text in arms.items()]]
    per_seed = {int(k): v for k, v in (timings.get("per_seed") or {}).items()}   # JSON keys are text
    notes = [f"Index: one chroma collection per seed built on v1 ({first.get('index_build_seconds', 0) or 0:.1f} s "
             f"for seed {first.get('seed', '')}); each retrieving arm upserts into it and the v1 texts are "
             "upserted back afterwards; collection name and count stay the same (checked: "
             f"{updated_in_place(cells)}). v2 removes no passage, so `delete` is not exercised.",
             f"Adapters cached from an earlier run (they keep the train seconds measured then): v1 "
             f"{int(cells['v1_adapter_cached'].fillna(False).astype(bool).sum())} of "
             f"{int(cells['v1_adapter_cached'].notna().sum())} arm-seeds; update step "
             f"{int(cells['update_cached'].astype(bool).sum())} of {len(cells)}.",
             "closed_book has no update: its 'after' is its 'before'; it is the floor line in the plot.",
             f"Timings: total {timings.get('total', math.nan):.0f} s; per seed {per_seed}."]
    return markdown(summary, arms, claims(folder), setup, cfg.claim, notes)
