"""popularity, the reading half: per-item table -> per (arm, seed, bucket) rates -> bucket
summaries, claims, the plot and report.md. Saved tables only; no model code."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.metrics.scores import EM_LEGEND
from bench.report.claims import NOT_RUN, Claim, fmt_ci, interval_verdict, markdown_rows, not_run, results_present
from bench.report.plots import _save
from bench.report.tables import arm_of_kind, mean_ci, summarize_long

EXPERIMENT = "popularity"
CLAIM_TEXT = "RAG helps the least popular facts most (Soudani et al. 2024)"
CLAIM_LORA_TEXT = "RAG's advantage over fine-tuning is largest for the least popular facts (Soudani et al. 2024)"
ITEMS_CSV, SEEDS_CSV, BUCKETS_CSV = "items.csv", "seeds.csv", "buckets.csv"
METRICS = ("exact_match", "token_f1", "recall_at_k")   # recall: retrieving arms only (else NaN)
PLOTTED = METRICS[:2]


def bucket_labels(starts) -> list[str]:
    """(1, 2, 3, 5) -> ['1', '2', '3-4', '5+']."""
    starts = list(starts)
    labels = []
    for i, lo in enumerate(starts):
        if i == len(starts) - 1:
            labels.append(f"{lo}+")
        else:
            hi = starts[i + 1] - 1
            labels.append(str(lo) if hi == lo else f"{lo}-{hi}")
    return labels


def bucket_of(popularity: int, starts) -> str | None:
    """The label of the bucket a popularity falls in (None below the first bound)."""
    labels = bucket_labels(starts)
    hit = None
    for lo, label in zip(starts, labels):
        if popularity >= lo:
            hit = label
    return hit


def seed_metrics(table: pd.DataFrame, starts) -> pd.DataFrame:
    """Scored per-item table -> (arm, arm_kind, seed, bucket, metric, value, items), answerable
    items only; every bucket appears for every cell (value NaN and items 0 when empty)."""
    answerable = table[table["kind"] == "answerable"].copy()
    answerable["bucket"] = [bucket_of(int(p), starts) for p in answerable["popularity"]]
    labels = bucket_labels(starts)
    rows = []
    for (arm, seed), cell in answerable.groupby(["arm", "seed"], sort=False):
        kind = cell["arm_kind"].iloc[0] if "arm_kind" in cell else arm
        for bucket in [*labels, "all"]:
            items = cell if bucket == "all" else cell[cell["bucket"] == bucket]
            for metric in METRICS:
                if metric not in items:
                    continue
                values = items[metric].astype(float).dropna()
                rows.append({"arm": arm, "arm_kind": kind, "seed": int(seed), "bucket": bucket,
                             "metric": metric, "value": float(values.mean()) if len(values) else math.nan,
                             "items": int(len(items))})
    return pd.DataFrame(rows, columns=["arm", "arm_kind", "seed", "bucket", "metric", "value", "items"])


def bucket_summary(seeds: pd.DataFrame) -> pd.DataFrame:
    """(arm, bucket, metric, mean, ci_low, ci_high, n, items_per_seed) with 95% t-intervals."""
    return summarize_long(seeds, ("arm", "bucket"), {"items_per_seed": lambda g: float(g["items"].mean())})


def long_summary(buckets: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: (arm, metric, mean, ci_low, ci_high, n); metric `exact_match@pop=3-4` etc.,
    and the plain metric name for all answerable items together."""
    out = buckets.assign(metric=[m if b == "all" else f"{m}@pop={b}" for m, b in zip(buckets["metric"], buckets["bucket"])])
    return out[["arm", "metric", "mean", "ci_low", "ci_high", "n"]].reset_index(drop=True)


def gain_difference(seeds: pd.DataFrame, better: str, base: str, first: str, last: str,
                    metric: str = "exact_match"):
    """Per seed: (better - base) in bucket `first` minus (better - base) in bucket `last`;
    mean and 95% CI over seeds, plus the two gains' means."""
    s = seeds[seeds["metric"] == metric].pivot_table(index=["seed", "bucket"], columns="arm", values="value",
                                                     dropna=False)
    gain = (s[better] - s[base]).unstack("bucket")
    per_seed = (gain[first] - gain[last]).dropna()
    return mean_ci(per_seed.tolist()), float(gain[first].mean()), float(gain[last].mean())


def _order(seeds: pd.DataFrame) -> list[str]:
    return [b for b in dict.fromkeys(seeds["bucket"]) if b != "all"]


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, SEEDS_CSV):
        return [not_run(f"{EXPERIMENT}.rag_gain", CLAIM_TEXT, EXPERIMENT),
                not_run(f"{EXPERIMENT}.rag_vs_lora", CLAIM_LORA_TEXT, EXPERIMENT)]
    seeds = pd.read_csv(results_dir / SEEDS_CSV, dtype={"bucket": str})
    return [_claim(seeds, "closed_book", f"{EXPERIMENT}.rag_gain", CLAIM_TEXT),
            _claim(seeds, "lora", f"{EXPERIMENT}.rag_vs_lora", CLAIM_LORA_TEXT)]


def _claim(seeds: pd.DataFrame, base_kind: str, claim_id: str, text: str) -> Claim:
    order = _order(seeds)
    first, last = (order[0], order[-1]) if order else (None, None)
    rule = (f"per seed, gain = rag - {base_kind} exact match in a bucket; supported when the 95% CI "
            f"over seeds of (gain in the least popular bucket ({first} document(s)) - gain in the most "
            f"popular bucket ({last})) lies above 0; contradicted when below 0; otherwise inconclusive")
    rag, base = arm_of_kind(seeds, "rag"), arm_of_kind(seeds, base_kind)
    if rag is None or base is None or len(order) < 2:
        return Claim(claim_id, text, EXPERIMENT, f"the saved tables lack a rag or {base_kind} arm or buckets",
                     NOT_RUN, rule)
    (m, lo, hi, n), g_first, g_last = gain_difference(seeds, rag, base, first, last)
    items = seeds[(seeds["metric"] == "exact_match") & (seeds["arm"] == rag)].groupby("bucket")["items"].mean()
    measured = (f"{rag} - {base} exact match: {100 * g_first:+.1f} points in bucket {first} "
                f"({items.get(first, 0):.0f} items/seed), {100 * g_last:+.1f} in bucket {last} "
                f"({items.get(last, 0):.0f} items/seed); difference {fmt_ci(m, lo, hi)} points (n={n} seeds)")
    return Claim(claim_id, text, EXPERIMENT, measured, interval_verdict(lo, hi), rule)


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, SEEDS_CSV):
        return []
    seeds = pd.read_csv(results_dir / SEEDS_CSV, dtype={"bucket": str})
    return [plot(seeds, results_dir / "popularity.png")]


def plot(seeds: pd.DataFrame, path: Path) -> Path:
    buckets = bucket_summary(seeds)
    order = _order(seeds)
    arms = list(dict.fromkeys(seeds["arm"]))
    first = seeds[(seeds["arm"] == arms[0]) & (seeds["metric"] == METRICS[0])]
    counts = first.groupby("bucket")["items"].sum()
    n = int(seeds["seed"].nunique())
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric, title in zip(axes, PLOTTED, ("exact match", "token F1")):
        for i, arm in enumerate(arms):
            b = buckets[(buckets["arm"] == arm) & (buckets["metric"] == metric)].set_index("bucket").reindex(order)
            dodge = (i - (len(arms) - 1) / 2) * 0.06      # keeps overlapping error bars apart
            ax.errorbar([x + dodge for x in range(len(order))], 100 * b["mean"],
                        yerr=[100 * (b["mean"] - b["ci_low"]), 100 * (b["ci_high"] - b["mean"])],
                        marker="o", capsize=3, label=arm)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([f"{b}\n({int(counts.get(b, 0))} items)" for b in order])
        ax.set_xlabel(f"documents mentioning the person (items over {n} seeds)")
        ax.set_ylabel(f"{title}, % (mean over {n} seeds, 95% CI)")
        ax.set_ylim(-2, 102)
        ax.set_title(f"{title} by popularity bucket")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _reading_notes(seeds: pd.DataFrame, buckets: pd.DataFrame, order: list[str]) -> list[str]:
    """What the table implies, with its numbers (computed, so a rerun cannot leave stale text)."""
    def row(kind: str, metric: str) -> str | None:
        arm = arm_of_kind(seeds, kind)
        if arm is None:
            return None
        b = buckets[(buckets["arm"] == arm) & (buckets["metric"] == metric)].set_index("bucket")
        if b.reindex(order)["mean"].isna().all():
            return None
        return f"{arm} " + " / ".join(f"{100 * b.loc[k, 'mean']:.1f}" for k in order)

    notes = []
    closed = [r for r in (row("closed_book", "exact_match"), row("lora", "exact_match")) if r]
    no_retrieval = buckets[buckets["arm"].isin([arm_of_kind(seeds, k) for k in ("closed_book", "lora")])
                           & (buckets["metric"] == "exact_match") & buckets["bucket"].isin(order)]
    spread = (no_retrieval.groupby("arm")["mean"].max() - no_retrieval.groupby("arm")["mean"].min()).max()
    if closed and spread < 0.05:   # within 5 points in every bucket
        notes.append(f"- Without retrieval, exact match is flat across the buckets {' / '.join(order)} "
                     f"({'; '.join(closed)} %; spread under 5 points): the base model knows none of these people, however many "
                     "documents mention them, and the adapter does not turn extra documents into answers. In "
                     "Soudani et al. the base model knows popular entities, which is why RAG adds least there; "
                     "that prior knowledge, the mechanism behind the claim, is absent from a synthetic world.")
    recall = row("rag", "recall_at_k")
    if recall:
        r = buckets[(buckets["arm"] == arm_of_kind(seeds, "rag")) & (buckets["metric"] == "recall_at_k")]
        r = r.set_index("bucket")["mean"]
        why = ("rises with popularity: a popular person's fact is stated in more documents, so there are more "
               "gold passages to hit" if r.get(order[-1], 0) > r.get(order[0], 0) else
               "does not rise with popularity: more passages about a popular person compete for the top slot")
        notes.append(f"- Retrieval recall@k by bucket ({recall} %) {why}.")
    return notes


def report_md(cfg, s, quick, seeds, buckets, dist, cells, found, timings) -> str:
    order = _order(seeds)
    arms = list(dict.fromkeys(seeds["arm"]))
    per_seed = seeds[(seeds["arm"] == arms[0]) & (seeds["metric"] == "exact_match")]
    counts = per_seed.pivot_table(index="bucket", columns="seed", values="items").reindex([*order, "all"])
    thin = [b for b in order if counts.loc[b].min() < s.min_items_per_bucket]
    share = dist.groupby("documents")["entities"].sum()
    share = share / share.sum()
    dist_text = ", ".join(f"{label}: {100 * sum(share.get(p, 0) for p in share.index if bucket_of(p, s.bucket_starts) == label):.0f}%"
                          for label in order)

    def table(metric: str) -> list[str]:
        lines = ["| arm | " + " | ".join(f"{b} doc(s)" for b in order) + " | all |",
                 "|---|" + "---|" * (len(order) + 1)]
        for arm in arms:
            b = buckets[(buckets["arm"] == arm) & (buckets["metric"] == metric)].set_index("bucket")
            lines.append(f"| {arm} | " + " | ".join(
                fmt_ci(*b.loc[k, ["mean", "ci_low", "ci_high"]]) if k in b.index else "n/a"
                for k in [*order, "all"]) + " |")
        return lines

    count_table = ["| bucket | " + " | ".join(f"seed {c}" for c in counts.columns) + " |",
                   "|---|" + "---|" * len(counts.columns)]
    count_table += [f"| {b} | " + " | ".join(str(int(v)) for v in counts.loc[b]) + " |" for b in counts.index]
    adapted = cells["adapter_cached"].dropna() if "adapter_cached" in cells else pd.Series(dtype=bool)
    md = [f"# popularity: {cfg.claim.strip()}", "", cfg.description.strip(), "",
          f"Model `{cfg.model.name}`; synthetic world of {cfg.data.world.entities} people, a fresh world per "
          f"seed; seeds {list(cfg.seeds)}{' (--quick)' if quick else ''}; every answerable question of the "
          f"splits {list(cfg.data.eval_splits)}"
          f"{'' if cfg.data.max_items is None else f' (at most {cfg.data.max_items} items per split)'}. "
          f"Popularity = documents that mention the person (the first is a full biography, extra ones "
          f"mention a random subset of the facts). People per popularity bucket in these worlds: {dist_text}. "
          "Buckets follow that distribution. Exact match and token F1 in %, mean over seeds [95% t-interval].",
          "", "![popularity](popularity.png)", "", "### Exact match by popularity bucket", "",
          *table("exact_match"), "", EM_LEGEND, "", "### Token F1 by popularity bucket", "", *table("token_f1"), "",
          "### Items per bucket and seed", "", *count_table, "",
          (f"Buckets with fewer than {s.min_items_per_bucket} items in some seed: {thin}; their CIs are wide."
           if thin else f"Every bucket has at least {s.min_items_per_bucket} items in every seed."), "",
          "## Claims and verdicts", "", markdown_rows(found), "",
          "## Notes", "",
          *_reading_notes(seeds, buckets, order),
          f"- Adapters: {int(adapted.astype(bool).sum())} of {len(adapted)} adapted cells "
          + ("loaded from the cache." if quick else "loaded from the cache (the accuracy experiment's)."),
          f"- Timings: total {timings['total']:.0f} s.",
          "- Tables: `seeds.csv` (arm, seed, bucket, metric, value, items), `buckets.csv` (means and CIs "
          "per bucket), `summary.csv` (long form, metric `exact_match@pop=<bucket>`), `world_popularity.csv` "
          "(people per document count and seed), `cells.csv`."]
    return "\n".join(md) + "\n"
