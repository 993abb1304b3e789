"""`python -m bench compare A B`: two results folders of one study (two models, two configs, a
run before and after a change) -> per-arm, per-metric differences B - A with paired 95%
intervals, as a table (compare.csv, compare.md) and a plot (compare.png). Saved tables only.

Pairing, the strongest the two folders allow, per arm:
- `item`: both answered the same questions (same seed, item id, gold answers and passages): the
  difference of each item's scores, averaged per seed; the interval is over seeds when there
  are two or more, else over items (one seed: the items are the sample);
- `seed`: the same seeds but other questions (another world size, another corpus sample):
  per-seed means differenced, the interval over those seeds;
- `none`: no seed in common: the difference of the means, a Welch interval over seed means.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.config import ConfigError
from bench.report.claims import read_manifest
from bench.report.tables import mean_ci

METRICS = ("exact_match", "contains", "token_f1", "rougeL", "bleu", "hallucinated", "abstained",
           "faithfulness", "recall_at_k", "t_total")
COLUMNS = ["arm", "split", "metric", "a", "b", "diff", "ci_low", "ci_high", "n", "pairing", "items_a", "items_b"]
# how a metric is shown: shares in points, BLEU is 0-100 already, time in ms
SCALE = {"bleu": 1, "t_total": 1000}


def read_items(folder: Path) -> tuple[str, pd.DataFrame]:
    """(study name, per-item table) of a results folder; ConfigError naming what is missing."""
    folder = Path(folder)
    items = folder / "items.csv"
    if not items.is_file():
        raise ConfigError(f"{folder}: no items.csv (compare reads per-item tables: accuracy, "
                          f"latency, popularity, freshness, or a `bench run` folder)")
    manifest = read_manifest(folder)
    study = manifest.get("study") or (manifest.get("config") or {}).get("name") or folder.name
    return str(study), pd.read_csv(items)


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, int]:
    diff = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan, min(len(a), len(b))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff, min(len(a), len(b))
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, dof) * se)
    return diff, diff - half, diff + half, min(len(a), len(b))


def compare_arm(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[float, float, float, int, str]:
    """(difference b - a, ci_low, ci_high, n, pairing) for one arm and metric."""
    a, b = a.dropna(subset=[metric]), b.dropna(subset=[metric])
    if not len(a) or not len(b):
        return math.nan, math.nan, math.nan, 0, "none"
    # the same question: seed and id, and what the saved table holds of its content (items.csv
    # keeps the gold answers and passages, not the wording)
    keys = ["seed", "item_id"] + [c for c in ("question", "answers", "gold_ids") if c in a and c in b]
    both = a[keys + [metric]].merge(b[keys + [metric]], on=keys, suffixes=("_a", "_b"))
    if len(both):
        both["d"] = both[f"{metric}_b"] - both[f"{metric}_a"]
        per_seed = both.groupby("seed")["d"].mean()
        m, lo, hi, n = mean_ci(per_seed.tolist() if len(per_seed) > 1 else both["d"].tolist())
        return m, lo, hi, n, "item"
    sa, sb = a.groupby("seed")[metric].mean(), b.groupby("seed")[metric].mean()
    common = sa.index.intersection(sb.index)
    if len(common):
        m, lo, hi, n = mean_ci((sb[common] - sa[common]).tolist())
        return m, lo, hi, n, "seed"
    return (*_welch(sa.to_numpy(), sb.to_numpy()), "none")


def compare(folder_a: Path, folder_b: Path) -> pd.DataFrame:
    study_a, a = read_items(folder_a)
    study_b, b = read_items(folder_b)
    if study_a != study_b:
        raise ConfigError(f"{folder_b}: a '{study_b}' result; {folder_a} is '{study_a}': compare "
                          f"two results of one study")
    arms = [arm for arm in dict.fromkeys(a["arm"]) if arm in set(b["arm"])]
    if not arms:
        raise ConfigError(f"{folder_b}: no arm in common with {folder_a} (arms {sorted(set(a['arm']))} "
                          f"vs {sorted(set(b['arm']))})")
    for t in (a, b):
        if "split" not in t:
            t["split"] = "all"
    # held-out questions first: the comparison most studies are about
    splits = sorted((s for s in dict.fromkeys(a["split"]) if s in set(b["split"])),
                    key=lambda s: (s != "test", s != "train", s))
    rows = []
    for arm in arms:
        for split in splits:   # a split at a time: held-out and trained facts are other questions
            xa = a[(a["arm"] == arm) & (a["split"] == split)]
            xb = b[(b["arm"] == arm) & (b["split"] == split)]
            for metric in (m for m in METRICS if m in a and m in b):
                diff, lo, hi, n, pairing = compare_arm(xa, xb, metric)
                rows.append({"arm": arm, "split": split, "metric": metric, "a": xa[metric].mean(),
                             "b": xb[metric].mean(), "diff": diff, "ci_low": lo, "ci_high": hi, "n": n,
                             "pairing": pairing, "items_a": len(xa), "items_b": len(xb)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _num(x: float, scale: float) -> str:
    return "-" if pd.isna(x) else f"{x * scale:+.1f}"


def markdown(table: pd.DataFrame, folder_a: Path, folder_b: Path) -> str:
    lines = [f"# compare: B = {folder_b} minus A = {folder_a}", "",
             "Per arm and metric: the means of A and B, the difference B - A with its 95% interval "
             "(pairing: item = same questions, differences per item averaged per seed; seed = same "
             "seeds, other questions; none = unpaired, Welch; n = seeds, or items with one seed). "
             "Shares in points, BLEU 0-100, t_total in ms; metrics that do not apply are left out.", "",
             "| arm | split | metric | A | B | B - A (95% CI) | n | pairing |", "|---|---|---|---|---|---|---|---|"]
    for r in table.dropna(subset=["a", "b"]).itertuples():
        scale = SCALE.get(r.metric, 100)
        ci = "" if pd.isna(r.ci_low) else f" [{_num(r.ci_low, scale)}, {_num(r.ci_high, scale)}]"
        lines.append(f"| {r.arm} | {r.split} | {r.metric} | {r.a * scale:.1f} | {r.b * scale:.1f} | "
                     f"{_num(r.diff, scale)}{ci} | {r.n} | {r.pairing} |")
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, path: Path, label_a: str, label_b: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report.plots import _save

    first = table["split"].iloc[0] if len(table) else None   # the first split: the comparison's
    shares = table[~table["metric"].isin(list(SCALE)) & (table["split"] == first)].dropna(subset=["diff"])
    metrics = list(dict.fromkeys(shares["metric"]))
    arms = list(dict.fromkeys(shares["arm"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(metrics) * len(arms) / 2), 4.5))
    width = 0.8 / max(1, len(arms))
    for i, arm in enumerate(arms):
        rows = shares[shares["arm"] == arm].set_index("metric").reindex(metrics)
        x = np.arange(len(metrics)) + i * width
        err = np.array([(rows["diff"] - rows["ci_low"]).fillna(0), (rows["ci_high"] - rows["diff"]).fillna(0)])
        ax.bar(x, rows["diff"] * 100, width, yerr=err * 100, capsize=3, label=arm)
    ax.axhline(0, color="gray", lw=1)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(arms) - 1) / 2)
    ax.set_xticklabels(metrics, rotation=20)
    ax.set_ylabel("B - A (points, 95% CI)")
    ax.set_title(f"B = {label_b} minus A = {label_a}; split: {first}", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def run_compare(folder_a: Path, folder_b: Path, out: Path) -> tuple[Path, str]:
    from bench.io import write_csv, write_text

    folder_a, folder_b, out = Path(folder_a), Path(folder_b), Path(out)
    table = compare(folder_a, folder_b)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(table, out / "compare.csv")
    md = markdown(table, folder_a, folder_b)
    write_text(md, out / "compare.md")
    plot(table, out / "compare.png", str(folder_a), str(folder_b))
    return out, md
