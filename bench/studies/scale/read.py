"""scale, the reading half: the per-(size, seed) table -> summary with CIs over seeds -> plot,
verdicts and report.md. Reads saved tables only (no model, no index), so `make report` can use it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from bench.report.claims import (CONTRADICTED, SUPPORTED, Claim, fmt_ci, markdown_rows, not_run,
                                 range_verdict, read_manifest, results_present)
from bench.report.plots import _save, plt
from bench.report.tables import mean_ci
from bench.retrieval.store import HNSW

QUOTED_MS = (100.0, 300.0)     # "retrieval adds typically 100-300 ms"


METRICS = ["n_chunks", "embed_s", "index_s", "disk_mb", "cold_query_ms", "embed_ms_p50",
           "embed_ms_p95", "search_ms_p50", "search_ms_p95", "total_ms_p50", "total_ms_p95",
           "embed_ms_batched", "search_ms_batched", "recall_at_k", "recall_at_1", "rag_em"]


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Long form, one arm per size (`rag@<size>`); the unit of the CI is the seed."""
    rows = []
    for size, group in table.groupby("size", sort=True):
        for metric in METRICS:
            m, lo, hi, n = mean_ci(group[metric].astype(float).tolist())
            rows.append({"arm": f"rag@{size}", "metric": metric, "mean": m, "ci_low": lo,
                         "ci_high": hi, "n": n})
    return pd.DataFrame(rows, columns=["arm", "metric", "mean", "ci_low", "ci_high", "n"])


def by_size(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    s = summary[summary["metric"] == metric].copy()
    s["size"] = s["arm"].str.split("@").str[1].astype(int)
    return s.set_index("size").sort_index()


def plot(summary: pd.DataFrame, path: Path, k: int) -> Path:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for metric, label, style in (("search_ms_p50", "HNSW search p50", "o-"),
                                 ("search_ms_p95", "HNSW search p95", "o--"),
                                 ("total_ms_p50", "embed + search p50", "s-"),
                                 ("total_ms_p95", "embed + search p95", "s--")):
        s = by_size(summary, metric)
        ax1.errorbar(s.index, s["mean"], yerr=[s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]],
                     fmt=style, capsize=3, label=label)
    ax1.axhspan(*QUOTED_MS, color="grey", alpha=0.15, label="quoted 100-300 ms")
    ax1.set(xscale="log", yscale="log", xlabel="knowledge base size (chunks)",
            ylabel="ms per query, batch size 1", title="retrieval latency vs corpus size")
    ax1.legend(fontsize=8)
    for metric, label in (("recall_at_k", f"recall@{k} (gold passage)"),
                          ("rag_em", "RAG exact match")):
        s = by_size(summary, metric)
        if s["mean"].notna().any():
            ax2.errorbar(s.index, s["mean"], yerr=[s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]],
                         fmt="o-", capsize=3, label=label)
    ax2.set(xscale="log", ylim=(0, 1.05), xlabel="knowledge base size (chunks)",
            ylabel="mean over seeds (95% CI)", title="retrieval and answer quality vs corpus size")
    ax2.legend(fontsize=8)
    return _save(fig, path)


SCALE_TEXT = "RAG scales to large knowledge bases"
QUOTED_TEXT = "retrieval adds typically 100-300 ms per query"


def verdicts(summary: pd.DataFrame, s) -> list[Claim]:
    """Both claims from the summary; `s` holds the study settings (Settings or the manifest's
    config): sizes, k, max_recall_drop, max_search_p95_ms."""
    row = lambda metric, size: by_size(summary, metric).loc[size]  # noqa: E731
    pct = lambda r: fmt_ci(r["mean"], r["ci_low"], r["ci_high"]) + "%"  # noqa: E731
    small, large = s.sizes[0], s.sizes[-1]
    rec0, rec1 = row("recall_at_k", small), row("recall_at_k", large)
    em0, em1 = row("rag_em", small), row("rag_em", large)
    p95 = row("search_ms_p95", large)
    checks = [(rec0["mean"] - rec1["mean"] <= s.max_recall_drop,
               f"recall@{s.k} {pct(rec0)} -> {pct(rec1)}"),
              (p95["mean"] <= s.max_search_p95_ms,
               f"search p95 at {large:,} chunks {fmt_ci(p95['mean'], p95['ci_low'], p95['ci_high'], 1)} ms")]
    if not math.isnan(em0["mean"]):
        checks.append((em0["mean"] - em1["mean"] <= s.max_recall_drop, f"RAG EM {pct(em0)} -> {pct(em1)}"))
    scale = Claim("scale", SCALE_TEXT, "scale", f"{small:,} -> {large:,} chunks: " + "; ".join(
        f"{text}{'' if ok else ' (FAILS)'}" for ok, text in checks),
        SUPPORTED if all(ok for ok, _ in checks) else CONTRADICTED,
        f"supported when, from the smallest to the largest size, recall@{s.k} and RAG EM drop by at "
        f"most {100 * s.max_recall_drop:.0f} points (means over seeds) and the HNSW search p95 at the "
        f"largest size stays <= {s.max_search_p95_ms:.0f} ms; contradicted otherwise")
    total, search, embed = row("total_ms_p50", large), row("search_ms_p50", large)["mean"], \
        row("embed_ms_p50", large)["mean"]
    quoted = Claim(
        "scale.quoted", QUOTED_TEXT, "scale",
        f"query embedding + HNSW search p50 at {large:,} chunks: "
        f"{fmt_ci(total['mean'], total['ci_low'], total['ci_high'], 1)} ms, of which HNSW search "
        f"{search:.1f} ms ({100 * search / total['mean']:.0f}%) and query embedding {embed:.1f} ms",
        range_verdict(total["ci_low"], total["ci_high"], *QUOTED_MS),
        f"the 95% CI over seeds of the median per-query retrieval time (batch size 1, in-process, no "
        f"network, no re-ranker) inside [{QUOTED_MS[0]:.0f}, {QUOTED_MS[1]:.0f}] ms -> supported, "
        f"entirely outside -> contradicted, else inconclusive; network and re-ranking, which the "
        f"quote includes, are not measured")
    return [scale, quoted]


def fmt_table(summary: pd.DataFrame, s) -> str:
    cols = [("n_chunks", "chunks", "{:,.0f}"), ("embed_s", "embed s", "{:.1f}"),
            ("index_s", "index s", "{:.1f}"), ("disk_mb", "disk MB", "{:.1f}"),
            ("embed_ms_p50", "q-embed p50 ms", "{:.1f}"), ("search_ms_p50", "search p50 ms", "{:.2f}"),
            ("search_ms_p95", "search p95 ms", "{:.2f}"), ("total_ms_p95", "total p95 ms", "{:.1f}"),
            ("search_ms_batched", "search ms (batched)", "{:.2f}"),
            ("recall_at_k", f"recall@{s.k}", "{:.3f}"), ("rag_em", f"RAG EM (k={s.k_rag})", "{:.3f}")]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + " --- |" * len(cols)]
    for size in s.sizes:
        cells = []
        for metric, _, f in cols:
            r = by_size(summary, metric).loc[size]
            cell = "n/a" if math.isnan(r["mean"]) else f.format(r["mean"])
            if metric in ("recall_at_k", "rag_em", "search_ms_p95") and r["n"] > 1 \
                    and not math.isnan(r["mean"]):
                cell += f" [{f.format(r['ci_low'])}, {f.format(r['ci_high'])}]"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_md(folder: Path, run) -> str:
    """report.md from the saved tables, the run's config and settings, and what the run recorded
    (its timings; how many world embeddings came from the cache: run.extra, or the manifest)."""
    folder = Path(folder)
    summary, table = pd.read_csv(folder / "summary.csv"), pd.read_csv(folder / "scale.csv")
    n_items = table.groupby("seed")["queries"].first().tolist()
    cached = run.extra.get("embeddings_cached") or read_manifest(folder).get("embeddings_cached")
    return report(summary, run.cfg, run.settings, run.quick, run.timings.get("total", math.nan),
                  cached, n_items)


def _cache_text(cached) -> str:
    if not cached:   # results saved before the count was recorded in manifest.json
        return "how many came from the cache in that run was not recorded"
    return f"{cached[0]} of {cached[1]} world embeddings came from the cache this run"


def report(summary: pd.DataFrame, cfg, s, quick: bool, seconds: float, cached,
           n_items: list[int]) -> str:
    return f"""# Scale: RAG over a growing knowledge base

**Claim tested:** {cfg.claim.strip() or 'RAG scales to very large knowledge bases.'}

## Setup

- Knowledge base sizes: {', '.join(f'{n:,}' for n in s.sizes)} chunks (one sentence per chunk)
  {'(the `--quick` setting)' if quick else '(the default setting)'}. Each is the base test world
  ({s.base_entities} entities) plus distractor passages from other generated worlds
  ({s.distractor_entities} entities each, same name partition, passages about any asked entity
  dropped), appended in a fixed order: every larger corpus is a superset of every smaller one.
- Seeds {list(cfg.seeds)}: each seed is a fresh base world with its own sample of
  {min(n_items)}-{max(n_items)} answerable test questions; every (size, seed) cell builds its
  own index and asks the same questions at every size. CIs are 95% t-intervals over seeds.
- Retriever: `{s.embedder}` on CPU, chroma HNSW `{json.dumps(HNSW)}`, top-{s.k}.
- Timings (all measured on this machine, hardware in manifest.json): `embed s` = embedding the
  corpus passages, measured when each world's embeddings were computed and cached by content
  hash ({_cache_text(cached)}); `index s` = chroma add (HNSW build +
  sqlite) from those embeddings; `disk MB` = the collection's folder; per-query latencies at
  batch size 1 with {s.query_threads} torch thread(s), after one untimed warm-up pass over the
  questions (p50/p95 over the questions; the first query on a fresh index is reported apart in scale.csv as `cold_query_ms`), and
  `batched` = one batch of all questions, per query. The machine's load average before and
  after the run is in manifest.json: other processes share its cores and inflate latencies.
- RAG answer quality: the first {s.rag_items} questions answered by `{cfg.model.name}` from the top
  {s.k_rag} chunk(s), exact match.
- Run time: {seconds:.0f} s.

## Results

{fmt_table(summary, s)}

![latency and recall vs corpus size](scale.png)

## Verdicts (computed from the table)

""" + markdown_rows(verdicts(summary, s)) + f"""

## Limits

- The largest size here is {s.sizes[-1]:,} chunks; "very large" knowledge bases in production
  reach millions to billions of chunks, where HNSW memory and build time, not recall, dominate.
- Distractors are fictional biographies of other people: they share templates with the asked
  passages (hard for name matching) but never state a fact about an asked entity.
- Single process, no network and no re-ranker: the measured retrieval cost is a lower bound on
  what a deployed RAG service adds.
"""


def saved_settings(results_dir: Path) -> SimpleNamespace | None:
    """The study settings a results folder was measured with, from its manifest: the `study`
    part of the config (or the whole config, in manifests written before the study driver)."""
    config = read_manifest(results_dir).get("config")
    if not config:
        return None
    return SimpleNamespace(**(config["study"] if "experiment" in config else config))


def claims(results_dir: Path, s=None) -> list[Claim]:
    """Both verdicts from summary.csv; `s` (sizes, k, the rule's limits) defaults to the saved ones."""
    results_dir = Path(results_dir)
    s = s or saved_settings(results_dir)
    if s is None or not results_present(results_dir, "summary.csv"):
        return [not_run("scale", SCALE_TEXT, "scale"), not_run("scale.quoted", QUOTED_TEXT, "scale")]
    return verdicts(pd.read_csv(results_dir / "summary.csv"), s)


def redraw(results_dir: Path, s=None) -> list[Path]:
    results_dir = Path(results_dir)
    s = s or saved_settings(results_dir)
    if s is None or not results_present(results_dir, "summary.csv"):
        return []
    return [plot(pd.read_csv(results_dir / "summary.csv"), results_dir / "scale.png", s.k)]
