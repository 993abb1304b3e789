"""Freshness study, the numbers: per-item answers -> per-(arm, seed) metrics -> summary with
CIs over seeds -> wide table, plot, verdicts (computed here from the table, rules stated)."""

from __future__ import annotations

import math

import pandas as pd

from bench.report.summary import mean_ci

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
    rows = []
    for arm, g in per_seed.groupby("arm", sort=False):
        for metric in [m for m in METRICS if m in g]:
            mean, lo, hi, n = mean_ci(g[metric].tolist())
            rows.append({"arm": arm, "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows, columns=["arm", "metric", "mean", "ci_low", "ci_high", "n"])


def value(summary: pd.DataFrame, arm: str, metric: str, col: str = "mean") -> float:
    hit = summary[(summary["arm"] == arm) & (summary["metric"] == metric)]
    return float(hit[col].iloc[0]) if len(hit) else math.nan


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


def verdicts(summary: pd.DataFrame, in_place: bool) -> list[dict]:
    """The claim in three checks, each with its rule and the numbers it used."""
    arms = set(summary["arm"])
    out = []
    absorb_rule = (f"changed-fact EM gain >= {100 * ABSORB_GAIN:.0f} points, stale rate after "
                   f"<= {100 * ABSORB_STALE:.0f}%, unchanged-fact EM moves <= {100 * KEEP_UNCHANGED:.0f} points")
    if "rag+upsert" in arms:
        ok = absorbs(summary, "rag+upsert") and in_place
        out.append({"check": "RAG absorbs changed facts by re-indexing (upsert, no rebuild)",
                    "rule": absorb_rule + "; the collection keeps its name and count (every seed)",
                    "numbers": f"gain {_pts(value(summary, 'rag+upsert', 'changed_gain'))}, stale after "
                               f"{100 * value(summary, 'rag+upsert', 'stale_rate_after'):.1f}%, unchanged "
                               f"{_pts(value(summary, 'rag+upsert', 'unchanged_em_after') - value(summary, 'rag+upsert', 'unchanged_em_before'))}, "
                               f"in place: {in_place}",
                    "verdict": "supported" if ok else "not supported"})
    lora = {u: f"lora+{u}" in arms and absorbs(summary, f"lora+{u}") for u in ("retrain", "continue")}
    if "lora+retrain" in arms and "lora+continue" in arms:
        if lora["retrain"] and not lora["continue"]:
            verdict = "supported"
        elif lora["continue"]:
            verdict = "refuted: continued training on the changes alone absorbs them"
        else:
            verdict = "not supported: neither retraining nor continued training absorbs the changes"
        out.append({"check": "Fine-tuning must be retrained (continued training does not suffice)",
                    "rule": f"supported if lora+retrain absorbs ({absorb_rule}) and lora+continue does not",
                    "numbers": "; ".join(
                        f"lora+{u}: gain {_pts(value(summary, f'lora+{u}', 'changed_gain'))}, stale after "
                        f"{100 * value(summary, f'lora+{u}', 'stale_rate_after'):.1f}%"
                        for u in ("retrain", "continue")),
                    "verdict": verdict})
    if "rag+upsert" in arms:
        rag_em, rag_s = value(summary, "rag+upsert", "changed_em_after"), value(summary, "rag+upsert", "update_seconds")
        lora_arms = [a for a in arms if a.startswith("lora+")]
        close = [a for a in lora_arms if value(summary, a, "changed_em_after") >= rag_em - COMPARABLE]
        if close:
            cheapest = min(close, key=lambda a: value(summary, a, "update_seconds"))
            c_s = value(summary, cheapest, "update_seconds")
            verdict = "supported" if rag_s < c_s else "refuted"
            numbers = f"rag+upsert {rag_s:.2f} s vs {cheapest} {c_s:.1f} s"
        elif lora_arms:
            cheapest = min(lora_arms, key=lambda a: value(summary, a, "update_seconds"))
            verdict = "supported: no LoRA update reaches RAG's level at any cost measured"
            numbers = (f"rag+upsert {100 * rag_em:.1f}% in {rag_s:.2f} s; best LoRA "
                       f"{100 * max(value(summary, a, 'changed_em_after') for a in lora_arms):.1f}%; "
                       f"cheapest LoRA update {cheapest} {value(summary, cheapest, 'update_seconds'):.1f} s")
        else:
            verdict, numbers = "n/a (no LoRA arm)", ""
        out.append({"check": "RAG's update is cheaper than any LoRA update that gets as far",
                    "rule": f"supported if rag+upsert's update seconds are below those of the cheapest "
                            f"LoRA update whose changed-fact EM after is within {100 * COMPARABLE:.0f} points "
                            f"of RAG's (or if none gets that close)",
                    "numbers": numbers, "verdict": verdict})
    return out


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
    return f"{scale * m:.{digits}f} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"


def markdown(summary: pd.DataFrame, updates: dict[str, str], checks: list[dict], setup: list[str],
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
    lines += ["", "![changed-fact EM vs update time](freshness.png)", "", "## Verdicts (computed from the table)", "",
              "| check | rule | numbers | verdict |", "|---|---|---|---|"]
    lines += [f"| {c['check']} | {c['rule']} | {c['numbers']} | **{c['verdict']}** |" for c in checks]
    overall = all(c["verdict"].startswith("supported") for c in checks) and bool(checks)
    lines += ["", f"Overall: the claim is **{'supported' if overall else 'not supported as stated'}** "
              "(supported only if every check above is).", "", "## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
