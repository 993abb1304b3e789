"""consistency: the same question in several wordings, greedy and sampled; do the answers agree?

Claim tested: fine-tuning gives consistent output while RAG varies with retrieval. Every sampled
question (held-out `test` facts: the headline; `train` facts, which the adapter saw as QA in
every wording: the fine-tuning's home ground) is asked in each of its paraphrases (the world
writes three wordings per question; each becomes its own item sharing the question's gold
answer, kind and popularity, `data.paraphrases_as_items`), by every arm, greedily and at each
sampling temperature (`model.temperature`, sampling seeded by the run seed so the table is
reproducible). Per (arm, seed, temperature, split) cell and question ("group"):

- agree_all: all paraphrases give the same normalised answer (SQuAD normalisation);
- pairwise_agree: the share of paraphrase pairs that give the same normalised answer;
- all_correct: every paraphrase is answered correctly (consistent *and* right);
- agree_given_any_correct: agree_all among the questions at least one wording got right;
- top_chunk_differs (retrieving arms): the top retrieved chunk is not the same passage for all
  wordings; gold_hit_differs: the top chunk states the gold fact for some wordings only;
  agree_same_top / agree_diff_top: agree_all among questions whose top chunk is / is not the
  same for all wordings (retrieval variance is the mechanism the claim names).

Cell values are averaged over questions, then means over seeds with 95% t-intervals; score
variance is reported as the SD of exact match across seeds (chi-square CI) and across
temperatures (per seed, then a t-interval). `claims()` and `redraw()` read only the saved CSVs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from bench.config import CACHE_DIR, ConfigError
from bench.metrics.text import normalize_answer
from bench.report.claims import INCONCLUSIVE, Claim, fmt_ci, interval_verdict, markdown_rows, not_run, results_present
from bench.report.manifest import write_manifest
from bench.report.plots import _save
from bench.report.tables import arm_of_kind, mean_ci, paired, seed_ci
from bench.studies.common import load_study, with_changes, write_csv, write_text
from bench.studies.shrink import shrink


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


@dataclass(frozen=True)
class Settings:
    temperatures: tuple[float, ...] = (0.0, 1.0)        # 0 = greedy
    # overrides of the experiment sections (None = as in the YAML; used by `quick:`)
    entities: int | None = None
    lora_steps: int | None = None
    seeds: tuple[int, ...] | None = None
    max_items: int | None = None

    def validate(self, where: str) -> None:
        t = list(self.temperatures)
        if not t or any(x < 0 or x > 5 for x in t) or len(set(t)) != len(t):
            raise ConfigError(f"{where}.temperatures: expected distinct values 0 (greedy) <= T <= 5, got {t}")
        for key in ("entities", "lora_steps", "max_items"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")


# -- arithmetic (pure, on tables) -------------------------------------------------------------
CELL_KEYS = ["arm", "arm_kind", "seed", "temperature", "split"]
SPLITS = {"test": "held-out facts (test split)", "train": "facts in the fine-tuning data (train split)"}


def pairwise_agreement(answers) -> float:
    """Share of unordered pairs of answers that are equal (1.0 for a single answer)."""
    n = len(answers)
    if n < 2:
        return 1.0
    counts = pd.Series(list(answers)).value_counts()
    return float((counts * (counts - 1) / 2).sum() / (n * (n - 1) / 2))


def _top_chunk(retrieved_ids) -> tuple | None:
    if retrieved_ids is None or (isinstance(retrieved_ids, float) and math.isnan(retrieved_ids)):
        return None
    return tuple(retrieved_ids[0]) if len(retrieved_ids) else ()


def group_table(items: pd.DataFrame) -> pd.DataFrame:
    """Per-paraphrase rows (arm, arm_kind, seed, temperature, split, group, kind, prediction,
    exact_match, abstained, retrieved_ids, gold_ids) -> one row per question and cell.
    A table without `split` is taken as all 'test'."""
    if "split" not in items:
        items = items.assign(split="test")
    keys = [*CELL_KEYS, "group"]
    rows = []
    for key, g in items.groupby(keys, sort=False):
        norm = [normalize_answer(p) for p in g["prediction"]]
        em = g["exact_match"].astype(float)
        row = dict(zip(keys, key), kind=g["kind"].iloc[0], n_paraphrases=len(g),
                   agree_all=float(len(set(norm)) == 1), pairwise_agree=pairwise_agreement(norm),
                   all_correct=float(em.min() == 1.0), any_correct=float(em.max() == 1.0),
                   exact_match=float(em.mean()), abstained=float(g["abstained"].astype(float).mean()))
        tops = [_top_chunk(r) for r in g["retrieved_ids"]] if "retrieved_ids" in g else [None]
        if any(t is None for t in tops):
            row.update(top_chunk_differs=math.nan, gold_hit_differs=math.nan)
        else:
            hits = {bool(set(t) & set(gold)) for t, gold in zip(tops, g["gold_ids"])}
            row.update(top_chunk_differs=float(len(set(tops)) > 1), gold_hit_differs=float(len(hits) > 1))
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_where(values: pd.Series, mask: pd.Series) -> float:
    return float(values[mask].mean()) if mask.any() else math.nan


def cell_table(groups: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, seed, temperature, split): the question-level metrics averaged."""
    rows = []
    for key, g in groups.groupby(CELL_KEYS, sort=False):
        differs = g["top_chunk_differs"]
        retrieves = differs.notna().all()
        rows.append({
            **dict(zip(CELL_KEYS, key)), "n_groups": len(g),
            "agree_all": g["agree_all"].mean(), "pairwise_agree": g["pairwise_agree"].mean(),
            "all_correct": g["all_correct"].mean(),
            "agree_given_any_correct": _mean_where(g["agree_all"], g["any_correct"] == 1),
            "exact_match": g["exact_match"].mean(), "abstained": g["abstained"].mean(),
            "top_chunk_differs": differs.mean() if retrieves else math.nan,
            "gold_hit_differs": g["gold_hit_differs"].mean() if retrieves else math.nan,
            "agree_same_top": _mean_where(g["agree_all"], differs == 0) if retrieves else math.nan,
            "agree_diff_top": _mean_where(g["agree_all"], differs == 1) if retrieves else math.nan,
        })
    return pd.DataFrame(rows)


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
    return interval_verdict(lo, hi) if n >= 2 else INCONCLUSIVE


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


# -- the run ----------------------------------------------------------------------------------
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
    return "\n".join(lines)


def report(results_dir: Path, cfg, s: Settings, timings: dict) -> Path:
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
    return write_text("\n".join(md) + "\n", results_dir / "report.md")


def items_table(table: pd.DataFrame, temperature: float) -> pd.DataFrame:
    meta = table["meta"].map(json.loads)
    out = table.assign(temperature=float(temperature), group=meta.map(lambda m: m["group"]),
                       paraphrase=meta.map(lambda m: m["paraphrase"]))
    return out


def run(config: Path, out: Path, quick: bool = False, progress: bool = True,
        cache_dir: Path = CACHE_DIR) -> Path:
    cfg, s = load_study(config, Settings, quick)
    cfg = shrink(cfg, entities=s.entities, lora_steps=s.lora_steps, seeds=s.seeds, max_items=s.max_items)
    cfg = with_changes(cfg, paraphrases_as_items=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from bench.runner import run_experiment

    start, timings, parts = time.perf_counter(), {}, []
    for t in sorted(s.temperatures):
        t0 = time.perf_counter()
        table, _ = run_experiment(with_changes(cfg, temperature=float(t)), out / "runs", cache_dir, progress=progress)
        parts.append(items_table(table, t))
        timings[t_label(t)] = round(time.perf_counter() - t0, 1)
    items = pd.concat(parts, ignore_index=True)
    cells = cell_table(group_table(items))
    write_csv(cells, out / CELLS_CSV)
    write_csv(summarize(cells), out / SUMMARY_CSV)
    redraw(out)
    timings["total"] = round(time.perf_counter() - start, 1)
    write_manifest(out / "manifest.json", cfg.name, {"experiment": cfg.to_json(), "study": asdict(s)},
                   cfg.source, timings)
    return report(out, cfg, s, timings)
