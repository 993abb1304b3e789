"""forgetting, the reading half: the saved per_seed.csv -> the long summary and one wide row per
adapter (means and 95% CIs over seeds), the claims, the plot and report.md. Saved tables only;
no model code."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.metrics.scores import EM_LEGEND
from bench.report.claims import Claim, fmt_ci, interval_verdict, markdown_rows, not_run, results_present
from bench.report.plots import _save
from bench.report.tables import paired
from bench.studies.forgetting.shared import general_knowledge_items, seed_summary, template_arm
from bench.studies.forgetting.sweep import sweep_seeds

NAME = "forgetting"
CLAIM = "narrow fine-tuning causes catastrophic forgetting"
BASE = "base"
# per-seed metrics; every one is a share of items answered exactly (EM), except the last three
METRICS = ["background_trained_em", "background_heldout_em", "background_trained_drop",
           "background_heldout_drop", "world_trained_em", "world_heldout_em", "world_reading_em",
           "epochs", "train_seconds", "trainable_parameters"]
LABELS = {"background_trained_em": "background, QA-trained facts",
          "background_heldout_em": "background, document-only facts",
          "world_trained_em": "test world, trained facts (closed-book)",
          "world_heldout_em": "test world, held-out facts (closed-book)",
          "world_reading_em": "test world, reading with RAG (hybrid)"}
PLOT = "forgetting.png"
# a real model's background is general knowledge (measure.py): the same columns, other meanings
GENERAL_LABELS = {"background_trained_em": "general knowledge the base model answered",
                  "background_heldout_em": "all general-knowledge questions"}


def background_kind(results_dir: Path) -> str:
    per_seed = pd.read_csv(Path(results_dir) / "per_seed.csv")
    return str(per_seed["background"].iloc[0]) if "background" in per_seed else "world"


def series_labels(results_dir: Path) -> dict:
    general = background_kind(results_dir) == "general_knowledge"
    return {**LABELS, **GENERAL_LABELS} if general else LABELS


# -- tables ----------------------------------------------------------------------------------

def tables(per_seed: pd.DataFrame, s) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary in long form, one wide row per variant with means and CIs over seeds)."""
    long, cis = seed_summary(per_seed, "variant", METRICS)
    wide = []
    for variant, group in per_seed.groupby("variant", sort=False):
        steps, rank = int(group["steps"].iloc[0]), int(group["rank"].iloc[0])
        wide.append({"variant": variant, "steps": steps, "rank": rank,
                     "in_steps_sweep": variant == BASE or (rank == s.base_rank and steps in s.steps),
                     "in_rank_sweep": variant == BASE or (steps == s.base_steps and rank in s.ranks),
                     "n": len(group), **cis[variant]})
    return long, pd.DataFrame(wide)


# -- claims and plots from saved tables ------------------------------------------------------

def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    ids = [(NAME, CLAIM), (f"{NAME}.steps", "forgetting grows with training length (epochs)"),
           (f"{NAME}.rank", "a higher LoRA rank forgets more (LoRA learns less and forgets less, "
                            "Biderman et al. 2024)")]
    if not results_present(results_dir, "forgetting.csv", "per_seed.csv"):
        return [not_run(i, text, NAME) for i, text in ids]
    wide = pd.read_csv(results_dir / "forgetting.csv")
    per_seed = pd.read_csv(results_dir / "per_seed.csv")
    lora = wide[wide["variant"] != BASE]
    base_row = lora[lora["in_steps_sweep"] & lora["in_rank_sweep"]].iloc[0]
    base = wide[wide["variant"] == BASE].iloc[0]
    d = "background_trained_drop"
    lo, hi = base_row[f"{d}_lo"], base_row[f"{d}_hi"]
    verdict = interval_verdict(lo, hi)
    def pts(r, m):
        return fmt_ci(r[m], r[f"{m}_lo"], r[f"{m}_hi"])
    sweep = "; ".join(f"{int(r.steps)} steps/r{int(r['rank'])}: {pts(r, d)}"
                      for _, r in lora.iterrows() if r.variant != base_row.variant)
    general = background_kind(results_dir) == "general_knowledge"
    known = ("general-knowledge questions the base model answered (answer containment)" if general
             else "background facts the base model knew")
    others = "all general-knowledge questions" if general else "document-only facts"
    main = Claim(
        NAME, CLAIM, NAME,
        f"closed-book {'accuracy' if general else 'EM'} on {known}: {base['background_trained_em'] * 100:.1f}% "
        f"before, {pts(base_row, 'background_trained_em')}% after the accuracy adapter "
        f"({int(base_row.steps)} steps = {base_row.epochs:.1f} epochs, rank {int(base_row['rank'])}): "
        f"a drop of {pts(base_row, d)} points (n={int(base_row.n)} seeds); {others} "
        f"{base['background_heldout_em'] * 100:.1f}% -> {pts(base_row, 'background_heldout_em')}%. "
        f"Drops per adapter: {sweep}. The adapter's own gain: trained test-world facts "
        f"{base['world_trained_em'] * 100:.1f}% -> {pts(base_row, 'world_trained_em')}%",
        verdict,
        "supported when the 95% CI over seeds of (before - after) background accuracy on the "
        + ("known general-knowledge questions" if general else "QA-trained background facts")
        + ", for the accuracy adapter, lies above 0; contradicted when below 0; "
        "inconclusive otherwise. 'Catastrophic' is the size of that drop, stated, not a threshold")
    out = [main]
    for cid, text, col, key in ((ids[1][0], ids[1][1], "in_steps_sweep", "steps"),
                                (ids[2][0], ids[2][1], "in_rank_sweep", "rank")):
        rows = lora[lora[col]].sort_values(key)
        if len(rows) < 2:
            out.append(Claim(cid, text, NAME, "only one setting swept", "inconclusive at this model scale",
                             "needs at least two settings"))
            continue
        small, large = rows.iloc[0], rows.iloc[-1]
        diff = paired(per_seed, large.variant, small.variant, d, by="variant")
        m, dlo, dhi, n = diff
        out.append(Claim(
            cid, text, NAME,
            f"background drop at {key} {int(small[key])}: {pts(small, d)} points, at {key} "
            f"{int(large[key])}: {pts(large, d)}; difference {fmt_ci(m, dlo, dhi)} points (n={n} seeds)",
            interval_verdict(dlo, dhi),
            f"supported when the 95% CI over seeds of the seed-paired difference in background drop "
            f"(largest minus smallest {key}) lies above 0; contradicted when below; else inconclusive"))
    return out


def plots(results_dir: Path) -> list[str]:
    """The plots the saved tables make (redraw draws them, the report shows them)."""
    return [PLOT] if results_present(results_dir, "forgetting.csv") else []


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not plots(results_dir):
        return []
    wide = pd.read_csv(results_dir / "forgetting.csv")
    base = wide[wide["variant"] == BASE].iloc[0]
    lora = wide[wide["variant"] != BASE]
    names = series_labels(results_dir)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    styles = {"background_trained_em": ("C0", "-", "o"), "background_heldout_em": ("C0", "--", "s"),
              "world_trained_em": ("C1", "-", "o"), "world_reading_em": ("C2", "-", "^")}
    for ax, col, key in ((axes[0], "in_steps_sweep", "steps"), (axes[1], "in_rank_sweep", "rank")):
        rows = lora[lora[col]].sort_values(key)
        for metric, (color, ls, marker) in styles.items():
            if metric not in rows or rows[metric].isna().all():
                continue
            err = [rows[metric] - rows[f"{metric}_lo"], rows[f"{metric}_hi"] - rows[metric]]
            ax.errorbar(rows[key], rows[metric], yerr=err, color=color, ls=ls, marker=marker,
                        capsize=3, label=f"{names[metric]} (after)")
            if pd.notna(base[metric]):
                ax.axhline(base[metric], color=color, ls=":", lw=1)
        ax.set_xscale("log", base=2 if key == "rank" else 10)
        ax.minorticks_off()
        ax.set_xticks(rows[key].tolist())
        if key == "steps":
            # epochs bare under the steps (the axis label names both): "1.6 ep" labels collide
            # once the sweep has neighbours like 150 and 200 on a log axis
            ax.set_xticklabels([f"{int(v)}\n({e:.1f})" for v, e in zip(rows[key], rows["epochs"])],
                               fontsize=8)
            other = int(rows["rank"].iloc[0])
            ax.set_title(f"by training steps (rank {other})")
        else:
            ax.set_xticklabels([str(int(v)) for v in rows[key]])
            ax.set_title(f"by LoRA rank ({int(rows['steps'].iloc[0])} steps)")
        ax.set_xlabel("steps (epochs)" if key == "steps" else "rank")
        ax.set_ylim(-0.02, 1.05)
    axes[0].set_ylabel("exact match (mean over seeds, 95% CI)")
    axes[1].plot([], [], color="gray", ls=":", label="before: the base model")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.05))
    return [_save(fig, results_dir / PLOT)]


# -- report ----------------------------------------------------------------------------------

def _table(wide: pd.DataFrame, general: bool = False) -> str:
    cols = ["background_trained_em", "background_trained_drop", "background_heldout_em",
            "world_trained_em", "world_heldout_em", "world_reading_em"]
    bg = (["known GK (contains)", "known GK drop", "all GK (contains)"] if general else
          ["bg trained EM", "bg trained drop", "bg doc-only EM"])
    head = ["adapter", "n", "steps", "epochs", "rank", *bg,
            "world trained EM", "world held-out EM", "world reading EM"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in wide.iterrows():
        cells = ["base model (before)" if r.variant == BASE else r.variant, str(int(r.n)),
                 str(int(r.steps)) if r.steps else "-", f"{r.epochs:.1f}" if r.steps else "-",
                 str(int(r["rank"])) if r["rank"] else "-"]
        cells += [fmt_ci(r[c], r[f"{c}_lo"], r[f"{c}_hi"]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", EM_LEGEND])


def tradeoff(wide: pd.DataFrame) -> str:
    """One sentence from the table: what the accuracy adapter bought and what it cost."""
    base = wide[wide["variant"] == BASE].iloc[0]
    lora = wide[(wide["variant"] != BASE) & wide["in_steps_sweep"] & wide["in_rank_sweep"]].iloc[0]
    text = (f"Trade-off of the accuracy adapter ({int(lora.steps)} steps, rank {int(lora['rank'])}): "
            f"closed-book EM on the test-world facts it was trained on went from "
            f"{base.world_trained_em * 100:.1f}% to {lora.world_trained_em * 100:.1f}% (held-out facts "
            f"{base.world_heldout_em * 100:.1f}% -> {lora.world_heldout_em * 100:.1f}%), while recall "
            f"of the QA-trained background facts went from {base.background_trained_em * 100:.1f}% to "
            f"{lora.background_trained_em * 100:.1f}%")
    if pd.notna(lora.world_reading_em) and pd.notna(base.world_reading_em):
        text += (f"; reading with one retrieved passage: {base.world_reading_em * 100:.1f}% (rag, base "
                 f"model) -> {lora.world_reading_em * 100:.1f}% (hybrid)")
    return text + "."


def _timing(out: Path, seconds: float) -> str:
    trained = pd.read_csv(out / "per_seed.csv")
    trained = trained[trained["variant"] != BASE]
    new = ~trained["adapter_cached"].astype(bool)
    return (f"This run took {seconds:.0f} s (cells already answered are replayed from their logs). "
            f"Of the {len(trained)} adapters, {int(new.sum())} were trained by this study "
            f"({trained.loc[new, 'train_seconds'].sum():.0f} s of training) and {int((~new).sum())} came "
            f"from the adapter cache (the accuracy experiment's); all {len(trained)} together took "
            f"{trained['train_seconds'].sum():.0f} s to train, as measured when each was trained.")


def _background_text(out: Path, s) -> str:
    if background_kind(out) != "general_knowledge":
        return (f"Background: {s.background_items} QA-trained and {s.background_items} document-only "
                f"background questions (fixed sample), closed-book, exact match.")
    return (f"Background: the {len(general_knowledge_items())} general-knowledge questions of "
            "bench/data/general_knowledge.jsonl "
            "(capitals, chemical symbols, authors, currencies, ...), closed-book, scored by answer "
            "containment (GK columns: a gold answer occurs in the answer); 'known' = those the base "
            "model answered (asked, like the adapters, with the system message and no worked turns), "
            "so its before-value is 100% and the drop is the share of known facts lost.")


def report_md(cfg, s, out: Path, seconds: float) -> str:
    """report.md: the setting, the plot, the table, the verdicts and the trade-off."""
    wide = pd.read_csv(out / "forgetting.csv")
    cl = claims(out)
    lora = template_arm(cfg, "lora", cfg.source).settings
    md = [f"# forgetting: {CLAIM}", "", (cfg.description or "").strip(), "",
          f"Model `{cfg.model.name}`; test world of {cfg.data.world.entities} people (a fresh one per "
          f"seed), seeds {list(cfg.seeds)} for the base model and the accuracy adapter, "
          f"{list(sweep_seeds(cfg, s))} for the other adapters (n per row). LoRA: the accuracy arm's "
          f"recipe (rank {lora.lora.rank}, "
          f"alpha {lora.lora.alpha}, {lora.lora.steps} steps, batch {lora.lora.batch_size}, lr "
          f"{lora.lora.lr}, replay share {lora.lora.replay_share}, targets "
          f"{', '.join(lora.lora.target_modules)}) with steps swept over {list(s.steps)} at rank "
          f"{s.base_rank} and rank over {list(s.ranks)} at {s.base_steps} steps (alpha / rank kept). "
          f"{_background_text(out, s)} Test world: answerable "
          f"items only, up to {cfg.data.max_items} per split and seed. Epochs = steps x new "
          f"examples per batch / training examples. Means over seeds with 95% t-intervals (n = "
          f"seeds; EM and drops in %, drops in points). {_timing(out, seconds)}", "",
          *[f"![{Path(p).stem}]({p})" for p in plots(out)], "",
          _table(wide, background_kind(out) == "general_knowledge"), "",
          "## Verdict", "", markdown_rows(cl), ""]
    md += [tradeoff(wide), ""]
    return "\n".join(md) + "\n"
