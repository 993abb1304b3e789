"""injection, the reading half: per_seed.csv -> the summary (mean and 95% CI over seeds per arm),
the four claims, the accuracy-vs-cost plot and report.md. Saved tables only; no model code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, ONE_SEED_VERDICT, SUPPORTED, Claim,
                                 fmt_ci, interval_text, interval_verdict, not_run, results_present)
from bench.report.tables import mean_ci, paired, summarize_wide

NAME = "injection"
PLOT = "injection.png"
METRICS = ["test_em", "test_contains", "reworded_em", "reworded_contains", "background_recall",
           "background_drop", "train_seconds", "recipe_seconds", "cost_seconds", "train_tokens",
           "train_examples", "steps"]
MATCH_MARGIN = 0.05        # "matches RAG": within 5 points of it
MOST = 0.5                 # "recovers most of RAG's gain": more than half of it

OVADIA = ("injection.paraphrases", "paraphrase augmentation improves knowledge injection (Ovadia et al. 2023)")
ENTIGRAPH = ("injection.synthetic", "fine-tuning on synthetic data recovers most of RAG's gain over "
             "closed-book (EntiGraph, Yang et al. 2024: ~80%)")
KUJANPAA = ("injection.distill", "prompt distillation matches RAG (Kujanpää et al. 2024)")
ZHANG = ("injection.raft", "RAFT beats fine-tune-then-RAG (Zhang et al. 2024)")
CLAIMS = (OVADIA, ENTIGRAPH, KUJANPAA, ZHANG)


def load(folder: Path) -> pd.DataFrame:
    df = pd.read_csv(Path(folder) / "per_seed.csv")
    df["cost_seconds"] = df.get("train_seconds", 0).fillna(0) + df.get("recipe_seconds", 0).fillna(0)
    df.loc[df["kind"].isin(["closed_book", "rag"]), "cost_seconds"] = float("nan")
    return df


def summary_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    return summarize_wide(per_seed, METRICS, by=("arm",))


def metric_column(settings: dict) -> str:
    return "test_contains" if settings.get("metric") == "contains" else "test_em"


def _arm(per_seed: pd.DataFrame, name: str) -> bool:
    return bool(name) and name in set(per_seed["arm"])


def claims(folder: Path, settings: dict) -> list[Claim]:
    folder = Path(folder)
    if not results_present(folder, "per_seed.csv"):
        return [not_run(cid, text, NAME) for cid, text in CLAIMS]
    df, col = load(folder), metric_column(settings)
    label = "EM" if col == "test_em" else "answer containment"
    on = f"{label} on held-out facts (only in the documents)"
    seeds = int(df["seed"].nunique())
    out = []

    def diff_claim(claim, a, b, rule_extra="", margin=0.0):
        if not (_arm(df, a) and _arm(df, b)):
            return Claim(*claim, NAME, f"needs arms {a!r} and {b!r} in the run", INCONCLUSIVE,
                         "study settings name the arms compared")
        m, lo, hi, n = paired(df, a, b, col)
        verdict = interval_verdict(lo, hi)
        if margin:   # "matches": the interval inside -margin..+inf supported, below -margin contradicted
            verdict = (ONE_SEED_VERDICT if pd.isna(lo) else SUPPORTED if lo > -margin
                       else CONTRADICTED if hi < -margin else INCONCLUSIVE)
        return Claim(*claim, NAME, f"{a} - {b}, {on}: {fmt_ci(m, lo, hi)} points ({n} seeds){rule_extra}",
                     verdict, f"seed-paired 95% CI of {a} - {b} on {on}: " +
                     (f"above -{100 * margin:.0f} points -> supported (matches or beats), below -"
                      f"{100 * margin:.0f} -> contradicted, else inconclusive" if margin else
                      "above 0 -> supported, below 0 -> contradicted, else inconclusive"))

    out.append(diff_claim(OVADIA, settings.get("renderings_arm", ""), settings.get("plain_arm", "")))
    out.append(recovery_claim(df, col, on, settings.get("synthetic_arm", ""), seeds))
    rag = next((a for a in df.loc[df["kind"] == "rag", "arm"]), "")
    out.append(diff_claim(KUJANPAA, settings.get("distill_arm", ""), rag, margin=MATCH_MARGIN))
    out.append(diff_claim(ZHANG, settings.get("raft_arm", ""), settings.get("hybrid_arm", "")))
    return out


def recovery_claim(df: pd.DataFrame, col: str, on: str, arm: str, seeds: int) -> Claim:
    """Recovered share = (arm - closed_book) / (rag - closed_book), per seed."""
    kinds = dict(zip(df["kind"], df["arm"]))
    base, rag = kinds.get("closed_book"), kinds.get("rag")
    if not (_arm(df, arm) and base and rag):
        return Claim(*ENTIGRAPH, NAME, f"needs closed_book, rag and {arm!r}", INCONCLUSIVE,
                     "study.synthetic_arm names the arm")
    p = df.pivot_table(index="seed", columns="arm", values=col)
    share = ((p[arm] - p[base]) / (p[rag] - p[base])).dropna().tolist()
    m, lo, hi, n = mean_ci(share)
    verdict = ONE_SEED_VERDICT if pd.isna(lo) else (SUPPORTED if lo > MOST else CONTRADICTED if hi < MOST
                                                     else INCONCLUSIVE)
    return Claim(*ENTIGRAPH, NAME,
                 f"{arm} recovers {interval_text(m, lo, hi, 100, '.0f', '%')} of rag's gain over closed_book, "
                 f"{on} ({arm} {100 * p[arm].mean():.1f}%, rag {100 * p[rag].mean():.1f}%, closed_book "
                 f"{100 * p[base].mean():.1f}%; {n} seeds)", verdict,
                 f"per seed, ({arm} - closed_book) / (rag - closed_book) on {on}; 95% CI over seeds above "
                 f"{100 * MOST:.0f}% -> supported, below -> contradicted, else inconclusive")


def redraw(folder: Path, settings: dict) -> list[Path]:
    from bench.report.plots import _save   # first: selects the Agg backend

    import matplotlib.pyplot as plt

    folder = Path(folder)
    if not results_present(folder, "per_seed.csv"):
        return []
    df, col = load(folder), metric_column(settings)
    s = summary_table(df)
    get = lambda arm, metric: s[(s["arm"] == arm) & (s["metric"] == metric)].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    colors = {"lora": "tab:orange", "hybrid": "tab:red"}
    # two costs: the wall seconds (LoRA steps + generating the recipe's data) and the tokens the
    # steps read (equal steps cost equal seconds; longer examples read more tokens)
    for ax, (cost, scale, label) in zip(axes, (("cost_seconds", 1, "seconds per adapter (LoRA steps + generating "
                                                 "the recipe's data)"),
                                                ("train_tokens", 1e-3, "training tokens per adapter (thousands)"))):
        for arm, kind in dict(zip(df["arm"], df["kind"])).items():
            r = get(arm, col)
            if kind in ("closed_book", "rag"):
                c = "tab:gray" if kind == "closed_book" else "tab:blue"
                ax.axhline(100 * r["mean"], color=c, linestyle=":", label=f"{arm} (reference)")
                if pd.notna(r["ci_low"]) and r["ci_high"] > r["ci_low"]:
                    ax.axhspan(100 * r["ci_low"], 100 * r["ci_high"], color=c, alpha=0.12)
                continue
            x = get(arm, cost)["mean"] * scale
            err = ([[100 * (r["mean"] - r["ci_low"])], [100 * (r["ci_high"] - r["mean"])]]
                   if pd.notna(r["ci_low"]) else None)
            ax.errorbar([x], [100 * r["mean"]], yerr=err, marker="o" if kind == "lora" else "s", capsize=3,
                        color=colors.get(kind, "black"))
            ax.annotate(arm, (x, 100 * r["mean"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel(label)
        ax.margins(x=0.15)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{'exact match' if col == 'test_em' else 'answer containment'} on held-out facts, %")
    axes[0].set_ylim(-3, 108)
    axes[1].legend(fontsize=8, loc="center", bbox_to_anchor=(0.55, 0.28))
    fig.suptitle("Knowledge injection: accuracy on held-out facts against training cost "
                 "(mean over seeds, 95% CI)", fontsize=10)
    return [_save(fig, folder / PLOT)]
