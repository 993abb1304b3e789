"""coldstart: wall time from raw documents to the first correct answer, per arm, with empty caches.

Claim tested: RAG starts fast (chunk, embed, index, deploy) while fine-tuning takes long to train.
Every arm starts from an empty cache folder of its own, so nothing built earlier is reused:
rag = load model + chunk + embed + index; lora = load model + train; hybrid = both, in sequence.
The clock runs until the end of the first answer batch that contains a correct answer; the
arm then answers the rest so the quality reached is measured on the same items.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from tqdm import tqdm

from bench.config import CACHE_DIR
from bench.data.dataset import build_dataset
from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, NOT_RUN, SUPPORTED, Claim, arm_names, fmt_ci,
                                 markdown_rows, not_run, results_present)
from bench.report.manifest import write_manifest
from bench.report.plots import _save
from bench.report.tables import summarize_wide
from bench.studies.common import load_study, write_csv, write_text

METRICS = ["prepare_seconds", "first_answer_seconds", "first_correct_seconds", "exact_match"]


@dataclass(frozen=True)
class Settings:
    max_items: int = 100
    seeds: tuple[int, ...] = (0, 1)

    def validate(self, where: str) -> None:
        from bench.config import ConfigError
        if not self.seeds:
            raise ConfigError(f"{where}.seeds: expected at least one seed")


def cold_cell(arm_cfg, cfg, dataset, seed: int, max_items: int, scratch: Path, progress: bool) -> dict:
    """One (arm, seed) from an empty cache folder. Not an executor job: the clock must cover the
    whole preparation and stop at the first correct batch, and nothing may come from a cache
    (no prediction log either); it uses the executor's pieces (open_arm, answer_rows)."""
    from bench.engine import Job, answer_rows, open_arm   # the model stack, only when measuring
    from bench.metrics.scores import exact_match

    shutil.rmtree(scratch, ignore_errors=True)      # empty caches: nothing is reused
    items = dataset.eval_items(cfg.data.eval_splits[:1], max_items, seed)
    job = Job(arm_cfg, seed, cfg.model, cfg.data, dataset, tuple(items))
    start = time.perf_counter()
    try:
        with open_arm(job, scratch, progress) as (arm, _):
            prepared = time.perf_counter() - start
            first_answer = first_correct = float("nan")
            scores = []
            for i in range(0, len(items), cfg.model.batch_size):
                rows = answer_rows(arm, job, items[i:i + cfg.model.batch_size])
                scores += [exact_match(r["prediction"], r["answers"]) for r in rows]
                now = time.perf_counter() - start
                if math.isnan(first_answer):
                    first_answer = now
                if math.isnan(first_correct) and any(scores):
                    first_correct = now
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"arm": arm_cfg.name, "seed": seed, "prepare_seconds": prepared,
            "first_answer_seconds": first_answer, "first_correct_seconds": first_correct,
            "exact_match": sum(scores) / len(scores)}


def summarize(cells: pd.DataFrame) -> pd.DataFrame:
    return summarize_wide(cells, METRICS)


def plot(summary: pd.DataFrame, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for arm in dict.fromkeys(summary["arm"]):
        s = summary[summary["arm"] == arm].set_index("metric")
        x, y = s.loc["first_correct_seconds"], s.loc["exact_match"]
        ax.errorbar(x["mean"], 100 * y["mean"], xerr=[[x["mean"] - x["ci_low"]], [x["ci_high"] - x["mean"]]],
                    yerr=[[100 * (y["mean"] - y["ci_low"])], [100 * (y["ci_high"] - y["mean"])]],
                    fmt="o", capsize=3, label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("seconds from raw documents to the first correct answer (log)")
    ax.set_ylabel("exact match reached, %")
    ax.legend(fontsize=8)
    return _save(fig, out / "coldstart.png")


COLD_TEXT = "RAG starts fast (chunk, embed, index) while fine-tuning takes long to train"
COLD_RULE = ("supported when the 95% CIs over seeds of the seconds from raw documents to the first correct "
             "answer do not overlap with rag below lora (or lora never answers correctly), contradicted "
             "when they do not overlap with rag above lora, inconclusive otherwise")


def verdicts(summary: pd.DataFrame, kinds: dict[str, str]) -> list[Claim]:
    """`kinds` maps arm kind to arm name."""
    rag, lora = kinds.get("rag"), kinds.get("lora")
    if rag is None or lora is None:
        return [Claim("coldstart", COLD_TEXT, "coldstart", "needs a rag and a lora arm", NOT_RUN, COLD_RULE)]
    get = lambda arm, metric: summary[(summary["arm"] == arm) & (summary["metric"] == metric)].iloc[0]  # noqa: E731
    r, lo = get(rag, "first_correct_seconds"), get(lora, "first_correct_seconds")
    if math.isnan(lo["mean"]):
        verdict = INCONCLUSIVE if math.isnan(r["mean"]) else SUPPORTED
    else:
        verdict = SUPPORTED if r["ci_high"] < lo["ci_low"] else \
            CONTRADICTED if r["ci_low"] > lo["ci_high"] else INCONCLUSIVE
    parts = []
    for arm in dict.fromkeys(summary["arm"]):
        t, em = get(arm, "first_correct_seconds"), get(arm, "exact_match")
        seconds = "never correct" if math.isnan(t["mean"]) else f"{fmt_ci(t['mean'], t['ci_low'], t['ci_high'], 1)} s"
        parts.append(f"{arm} {seconds} (EM reached {fmt_ci(em['mean'], em['ci_low'], em['ci_high'])}%)")
    ratio = lo["mean"] / r["mean"] if r["mean"] > 0 else math.nan
    measured = "to the first correct answer: " + "; ".join(parts) + \
        ("" if math.isnan(ratio) else f"; {lora} / {rag} = {ratio:.0f}x")
    return [Claim("coldstart", COLD_TEXT, "coldstart", measured, verdict, COLD_RULE)]


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, "summary.csv", "manifest.json"):
        return [not_run("coldstart", COLD_TEXT, "coldstart")]
    return verdicts(pd.read_csv(results_dir / "summary.csv"), arm_names(results_dir))


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, "summary.csv"):
        return []
    return [plot(pd.read_csv(results_dir / "summary.csv"), results_dir)]


def run(config: Path, out: Path, quick: bool = False, progress: bool = True) -> Path:
    from bench.runner import preflight

    cfg, s = load_study(config, Settings, quick)
    preflight(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start, rows = time.perf_counter(), []
    jobs = [(arm, seed) for seed in s.seeds for arm in cfg.arms]
    for arm, seed in tqdm(jobs, desc="coldstart", disable=not progress):
        # one folder per cell: chroma keeps a client per path in the process, so a folder
        # deleted and reused by a later cell would meet a stale client ("no such table")
        rows.append(cold_cell(arm, cfg, build_dataset(cfg.data, seed), seed, s.max_items,
                              CACHE_DIR / "coldstart-scratch" / f"{arm.name}-s{seed}", progress))
    cells = pd.DataFrame(rows)
    summary = summarize(cells)
    write_csv(cells, out / "cells.csv")
    write_csv(summary, out / "summary.csv")
    plot(summary, out)
    table = ["| arm | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for arm in dict.fromkeys(summary["arm"]):
        srow = summary[summary["arm"] == arm].set_index("metric")
        table.append(f"| {arm} | " + " | ".join(
            f"{srow.loc[m, 'mean'] * (100 if m == 'exact_match' else 1):.1f} "
            f"[{srow.loc[m, 'ci_low'] * (100 if m == 'exact_match' else 1):.1f}, "
            f"{srow.loc[m, 'ci_high'] * (100 if m == 'exact_match' else 1):.1f}]" for m in METRICS) + " |")
    md = [f"# coldstart: {cfg.claim.strip()}", "", cfg.description.strip(), "",
          f"Model `{cfg.model.name}`, seeds {list(s.seeds)} (each a fresh world), {s.max_items} test "
          f"questions; seconds on this machine (see manifest); exact match in %.", "",
          "![coldstart](coldstart.png)", "", *table, "", "## Verdict (computed from summary.csv)", "",
          markdown_rows(verdicts(summary, {a.arm: a.name for a in reversed(cfg.arms)}))]
    write_manifest(out / "manifest.json", cfg.name, {"experiment": cfg.to_json(), "study": asdict(s)},
                   cfg.source, {"total": round(time.perf_counter() - start, 1)})
    return write_text("\n".join(md) + "\n", out / "report.md")
