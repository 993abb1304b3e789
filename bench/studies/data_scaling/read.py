"""data-scaling, the reading half: the saved cells.csv -> learning curves (means and 95% CIs over
seeds per arm, setting and evaluation set), the long summary, and the claims' verdicts. Saved
tables only; no model code. The plot and report.md are in report.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Claim, fmt_ci,
                                 interval_verdict, not_run, results_present)
from bench.report.tables import mean_ci, paired

NAME = "data-scaling"
EVAL_SETS = {"reworded": "trained facts, asked in their held-out (never trained) wording",
             "trained": "the same facts, asked in their trained (canonical) wording",
             "test": "held-out test-split facts (only inside the training documents)"}
CLAIM_N = 500               # "100-500 examples already show measurable gains"
MIN_GAIN = 0.01             # a gain below 1 EM point is no measurable gain
CELL_COLUMNS = ["arm", "kind", "size", "augmentation", "variant", "seed", "eval_set", "items", "exact_match",
                "token_f1", "closed_book_em", "rag_em", "trained_items", "train_qa_examples",
                "train_examples", "steps", "rank", "train_seconds", "final_loss", "adapter_cached"]
# what a sweep point trains beyond its size and augmentation: "" (the plain curve), "recipe" (the
# study's injection recipe on top: the third curve), and at the largest size the two checks of
# why EM falls as n grows: "passes" (3x the passes, the step cap raised with them), "rank" (4x)
VARIANTS = {"": "", "recipe": "+recipe", "passes": "+3x passes", "rank": "+4x rank"}


@dataclass(frozen=True)
class Point:
    """One training setting of the sweep."""
    size: int
    augmentation: bool
    variant: str = ""

    @property
    def label(self) -> str:
        return f"n={self.size}{'+para' if self.augmentation else ''}{VARIANTS[self.variant].replace(' ', '')}"


# -- tables ----------------------------------------------------------------------------------------

def cell_table(items: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, setting, seed, eval set): EM, F1, and the reference arms' EM on the same items."""
    ref = {k: items[items["kind"] == k].set_index(["seed", "item_id"])["exact_match"]
           for k in ("closed_book", "rag")}
    rows = []
    keys = ["arm", "kind", "size", "augmentation", "variant", "seed", "eval_set"]
    items = items.assign(size=items.get("size"), augmentation=items.get("augmentation"),
                         variant=variants(items))
    for key, g in items.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key))
        row.update(items=len(g), exact_match=g["exact_match"].mean(), token_f1=g["token_f1"].mean())
        for k, series in ref.items():
            idx = list(zip(g["seed"], g["item_id"]))
            row[f"{k}_em"] = float(series.reindex(idx).mean()) if len(series) else float("nan")
        for col in CELL_COLUMNS[12:]:
            if col in g:
                row[col] = g[col].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=CELL_COLUMNS)


def curve_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI over seeds per (arm, setting, eval set): EM, F1, the seed-paired EM gain
    over closed-book on the same items, and on trained facts the gain in facts (EM gain x trained
    items: how many of the n trained facts the adapter added, estimated from the sample asked)."""
    rows = []
    for key, g in cells.groupby(["arm", "kind", "size", "augmentation", "variant", "eval_set"], sort=False,
                                dropna=False):
        arm, kind, size, aug, variant, eval_set = key
        base = {"arm": arm, "kind": kind, "size": size, "augmentation": aug, "variant": variant, "eval_set": eval_set,
                "trained_items": g["trained_items"].mean()}
        series = {"exact_match": g["exact_match"], "token_f1": g["token_f1"],
                  "em_gain_vs_closed_book": g["exact_match"] - g["closed_book_em"]}
        if g["rag_em"].notna().any():
            series["em_gain_vs_rag"] = g["exact_match"] - g["rag_em"]
        if eval_set in ("reworded", "trained") and g["trained_items"].notna().all():
            series["facts_gained"] = (g["exact_match"] - g["closed_book_em"]) * g["trained_items"]
        for metric, values in series.items():
            m, lo, hi, n = mean_ci(values.tolist())
            rows.append({**base, "metric": metric, "mean": m, "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows)


def setting_label(row) -> str:
    if pd.isna(row["size"]):
        return row["arm"]
    return f"{row['arm']}@{Point(int(row['size']), _truthy(row['augmentation']), row.get('variant') or '').label}"


def summary_table(curve: pd.DataFrame) -> pd.DataFrame:
    """The long form every experiment writes: arm = arm@setting, metric = metric:eval_set."""
    if curve.empty:
        return pd.DataFrame(columns=["arm", "metric", "mean", "ci_low", "ci_high", "n"])
    return pd.DataFrame({"arm": curve.apply(setting_label, axis=1),
                         "metric": curve["metric"] + ":" + curve["eval_set"],
                         **{c: curve[c] for c in ("mean", "ci_low", "ci_high", "n")}})


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0")


def variants(df: pd.DataFrame) -> pd.Series:
    """The variant column with "" for a plain point (all "" for results from before the
    variants); a CSV whose points are all plain reads it as floats (all NaN), which pandas will no
    longer fill with a string, hence the cast."""
    if "variant" not in df:
        return pd.Series("", index=df.index, dtype=object)
    return df["variant"].astype(object).fillna("")


def load_cells(results_dir: Path) -> pd.DataFrame:
    cells = pd.read_csv(Path(results_dir) / "cells.csv")
    # results from before the variants: every point is a plain one
    cells["variant"] = variants(cells)
    cells["augmentation"] = cells["augmentation"].map(lambda v: float("nan") if pd.isna(v) else _truthy(v))
    return cells


# -- claims ----------------------------------------------------------------------------------------

CLAIM_GAINS = ("data-scaling", "100-500 examples already show measurable gains")
CLAIM_OVADIA = ("data-scaling.paraphrases",
                "paraphrase augmentation improves knowledge injection (Ovadia et al. 2023)")


def plain(cells: pd.DataFrame) -> pd.Series:
    """The rows of the plain curves (no recipe, no check), which the claims judge."""
    return variants(cells).eq("")


def gain(cells: pd.DataFrame, kind: str, aug: bool, size: int, eval_set: str, minus: str):
    """Mean/CI over seeds of EM(kind at setting) - EM(minus) on the same items: minus is
    'closed_book' (its EM on the same items) or 'other_aug' (the same size without/with paraphrases)."""
    rows = cells[(cells["kind"] == kind) & (cells["size"] == size) & (cells["eval_set"] == eval_set)
                 & plain(cells)]
    if minus == "other_aug":
        return paired(rows, aug, not aug, "exact_match", by="augmentation")
    own = rows[rows["augmentation"] == aug]
    return mean_ci((own["exact_match"] - own["closed_book_em"]).dropna().tolist())


def gains_verdict(cells: pd.DataFrame, aug: bool = True, eval_set: str = "reworded"):
    """(verdict, n*, per-size gains): n* = the smallest size whose seed-paired 95% CI of
    EM(lora) - EM(closed_book) lies above 0. Supported if n* <= 500; contradicted if no size
    <= 500 does and at the largest size <= 500 the CI's upper end is below +1 EM point (a gain
    that large is ruled out); inconclusive otherwise."""
    lora = cells[(cells["kind"] == "lora") & (cells["augmentation"] == aug) & plain(cells)]
    sizes = sorted(int(n) for n in lora["size"].dropna().unique())
    gains = {n: gain(cells, "lora", aug, n, eval_set, "closed_book") for n in sizes}
    first = next((n for n in sizes if gains[n][1] > 0), None)
    small = [n for n in sizes if n <= CLAIM_N]
    if first is not None and first <= CLAIM_N:
        return SUPPORTED, first, gains
    if small and gains[small[-1]][2] < MIN_GAIN:
        return CONTRADICTED, first, gains
    return INCONCLUSIVE, first, gains


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, "cells.csv"):
        return [not_run(*CLAIM_GAINS, NAME), not_run(*CLAIM_OVADIA, NAME)]
    cells = load_cells(results_dir)
    lora = cells[(cells["kind"] == "lora") & plain(cells)]
    augs = sorted({bool(a) for a in lora["augmentation"].dropna()})
    if not augs or not (cells["kind"] == "closed_book").any():
        return [not_run(*CLAIM_GAINS, NAME), not_run(*CLAIM_OVADIA, NAME)]
    out = []
    primary = True if True in augs else augs[0]
    verdict, first, gains = gains_verdict(cells, primary)
    parts = []
    for aug in augs:
        g = gains if aug == primary else gains_verdict(cells, aug)[2]
        star = gains_verdict(cells, aug)[1]
        parts.append(f"lora {'with' if aug else 'without'} paraphrases, EM gain over closed-book on trained "
                     f"facts reworded (points): " + "; ".join(f"n={n}: {fmt_ci(*g[n][:3])}" for n in g)
                     + f" -> first n with CI > 0: {star if star is not None else 'none'}")
    test = gains_verdict(cells, primary, "test")[2]
    parts.append(f"held-out test facts (lora {'with' if primary else 'without'} paraphrases): "
                 + "; ".join(f"n={n}: {fmt_ci(*test[n][:3])}" for n in test))
    seeds = int(cells["seed"].nunique())
    out.append(Claim(CLAIM_GAINS[0], CLAIM_GAINS[1], NAME, ". ".join(parts) + f" ({seeds} seeds).", verdict,
                     f"n* = the smallest number of trained QA items whose seed-paired 95% CI of EM(lora "
                     f"{'with' if primary else 'without'} paraphrases) - EM(closed_book) on the trained facts "
                     f"asked in a held-out wording lies above 0; supported if n* <= {CLAIM_N}; contradicted if "
                     f"none <= {CLAIM_N} does and at the largest size <= {CLAIM_N} the CI's upper end is below "
                     f"+{100 * MIN_GAIN:.0f} point; else inconclusive."))
    if len(augs) < 2:
        out.append(Claim(CLAIM_OVADIA[0], CLAIM_OVADIA[1], NAME, "only one augmentation setting was run",
                         INCONCLUSIVE, "needs lora with and without paraphrases at a common size"))
        return out
    sizes = lambda aug: set(lora[lora["augmentation"] == aug]["size"])
    common = sorted(sizes(True) & sizes(False))
    n = int(common[-1])
    d = gain(cells, "lora", True, n, "reworded", "other_aug")
    dt = gain(cells, "lora", True, n, "test", "other_aug")
    smaller = "; ".join(f"n={int(m)}: {fmt_ci(*gain(cells, 'lora', True, m, 'reworded', 'other_aug')[:3])}"
                        for m in common[:-1])
    out.append(Claim(CLAIM_OVADIA[0], CLAIM_OVADIA[1], NAME,
                     f"lora at n={n}: EM with - without paraphrases, trained facts reworded: {fmt_ci(*d[:3])} "
                     f"points; held-out test facts: {fmt_ci(*dt[:3])} points ({d[3]} seeds)"
                     + (f". Smaller sizes, trained facts reworded: {smaller}." if smaller else "."),
                     interval_verdict(d[1], d[2]),
                     f"seed-paired 95% CI of EM(lora with paraphrases) - EM(lora without) at the largest "
                     f"size (n={n}) on trained facts asked in a held-out wording: above 0 -> supported, "
                     f"below 0 -> contradicted, else inconclusive."))
    return out
