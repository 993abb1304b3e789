"""lora-params, the reading half: the saved params.csv, example.csv and accuracy_per_seed.csv ->
the long summary and accuracy by rank (means and 95% CIs over seeds), the claims, the plots and
report.md. Saved tables only; no model code."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.metrics.scores import EM_LEGEND
from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Claim, fmt_ci, markdown_rows,
                                 not_run, read_manifest, results_present)
from bench.report.plots import _save
from bench.studies.forgetting.shared import seed_summary, template_arm

NAME = "lora-params"
CLAIM = "LoRA trains a small fraction of the parameters"
EXAMPLE_CLAIM = "a 512 x 64 matrix has 32,768 weights; LoRA at r=8 trains 4,608"
ACC_METRICS = ["world_trained_em", "world_heldout_em", "world_reading_em", "train_seconds",
               "trainable_parameters"]
VERDICT_RANK, SMALL_FRACTION = 8, 0.01     # the settings' defaults: r=8, "small" = below 1%
PLOTS = {"lora_params.png": "params.csv", "accuracy_vs_rank.png": "accuracy.csv"}   # plot: its table


# -- tables ----------------------------------------------------------------------------------

def tables(counts: pd.DataFrame, acc: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(summary in long form, accuracy by rank with CIs over seeds)."""
    long = []
    for _, r in counts.iterrows():
        arm = f"{r.model}/{r.target_set}" + ("" if pd.isna(r["rank"]) else f"/r{int(r['rank'])}")
        for metric in ("trainable_peft", "trainable_formula", "trainable_fraction", "adapter_bytes"):
            v = float(r[metric])
            long.append({"arm": arm, "metric": metric, "mean": v, "ci_low": v, "ci_high": v, "n": 1})
    long = pd.DataFrame(long)
    if acc is None or not len(acc):
        return long, None
    acc = acc.sort_values("rank", kind="stable")
    acc_long, cis = seed_summary(acc, "rank", ACC_METRICS, label=lambda rank: f"lora_r{int(rank)}")
    wide = [{"rank": int(rank), "steps": int(group["steps"].iloc[0]), "n": len(group), **cis[rank]}
            for rank, group in acc.groupby("rank", sort=False)]
    return pd.concat([long, acc_long], ignore_index=True), pd.DataFrame(wide)


# -- claims and plots from saved tables ------------------------------------------------------

def fraction_verdict(fractions: list[float], small: float = 0.01, large: float = 0.10) -> str:
    """supported when every fraction is below `small`; contradicted when every one is at least
    `large`; inconclusive in between (or with nothing to judge)."""
    if not fractions or any(math.isnan(f) for f in fractions):
        return INCONCLUSIVE
    if max(fractions) < small:
        return SUPPORTED
    if min(fractions) >= large:
        return CONTRADICTED
    return INCONCLUSIVE


def verdict_settings(results_dir: Path, settings=None) -> tuple[int, float]:
    """(the rank judged, the fraction called small): the run's settings when given, else those
    the manifest of the run that saved the folder records, else the defaults."""
    if settings is not None:
        return int(settings.verdict_rank), float(settings.small_fraction)
    study = (read_manifest(results_dir).get("config") or {}).get("study") or {}
    return int(study.get("verdict_rank", VERDICT_RANK)), float(study.get("small_fraction", SMALL_FRACTION))


def claims(results_dir: Path, settings=None) -> list[Claim]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, "params.csv", "example.csv"):
        return [not_run(NAME, CLAIM, NAME), not_run(f"{NAME}.example", EXAMPLE_CLAIM, NAME)]
    counts = pd.read_csv(results_dir / "params.csv")
    ex = pd.read_csv(results_dir / "example.csv").iloc[0]
    rank, small = verdict_settings(results_dir, settings)
    lora = counts[counts["target_set"] != "full fine-tuning"]
    at = lora[lora["rank"] == rank]
    judged = at[at["kind"] == "hf_config"] if (at["kind"] == "hf_config").any() else at
    agree = bool(counts["counts_match"].all())

    def describe(model: str) -> str:
        rows = at[at["model"] == model]
        full = int(rows["total_parameters"].iloc[0])
        parts = ", ".join(f"{r.target_set} {int(r.trainable_peft):,} ({r.trainable_fraction * 100:.2f}%)"
                          for _, r in rows.iterrows())
        return f"{model} ({full:,} parameters): {parts}"

    verdict = fraction_verdict(judged["trainable_fraction"].tolist(), small) if agree else INCONCLUSIVE
    measured = (f"trainable parameters at r={rank} by target modules: "
                + "; ".join(describe(m) for m in dict.fromkeys(at["model"]))
                + (". peft counts equal r x (d_in + d_out) summed over the adapted matrices in every row"
                   if agree else ". WARNING: peft and the formula disagree in some rows (see params.csv)"))
    judged_names = ", ".join(dict.fromkeys(judged["model"]))
    main = Claim(NAME, CLAIM, NAME, measured, verdict,
                 f"supported when LoRA at r={rank} trains under {small * 100:g}% of the parameters for "
                 f"every target-module set of {judged_names}; contradicted when every set trains "
                 f"10% or more; inconclusive in between (or if peft and the formula disagree). "
                 f"Smaller models get larger fractions at the same rank (shown, not judged)")
    exact = (int(ex.weights) == int(ex.d_out) * int(ex.d_in) and int(ex.lora_peft) == int(ex.lora_formula)
             and int(ex.lora_formula) == int(ex["rank"]) * (int(ex.d_out) + int(ex.d_in)))
    article = int(ex.weights) == 32768 and int(ex.lora_peft) == 4608
    example = Claim(f"{NAME}.example", EXAMPLE_CLAIM, NAME,
                    f"{int(ex.d_out)} x {int(ex.d_in)} nn.Linear: {int(ex.weights):,} weights; peft "
                    f"LoRA r={int(ex['rank'])} trains {int(ex.lora_peft):,}, formula "
                    f"{int(ex['rank'])} x ({int(ex.d_out)} + {int(ex.d_in)}) = {int(ex.lora_formula):,} "
                    f"({ex.fraction * 100:.1f}% of the matrix)",
                    SUPPORTED if exact and article else CONTRADICTED,
                    "supported when peft's count on a real 512 x 64 matrix and the formula both give "
                    "exactly 4,608 of 32,768 weights; contradicted otherwise")
    return [main, example]


def plots(results_dir: Path) -> list[str]:
    """The plots the saved tables make (redraw draws them, the report shows them)."""
    return [plot for plot, table in PLOTS.items() if results_present(results_dir, table)]


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    todo = plots(results_dir)
    out = []
    if "lora_params.png" in todo:
        counts = pd.read_csv(results_dir / "params.csv")
        lora = counts[counts["target_set"] != "full fine-tuning"]
        models = list(dict.fromkeys(lora["model"]))
        sets = list(dict.fromkeys(lora["target_set"]))
        styles = ["-", "--", ":", "-."]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        for i, model in enumerate(models):
            for j, target in enumerate(sets):
                rows = lora[(lora["model"] == model) & (lora["target_set"] == target)].sort_values("rank")
                kw = dict(color=f"C{j}", ls=styles[i % len(styles)], marker="o", ms=3,
                          label=f"{model}: {target}")
                ax1.plot(rows["rank"], rows["trainable_fraction"] * 100, **kw)
                ax2.plot(rows["rank"], rows["adapter_bytes"] / 1e6, **kw)
            full = counts[(counts["model"] == model) & (counts["target_set"] == "full fine-tuning")]
            ax2.axhline(float(full["full_checkpoint_bytes"].iloc[0]) / 1e6, color="gray",
                        ls=styles[i % len(styles)], lw=1, label=f"{model}: full fine-tuning")
        ax1.axhline(100, color="gray", lw=1, label="full fine-tuning (100%)")
        ax1.axhline(1, color="red", lw=0.8, ls=":", label="1%")
        for ax, label in ((ax1, "trainable parameters, % of the model"), (ax2, "size on disk (MB)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("LoRA rank")
            ax.set_ylabel(label)
        ax1.set_title("trainable fraction vs rank")
        ax2.set_title("adapter vs full checkpoint size")
        ax1.legend(fontsize=6)
        ax2.legend(fontsize=6)
        out.append(_save(fig, results_dir / "lora_params.png"))
    if "accuracy_vs_rank.png" in todo:
        acc = pd.read_csv(results_dir / "accuracy.csv").sort_values("rank")
        fig, ax = plt.subplots(figsize=(6, 4))
        for metric, label in (("world_trained_em", "trained facts, closed-book"),
                              ("world_heldout_em", "held-out facts, closed-book"),
                              ("world_reading_em", "reading with RAG (hybrid)")):
            if acc[metric].isna().all():
                continue
            ax.errorbar(acc["rank"], acc[metric], capsize=3, marker="o", label=label,
                        yerr=[acc[metric] - acc[f"{metric}_lo"], acc[f"{metric}_hi"] - acc[metric]])
        ax.set_xscale("log", base=2)
        ax.set_xticks(acc["rank"].tolist())
        ax.set_xticklabels([str(int(r)) for r in acc["rank"]])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"LoRA rank ({int(acc['steps'].iloc[0])} steps)")
        ax.set_ylabel("exact match (mean over seeds, 95% CI)")
        ax.set_title("test-world accuracy vs rank")
        ax.legend(fontsize=8)
        out.append(_save(fig, results_dir / "accuracy_vs_rank.png"))
    return out


# -- report ----------------------------------------------------------------------------------

def _mb(b: float) -> str:
    return f"{b / 1e6:.2f}" if b < 1e9 else f"{b / 1e9:.2f} GB"


def _counts_table(counts: pd.DataFrame, rank: int) -> str:
    lines = ["| model | target modules | matrices | trainable (peft) | r x (d_in + d_out) | "
             "% of model | size on disk (MB) |", "|---|---|---|---|---|---|---|"]
    pick = counts[(counts["rank"] == rank) | (counts["target_set"] == "full fine-tuning")]
    for _, r in pick.iterrows():
        full = r.target_set == "full fine-tuning"
        lines.append(f"| {r.model} | {r.target_set} | {'-' if full else int(r.adapted_matrices)} | "
                     f"{int(r.trainable_peft):,} | {int(r.trainable_formula):,} | "
                     f"{r.trainable_fraction * 100:.3g} | {_mb(r.adapter_bytes)} |")
    return "\n".join(lines)


def _rank_table(counts: pd.DataFrame) -> str:
    lora = counts[counts["target_set"] != "full fine-tuning"]
    cols = list(dict.fromkeys(zip(lora["model"], lora["target_set"])))
    lines = ["| rank | " + " | ".join(f"{m}: {t}" for m, t in cols) + " |", "|---|" + "---|" * len(cols)]
    for rank in sorted(lora["rank"].unique()):
        cells = []
        for m, t in cols:
            r = lora[(lora["model"] == m) & (lora["target_set"] == t) & (lora["rank"] == rank)].iloc[0]
            cells.append(f"{int(r.trainable_peft):,} ({r.trainable_fraction * 100:.2g}%)")
        lines.append(f"| {int(rank)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _acc_table(acc: pd.DataFrame) -> str:
    lines = ["| rank | trainable | train s | trained facts EM | held-out EM | reading EM (hybrid) |",
             "|---|---|---|---|---|---|"]
    for _, r in acc.iterrows():
        cells = [fmt_ci(r[m], r[f"{m}_lo"], r[f"{m}_hi"]) for m in
                 ("world_trained_em", "world_heldout_em", "world_reading_em")]
        lines.append(f"| {int(r['rank'])} | {int(r.trainable_parameters):,} | {r.train_seconds:.0f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines + ["", EM_LEGEND])


def report_md(cfg, s, out: Path, seconds: float) -> str:
    """report.md: the models, the plots, the counts at the verdict rank and by rank, accuracy vs
    rank, and the verdicts (judged with this run's settings)."""
    counts = pd.read_csv(out / "params.csv")
    md = [f"# lora-params: {CLAIM}", "", (cfg.description or "").strip(), "",
          f"Models: `{cfg.model.name}` (the bench's model) and the Hugging Face configs "
          f"{', '.join(f'`{n}`' for n in s.hf_configs) or '(none)'}, each built on the meta device from "
          f"its config (no weights). Trainable counts from peft `get_peft_model` on the real module "
          f"tree, checked against r x (d_in + d_out) per adapted matrix from the config alone. Size "
          f"on disk: adapter_model.safetensors + adapter_config.json as peft writes them (fp32 "
          f"adapter); full fine-tuning: every parameter x {s.bytes_per_parameter} bytes. "
          f"Run time {seconds:.0f} s.", "",
          *[f"![{Path(p).stem}]({p})" for p in plots(out)], "",
          f"## At rank {s.verdict_rank}", "", _counts_table(counts, s.verdict_rank), "",
          "## Trainable parameters by rank", "", _rank_table(counts), ""]
    if (out / "accuracy.csv").exists():
        acc = pd.read_csv(out / "accuracy.csv")
        targets = " ".join(template_arm(cfg, "lora", cfg.source).settings.lora.target_modules)
        md += [f"## Accuracy vs rank (`{cfg.model.name}`, {int(acc['steps'].iloc[0])} steps, "
               f"targets {targets})", "",
               "Test-world exact match on answerable items, means over seeds "
               f"{list(cfg.seeds)} with 95% CIs; the adapters are the forgetting study's rank sweep.",
               "", _acc_table(acc), ""]
    md += ["## Verdict", "", markdown_rows(claims(out, s)), ""]
    return "\n".join(md) + "\n"
