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

from bench.arms.base import ArmEnv
from bench.arms.registry import get_arm_class
from bench.data.dataset import build_dataset
from bench.metrics.scores import exact_match
from bench.report.manifest import write_manifest
from bench.report.plots import _save
from bench.report.summary import mean_ci
from bench.runner import preflight
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
    shutil.rmtree(scratch, ignore_errors=True)      # empty caches: nothing is reused
    items = dataset.eval_items(cfg.data.eval_splits[:1], max_items, seed)
    start = time.perf_counter()
    arm = get_arm_class(arm_cfg.arm)(arm_cfg.settings, ArmEnv(cfg.model, dataset, seed, scratch, progress))
    try:
        arm.prepare()
        prepared = time.perf_counter() - start
        first_answer = first_correct = float("nan")
        scores = []
        for i in range(0, len(items), cfg.model.batch_size):
            batch = items[i:i + cfg.model.batch_size]
            scores += [exact_match(a.prediction, q.answers) for q, a in zip(batch, arm.answer(batch))]
            now = time.perf_counter() - start
            if math.isnan(first_answer):
                first_answer = now
            if math.isnan(first_correct) and any(scores):
                first_correct = now
    finally:
        arm.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return {"arm": arm_cfg.name, "seed": seed, "prepare_seconds": prepared,
            "first_answer_seconds": first_answer, "first_correct_seconds": first_correct,
            "exact_match": sum(scores) / len(scores)}


def summarize(cells: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for arm, g in cells.groupby("arm", sort=False):
        for metric in METRICS:
            m, lo, hi, n = mean_ci(g[metric].tolist())
            rows.append({"arm": arm, "metric": metric, "mean": m, "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows)


def plot(summary: pd.DataFrame, out: Path) -> None:
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
    _save(fig, out / "coldstart.png")


def verdict(summary: pd.DataFrame, cfg) -> list[str]:
    kinds = {a.arm: a.name for a in cfg.arms}
    get = lambda arm: summary[(summary["arm"] == arm) & (summary["metric"] == "first_correct_seconds")].iloc[0]
    if "rag" not in kinds or "lora" not in kinds:
        return ["not run: needs a rag and a lora arm"]
    r, lo = get(kinds["rag"]), get(kinds["lora"])
    word = ("supported" if r["ci_high"] < lo["ci_low"] else
            "contradicted" if r["ci_low"] > lo["ci_high"] else "inconclusive")
    return ["Rule: RAG 'starts faster' when the 95% CIs over seeds of time to the first correct "
            "answer do not overlap.", "",
            f"- {kinds['rag']}: {r['mean']:.1f} s [{r['ci_low']:.1f}, {r['ci_high']:.1f}]; "
            f"{kinds['lora']}: {lo['mean']:.1f} s [{lo['ci_low']:.1f}, {lo['ci_high']:.1f}] "
            f"-> RAG starts faster: **{word}** ({lo['mean'] / r['mean']:.0f}x)"]


def run(config: Path, out: Path, quick: bool = False, progress: bool = True) -> Path:
    cfg, s = load_study(config, Settings, quick)
    preflight(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start, rows = time.perf_counter(), []
    jobs = [(arm, seed) for seed in s.seeds for arm in cfg.arms]
    for arm, seed in tqdm(jobs, desc="coldstart", disable=not progress):
        rows.append(cold_cell(arm, cfg, build_dataset(cfg.data, seed), seed, s.max_items,
                              Path(".cache") / "coldstart-scratch", progress))
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
          "![coldstart](coldstart.png)", "", *table, "", "## Verdict", "", *verdict(summary, cfg)]
    write_manifest(out / "manifest.json", cfg.name, {"experiment": cfg.to_json(), "study": asdict(s)},
                   cfg.source, {"total": round(time.perf_counter() - start, 1)})
    return write_text("\n".join(md) + "\n", out / "report.md")
