"""accuracy, the reading half: report.md, claims and plots of the head-to-head, every number and
verdict computed from the saved tables.

Verdict rule (written into the report too): a difference between two arms is *supported* when
the 95% CI of the seed-paired difference lies above zero, *contradicted* when it lies below
zero, and *inconclusive* otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.report.claims import (Claim, NOT_RUN, all_of, arm_names, interval_text, interval_verdict,
                                 markdown_rows, not_run, read_manifest, results_present)
from bench.metrics.scores import header
from bench.report.tables import lookup, paired_difference

REPORTED = {"rougeL": ("ROUGE", 16.0), "bleu": ("BLEU", 15.0)}   # Lakatos et al. 2024, in %
HYBRID_METRICS = ("exact_match", "rougeL")
COLUMNS = [("exact_match", header("exact_match"), 100), ("contains", header("contains"), 100),
           ("token_f1", header("token_f1"), 100),
           ("rouge1", header("rouge1"), 100), ("rougeL", header("rougeL"), 100),
           ("bleu", header("bleu"), 1), ("corpus_bleu", header("corpus_bleu"), 1),
           ("semantic_similarity", "sem. sim.", 100),
           ("hallucinated", "halluc. %", 100), ("abstained", "abstain %", 100),
           ("faithfulness", "faithful %", 100), ("recall_at_k", "recall@k %", 100),
           ("t_total", "ms/query", 1000)]
RULE = ("A difference is **supported** when the 95% CI of the seed-paired difference lies above "
        "zero, **contradicted** when it lies below zero, **inconclusive** otherwise.")
# the claims of the articles this experiment tests: (id, text, rule)
ACCURACY = ("accuracy", "RAG beats fine-tuning on ROUGE (~16%) and BLEU (~15%) on average "
            "(Lakatos et al. 2024)",
            "supported when the 95% CI of the seed-paired difference rag - lora lies above zero on "
            "both ROUGE-L and BLEU, contradicted when it lies below zero on either, inconclusive "
            "otherwise; the direction is judged, the size is shown beside the reported one")
LOWER = ("hybrid.lakatos", "combining fine-tuning with RAG can lower scores below RAG alone "
         "(Lakatos et al. 2024)",
         "supported when the 95% CI of the seed-paired difference hybrid - rag lies below zero on "
         "both EM and ROUGE-L, contradicted when it lies above zero on either, inconclusive otherwise")
HELPS = ("hybrid.raft", "combining fine-tuning with RAG helps: better than either alone "
         "(Balaguer et al. 2024; RAFT)",
         "supported when the 95% CIs of the seed-paired differences hybrid - rag and hybrid - lora "
         "lie above zero on EM and ROUGE-L, contradicted when any lies below zero, inconclusive "
         "otherwise; this hybrid is the LoRA adapter plus retrieval, not RAFT-trained")


def fmt(summary: pd.DataFrame, arm: str, metric: str, scale: float) -> str:
    row = summary[(summary["arm"] == arm) & (summary["metric"] == metric)]
    if not len(row) or pd.isna(row["mean"].iloc[0]):
        return "n/a"
    m, lo, hi = (float(row[c].iloc[0]) for c in ("mean", "ci_low", "ci_high"))
    return interval_text(m, lo, hi, scale)


def summary_markdown(summary: pd.DataFrame) -> str:
    arms = list(dict.fromkeys(summary["arm"]))
    lines = ["| arm | " + " | ".join(label for _, label, _ in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(fmt(summary, arm, m, s) for m, _, s in COLUMNS) + " |")
    return "\n".join(lines)


def verdict(diff) -> str:
    if diff is None or math.isnan(diff[0]):
        return NOT_RUN
    return interval_verdict(diff[1], diff[2])


def _negated(diff):
    return None if diff is None else (-diff[0], -diff[2], -diff[1], diff[3])


def _diff_text(diff, scale: float = 100) -> str:
    m, lo, hi, n = diff
    return f"{interval_text(m, lo, hi, scale, '+.1f', ' points')} (n={n} seeds)"


def find_arm(cfg, kind: str) -> str | None:
    return next((a.name for a in cfg.arms if a.arm == kind), None)


def lakatos_rows(table, summary, rag: str, lora: str) -> list[tuple]:
    """Per reported metric: (metric, label, reported %, scale, rag mean, lora mean, relative
    gain text, seed-paired rag - lora). `table` holds per-item or per-(arm, seed) scores."""
    rows = []
    for metric, (label, reported) in REPORTED.items():
        a, b = lookup(summary, rag, metric), lookup(summary, lora, metric)
        rel = f"{100 * (a - b) / b:+.0f}%" if b > 0 else "n/a (lora = 0)"
        rows.append((metric, label, reported, 1 if metric == "bleu" else 100, a, b, rel,
                     paired_difference(table, rag, lora, metric)))
    return rows


def claim_section(table, summary, rag: str, lora: str) -> list[str]:
    out = ["## The claim: RAG beats fine-tuning by ~16% ROUGE and ~15% BLEU", "",
           "| metric | rag | lora | rag - lora | relative | reported | verdict (rag > lora) |",
           "|---|---|---|---|---|---|---|"]
    for metric, label, reported, scale, a, b, rel, diff in lakatos_rows(table, summary, rag, lora):
        out.append(f"| {header(metric)} | {a * scale:.1f} | {b * scale:.1f} | "
                   f"{_diff_text(diff, scale).replace(' points', '')} | {rel} | +{reported:.0f}% | "
                   f"{verdict(diff)} |")
    out += ["", f"The BLEU judged is the mean sentence BLEU (normalised text, effective n-gram order, "
                f"exp smoothing, best single gold); the article does not name its variant. Corpus BLEU "
                f"(sacrebleu's standard, every gold a reference) over the same answers: {rag} "
                f"{fmt(summary, rag, 'corpus_bleu', 1)}, {lora} {fmt(summary, lora, 'corpus_bleu', 1)}; "
                f"it needs 4-grams, so answers of one to three words score 0 unless some answers in "
                f"the run are longer."]
    return out


def hybrid_diffs(table, hybrid: str, others) -> list[tuple]:
    """(other arm, metric, seed-paired hybrid - other) for each other arm present."""
    return [(other, metric, paired_difference(table, hybrid, other, metric))
            for other in others if other is not None for metric in HYBRID_METRICS]


def hybrid_section(table, rag: str | None, lora: str | None, hybrid: str) -> list[str]:
    out = ["## Does the hybrid help?", ""]
    for other, metric, diff in hybrid_diffs(table, hybrid, (rag, lora)):
        out.append(f"- {hybrid} - {other}, {metric}: {_diff_text(diff)} -> hybrid better: "
                   f"**{verdict(diff)}**")
    out += ["", "Lakatos et al. 2024 found fine-tuning + RAG *worse* than RAG; Ovadia et al. 2023 "
            "found it close behind RAG; Soudani et al. 2024 found it best for a 1.6B model."]
    return out


def separation_section(table, summary, cfg, probes: pd.DataFrame | None) -> list[str]:
    from bench.report.outputs import primary_split

    split, base = primary_split(table), find_arm(cfg, "closed_book")
    out = ["## Are the arms separated? (acceptance: rag >= +30, lora >= +20 EM points over closed_book)", ""]
    if base is None:
        return out + ["No closed_book arm in this config: not checked."]
    for kind, need in (("rag", 30), ("lora", 20), ("hybrid", None)):
        arm = find_arm(cfg, kind)
        if arm is None:
            continue
        diff = paired_difference(table[table["split"] == split], arm, base, "exact_match")
        status = "" if need is None else (" -> **meets**" if diff[0] * 100 >= need else
                                          f" -> **misses** the +{need} target")
        out.append(f"- {arm} - {base}, exact match: {_diff_text(diff)}{status}")
    if (table["split"] == "train").any():
        out += [""] + [trained_vs_heldout(table, arm.name, base) for arm in cfg.arms if arm.arm == "lora"]
    if probes is not None:
        out += ["", "Pocket-model probes (`results/probes/summary.csv`) that bound these arms:", "",
                "| probe | metric | value | n |", "|---|---|---|---|"]
        for _, r in probes.iterrows():
            value = f"{r['value']:,.0f}" if r["value"] > 1 else f"{100 * r['value']:.1f}%"
            out.append(f"| {r['probe']} | {r['metric']} | {value} | {r['n']} |")
    return out


def trained_vs_heldout(table: pd.DataFrame, arm: str, base: str) -> str:
    """An adapter's EM on the facts it trained on as QA against the held-out answerable ones: the
    gap between the two is what a knowledge-injection recipe has to close."""
    def em(name, split):
        rows = table[(table["arm"] == name) & (table["split"] == split)]
        if split == "test":
            rows = rows[rows["kind"] == "answerable"]
        return 100 * rows["exact_match"].mean()
    trained, held = em(arm, "train"), em(arm, "test")
    line = (f"- {arm}: {trained:.1f}% exact on the facts it trained on as QA (train split), {held:.1f}% on "
            f"held-out answerable facts, whose questions no training set holds: they reach the adapter only "
            f"through the documents and what its recipe generates from them (closed_book {em(base, 'train'):.1f}% "
            f"and {em(base, 'test'):.1f}%).")
    if held < trained / 2:
        line += (" The adapter stores what it is shown as QA; turning a document sentence into a closed-book "
                 "answer is an extraction skill its recipe did not teach (see the injection study).")
    return line


def kind_table(breakdown: pd.DataFrame) -> list[str]:
    em = breakdown[breakdown["metric"] == "exact_match"].copy()
    wide = em.pivot_table(index="arm", columns=["split", "kind"], values="mean", sort=False)
    lines = ["## Exact match by question kind (%)", "",
             "| arm | " + " | ".join(f"{s}/{k}" for s, k in wide.columns) + " |",
             "|---|" + "---|" * len(wide.columns)]
    for arm, row in wide.iterrows():
        lines.append(f"| {arm} | " + " | ".join(f"{100 * v:.1f}" for v in row) + " |")
    return lines


def recipe_section(cfg, cells: pd.DataFrame) -> list[str]:
    """Which knowledge-injection recipe each adapted arm trained on and what it cost (means over
    seeds of what each adapter measured when it was trained)."""
    from bench.injection.recipe import training_label

    adapted = [a for a in cfg.arms if getattr(a.settings, "training", None) is not None]
    if not adapted:
        return []
    lines = ["## Recipes: what each adapter trained on, and its cost", "",
             "| arm | recipe | LoRA | examples | LoRA s | data s | tokens (k) |", "|---|---|---|---|---|---|---|"]
    for a in adapted:
        c = cells[cells["arm"] == a.name]
        mean = lambda col: float(c[col].mean()) if col in c and c[col].notna().any() else float("nan")
        lo = a.settings.lora
        lines.append(f"| {a.name} | {training_label(a.settings.training)} | r={lo.rank}, {lo.steps} steps x "
                     f"{lo.batch_size} | {mean('train_examples'):.0f} | {mean('train_seconds'):.0f} | "
                     f"{0.0 if pd.isna(mean('recipe_seconds')) else mean('recipe_seconds'):.1f} | "
                     f"{mean('train_tokens') / 1e3:.0f} |")
    return lines + ["", "Recipes: bench/injection (README, \"Knowledge-injection recipes\"); data s = seconds spent "
                    "generating the recipe's data (renderings, questions, teacher answers); a hybrid arm with "
                    "its lora arm's recipe and settings loads that arm's adapter.", ""]


def cells_table(cells: pd.DataFrame) -> list[str]:
    cols = [c for c in ("arm", "seed", "prepare_seconds", "index_build_seconds", "index_chunks",
                        "train_seconds", "train_tokens", "trainable_parameters", "adapter_cached")
            if c in cells.columns]
    lines = ["## What each cell cost to prepare", "", "| " + " | ".join(cols) + " |",
             "|" + "---|" * len(cols)]
    for _, r in cells[cols].iterrows():
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in r) + " |")
    return lines


def accuracy_report(cfg, table, summary, breakdown, cells,
                    probes_path: Path = Path("results/probes/summary.csv")) -> str:
    from bench.report.outputs import primary_split

    # the probes measure the pocket model: they bound its arms, no other model's
    probes = pd.read_csv(probes_path) if probes_path.exists() and cfg.model.name == "pocket" else None
    split = primary_split(table)
    full, table = table, table[table["split"] == split]    # the comparison is on one split
    rag, lora, hybrid = (find_arm(cfg, k) for k in ("rag", "lora", "hybrid"))
    n_items = int(full.groupby(["arm", "seed"]).size().max())
    lines = [f"# {cfg.name}: one runner, four arms, one table", "",
             cfg.description.strip(), "",
             f"Model `{cfg.model.name}`; data: {_data_text(cfg)}; seeds {list(cfg.seeds)}; up to "
             f"{n_items} items per (arm, seed) cell. Config hash `{cfg.hash()}`. Tables below are on "
             f"the `{split}` split (all question kinds), except where a split is named. Means over "
             f"seeds with 95% t-intervals (n = seeds). ROUGE-2 is left out: with one-word gold "
             f"answers it is 0 even for exact matches.", "",
             "![quality](quality.png)", "", summary_markdown(summary), ""]
    if rag and lora:
        lines += claim_section(table, summary, rag, lora) + [""]
    if hybrid:
        lines += hybrid_section(table, rag, lora, hybrid) + [""]
    names = {k: find_arm(cfg, k) for k in ("rag", "lora", "hybrid") if find_arm(cfg, k)}
    lines += ["## Verdicts on the articles' claims (as in the claims report)", "",
              markdown_rows(accuracy_claims(table, summary, names)), ""]
    lines += separation_section(full, summary, cfg, probes) + [""]
    lines += kind_table(breakdown) + [""]
    lines += ["## Latency by stage", "", "![latency](latency_stages.png)", ""]
    lines += recipe_section(cfg, cells) + cells_table(cells) + ["", "## Rule", "", RULE, ""]
    return "\n".join(lines)


def _data_text(cfg) -> str:
    d = cfg.data
    if d.world is not None:
        return (f"synthetic world, {d.world.entities} people, a fresh world per seed, "
                f"splits {list(d.eval_splits)}")
    return f"`{d.corpus}` + `{d.qa}`, splits {list(d.eval_splits)}"


# --- claims and plots from the saved tables (for report.md's readers and `make report`) ------

def _ci(diff, scale: float = 100) -> str:
    m, lo, hi, _ = diff
    return interval_text(m, lo, hi, scale, "+.1f")


LABELS = {"exact_match": "EM", "rougeL": "ROUGE-L", "bleu": "BLEU"}


def accuracy_claims(table, summary: pd.DataFrame, names: dict[str, str]) -> list[Claim]:
    """The three claims this experiment tests, from per-item or per-(arm, seed) scores."""
    rag, lora, hybrid = (names.get(k) for k in ("rag", "lora", "hybrid"))
    seeds = f"n={table['seed'].nunique()} seeds"
    out = []
    if rag and lora:
        rows = lakatos_rows(table, summary, rag, lora)
        measured = f"{rag} - {lora}: " + ", ".join(
            f"{LABELS[metric]} {_ci(d, scale)} points ({rel} relative; reported +{rep:.0f}%)"
            for metric, _, rep, scale, _, _, rel, d in rows) + f"; {seeds}"
        out.append(Claim(ACCURACY[0], ACCURACY[1], "accuracy", measured,
                         all_of(verdict(d) for *_, d in rows), ACCURACY[2]))
    else:
        out.append(Claim(*ACCURACY[:2], "accuracy", "no rag and lora arm in this run", NOT_RUN, ACCURACY[2]))
    diffs = hybrid_diffs(table, hybrid, (rag, lora)) if hybrid else []
    measured = "; ".join(f"{hybrid} - {other}: " + ", ".join(f"{LABELS[m]} {_ci(d)}" for o, m, d in diffs
                                                            if o == other) + " points"
                         for other in dict.fromkeys(o for o, _, _ in diffs))
    measured = f"{measured}; {seeds}" if diffs else "no hybrid arm in this run"
    vs_rag = [d for o, _, d in diffs if o == rag]
    out.append(Claim(LOWER[0], LOWER[1], "accuracy", measured,
                     all_of(verdict(_negated(d)) for d in vs_rag), LOWER[2]))
    both = rag is not None and lora is not None
    out.append(Claim(HELPS[0], HELPS[1], "accuracy", measured,
                     all_of(verdict(d) for _, _, d in diffs) if both else NOT_RUN, HELPS[2]))
    return out


def seed_table(results_dir: Path) -> pd.DataFrame | None:
    """Per-(arm, seed) means on the summary's split (per_seed.csv)."""
    if (results_dir / "per_seed.csv").exists():
        return pd.read_csv(results_dir / "per_seed.csv")
    return None


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    table = seed_table(results_dir)
    if table is None or not results_present(results_dir, "summary.csv", "manifest.json"):
        return [not_run(c[0], c[1], "accuracy") for c in (ACCURACY, LOWER, HELPS)]
    return accuracy_claims(table, pd.read_csv(results_dir / "summary.csv"), arm_names(results_dir))


def redraw(results_dir: Path) -> list[Path]:
    from bench.report.outputs import draw_plots

    results_dir = Path(results_dir)
    if not results_present(results_dir, "summary.csv"):
        return []
    manifest = read_manifest(results_dir)
    return draw_plots(pd.read_csv(results_dir / "summary.csv"), results_dir,
                      manifest.get("experiment", results_dir.name), manifest.get("summary_split", "test"))
