"""data-scaling: LoRA and hybrid learning curves over the number of training QA items, with and
without paraphrase augmentation (Ovadia et al. 2023); closed-book and RAG as reference lines.

The sweep: for every size n (train-split QA items, `TrainingData.max_train_questions`) and
augmentation setting (`TrainingData.paraphrases`) one adapter per seed is trained with the
accuracy recipe otherwise (documents + n QA items + reading replay, replay_share as there);
the `lora` and `hybrid` arms of a setting share it through the adapter cache.

Held-out wording: every train item's *last* paraphrase is never trained (the adapter trains on a
view of the dataset without it), so with augmentation an item trains in its other wordings, and
without in its canonical question only. Without augmentation that view trains the same examples
as the full dataset, so those adapters keep the keys they would have anyway.

Evaluation sets per seed:
- `reworded`: the facts the adapter was trained on (the n trained items, at most
  `reworded_items` of them), asked in the held-out wording: knowledge, not string recall;
- `trained`: the same facts asked in their canonical (trained) question, for contrast;
- `test`: held-out test-split facts (a fixed sample of answerable items), which appear only
  inside the training documents.

Steps: a fixed number of passes (`epochs`) over the training examples (documents + QA), clamped
to [min_steps, max_steps], so a bigger training set costs more compute, as it would in practice,
and every example is seen about equally often at every size (until the cap).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from bench.config import CACHE_DIR, ConfigError, content_hash
from bench.data.dataset import Dataset, build_dataset
from bench.data.schema import QAItem
from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Claim, fmt_ci,
                                 interval_verdict, markdown_rows, not_run, results_present)
from bench.report.tables import mean_ci
from bench.studies.common import load_study, write_csv, write_text

NAME = "data-scaling"
EVAL_SETS = {"reworded": "trained facts, asked in their held-out (never trained) wording",
             "trained": "the same facts, asked in their trained (canonical) wording",
             "test": "held-out test-split facts (only inside the training documents)"}
CLAIM_N = 500               # "100-500 examples already show measurable gains"
MIN_GAIN = 0.01             # a gain below 1 EM point is no measurable gain
CELL_COLUMNS = ["arm", "kind", "size", "augmentation", "seed", "eval_set", "items", "exact_match",
                "token_f1", "closed_book_em", "rag_em", "trained_items", "train_qa_examples",
                "train_examples", "steps", "train_seconds", "final_loss", "adapter_cached"]


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...] = (50, 150, 500)    # train-split QA items per adapter
    augmentation: tuple[bool, ...] = (False, True)
    seeds: tuple[int, ...] | None = None       # None: the experiment's `seeds:`
    entities: int | None = None                # None: the experiment's world size
    epochs: float = 2.0                        # passes over documents + QA examples ...
    min_steps: int = 10                        # ... clamped to [min_steps, max_steps]
    max_steps: int = 150
    test_items: int = 100                      # held-out test facts per seed (fixed sample)
    reworded_items: int = 100                  # trained facts per setting and seed (at most)

    def validate(self, where: str) -> None:
        if not self.sizes or min(self.sizes) < 1 or len(set(self.sizes)) != len(self.sizes):
            raise ConfigError(f"{where}.sizes: expected distinct sizes >= 1, got {list(self.sizes)}")
        if not self.augmentation or len(set(self.augmentation)) != len(self.augmentation):
            raise ConfigError(f"{where}.augmentation: expected [false], [true] or [false, true]")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ConfigError(f"{where}.seeds: expected distinct seeds")
        if self.entities is not None and self.entities < 2:
            raise ConfigError(f"{where}.entities: expected >= 2")
        if self.epochs <= 0:
            raise ConfigError(f"{where}.epochs: expected > 0, got {self.epochs}")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ConfigError(f"{where}.min_steps/max_steps: expected 1 <= min_steps <= max_steps")
        for key in ("test_items", "reworded_items"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1")


@dataclass(frozen=True)
class Point:
    """One training setting of the sweep."""
    size: int
    augmentation: bool

    @property
    def label(self) -> str:
        return f"n={self.size}{'+para' if self.augmentation else ''}"


# -- the sweep: what each setting trains on and is asked -------------------------------------------

def training_view(dataset: Dataset) -> Dataset:
    """The dataset the adapters train on: every train item without its last paraphrase (held out
    for the `reworded` evaluation). Passages and test items are unchanged."""
    items = [replace(q, paraphrases=list(q.paraphrases[:-1])) if q.split == "train" and q.paraphrases
             else q for q in dataset.items]
    fingerprint = content_hash([[p.to_json() for p in dataset.passages], [q.to_json() for q in items]])
    return Dataset(f"{dataset.name}~heldout-wording", dataset.passages, items, fingerprint)


def reworded(q: QAItem) -> QAItem:
    """A trained item asked in its held-out wording (the last paraphrase of the full dataset)."""
    return replace(q, id=f"{q.id}/reworded", question=q.paraphrases[-1], paraphrases=[],
                   meta={**(q.meta or {}), "eval_set": "reworded"})


def as_trained(q: QAItem) -> QAItem:
    """A trained item asked in its canonical question, the wording every setting trains on."""
    return replace(q, id=f"{q.id}/trained", paraphrases=[], meta={**(q.meta or {}), "eval_set": "trained"})


def point_settings(base, point: Point, view: Dataset, seed: int, s: Settings):
    """(arm settings with this point's training data and steps, facts about its training set)."""
    from bench.arms.adapter import trained_items, training_examples   # torch: off the report path

    training = replace(base.training, max_train_questions=point.size, paraphrases=point.augmentation)
    examples, replay = training_examples(training, view, seed)
    n_replay = round(base.lora.batch_size * base.lora.replay_share) if replay else 0
    per_step = base.lora.batch_size - n_replay
    steps = max(s.min_steps, min(s.max_steps, math.ceil(s.epochs * len(examples) / per_step)))
    n_docs = sum(1 for prompt, _ in examples if prompt == "")
    facts = {"trained_items": len(trained_items(training, view, seed)), "train_examples": len(examples),
             "train_qa_examples": len(examples) - n_docs, "steps": steps}
    return replace(base, training=training, lora=replace(base.lora, steps=steps)), facts


def eval_sets(dataset: Dataset, point: Point, training, s: Settings, seed: int) -> dict[str, list[QAItem]]:
    """The items a setting is asked: its trained facts reworded and as trained (at most
    reworded_items, a fixed sample) and the seed's fixed sample of held-out answerable test facts."""
    from bench.arms.adapter import trained_items

    full = {q.id: q for q in dataset.items}
    view = training_view(dataset)
    trained = [full[q.id] for q in trained_items(training, view, seed) if len(full[q.id].paraphrases)]
    if len(trained) > s.reworded_items:
        trained = random.Random(f"{NAME}:reworded:{seed}:{point.size}").sample(trained, s.reworded_items)
        trained.sort(key=lambda q: q.id)
    return {"reworded": [reworded(q) for q in trained], "trained": [as_trained(q) for q in trained],
            "test": test_items(dataset, s, seed)}


def test_items(dataset: Dataset, s: Settings, seed: int) -> list[QAItem]:
    test = [q for q in dataset.split("test") if q.answerable]
    if len(test) > s.test_items:
        test = sorted(random.Random(f"{NAME}:test:{seed}").sample(test, s.test_items), key=lambda q: q.id)
    return test


# -- config ----------------------------------------------------------------------------------------

def load(config: Path, quick: bool = False):
    cfg, s = load_study(config, Settings, quick)
    if s.seeds is not None:
        cfg = replace(cfg, seeds=s.seeds)
    if s.entities is not None:
        if cfg.data.world is None:
            raise ConfigError(f"{config}: study.entities: needs a `data: world:` section")
        cfg = replace(cfg, data=replace(cfg.data, world=replace(cfg.data.world, entities=s.entities)))
    kinds = {}
    for i, arm in enumerate(cfg.arms):
        if arm.arm in kinds:
            raise ConfigError(f"{config}: arms[{i}].arm: one arm per kind here, '{arm.arm}' twice")
        kinds[arm.arm] = arm
    for kind in ("closed_book", "lora"):
        if kind not in kinds:
            raise ConfigError(f"{config}: arms: needs a '{kind}' arm (the sweep and its reference)")
    if "hybrid" in kinds:
        lo, hy = kinds["lora"].settings, kinds["hybrid"].settings
        if (lo.training, lo.lora) != (hy.training, hy.lora):
            i = list(cfg.arms).index(kinds["hybrid"])
            raise ConfigError(f"{config}: arms[{i}]: training/lora must equal the lora arm's "
                              f"(the two share one adapter per setting)")
    return cfg, s, kinds


# -- answering: jobs for the executor ------------------------------------------------------------

def job(arm_cfg, settings, dataset, seed, items, cfg, tag=""):
    """One executor job: this arm with these settings on a view of the data (the full world for
    the references, the training view for a sweep point), keyed by the view's name too."""
    from bench.config import ArmConfig
    from bench.engine import Job

    arm = ArmConfig(arm_cfg.name, arm_cfg.arm, settings)
    return Job(arm, seed, cfg.model, cfg.data, dataset, tuple(items), view=dataset.name, tag=tag)


def eval_set_of(item_id: str) -> str:
    return next((name for name in ("reworded", "trained") if item_id.endswith(f"/{name}")), "test")


def score(rows: list[dict], **fields) -> list[dict]:
    from bench.metrics.scores import exact_match, token_f1

    keep = ("item_id", "question", "answers", "prediction")
    return [{**fields, "eval_set": eval_set_of(r["item_id"]),
             **{k: r[k] for k in keep}, "exact_match": exact_match(r["prediction"], r["answers"]),
             "token_f1": token_f1(r["prediction"], r["answers"])} for r in rows]


def run_sweep(cfg, s: Settings, kinds: dict, out: Path, cache_dir: Path, progress: bool) -> pd.DataFrame:
    """Every (setting, seed) through lora and hybrid, references once per seed: per-item rows."""
    points = [Point(n, aug) for aug in s.augmentation for n in sorted(s.sizes)]
    refs = [kinds[k] for k in ("closed_book", "rag") if k in kinds]
    swept = [kinds[k] for k in ("lora", "hybrid") if k in kinds]
    from bench.engine import run_jobs

    jobs, fields = [], []
    for seed in cfg.seeds:
        dataset = build_dataset(cfg.data, seed)
        view = training_view(dataset)
        plan = []
        for p in points:
            settings, facts = point_settings(kinds["lora"].settings, p, view, seed, s)
            plan.append((p, settings, facts, eval_sets(dataset, p, settings.training, s, seed)))
        pool = {q.id: q for *_, sets in plan for q in sets["reworded"] + sets["trained"]}
        asked = test_items(dataset, s, seed) + [pool[i] for i in sorted(pool)]
        for arm_cfg in refs:
            jobs.append(job(arm_cfg, arm_cfg.settings, dataset, seed, asked, cfg))
            fields.append({"arm": arm_cfg.name, "kind": arm_cfg.arm, "seed": seed})
        for p, settings, facts, sets in plan:
            for arm_cfg in swept:
                arm_settings = replace(arm_cfg.settings, training=settings.training, lora=settings.lora)
                questions = sets["reworded"] + sets["trained"] + sets["test"]
                jobs.append(job(arm_cfg, arm_settings, view, seed, questions, cfg, tag=f"-{p.label}"))
                fields.append({"arm": arm_cfg.name, "kind": arm_cfg.arm, "seed": seed, "size": p.size,
                               "augmentation": p.augmentation, **facts, "sweep": True})
    rows = []
    for result, f in zip(run_jobs(jobs, out, cache_dir, progress, desc=NAME), fields):
        if f.pop("sweep", False):
            st = result.stats
            f.update(train_seconds=st.get("train_seconds"), final_loss=st.get("final_loss"),
                     adapter_cached=st.get("adapter_cached"))
        rows += score(result.rows, **f)
    return pd.DataFrame(rows)


# -- tables ----------------------------------------------------------------------------------------

def cell_table(items: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, setting, seed, eval set): EM, F1, and the reference arms' EM on the same items."""
    ref = {k: items[items["kind"] == k].set_index(["seed", "item_id"])["exact_match"]
           for k in ("closed_book", "rag")}
    rows = []
    keys = ["arm", "kind", "size", "augmentation", "seed", "eval_set"]
    items = items.assign(size=items.get("size"), augmentation=items.get("augmentation"))
    for key, g in items.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key))
        row.update(items=len(g), exact_match=g["exact_match"].mean(), token_f1=g["token_f1"].mean())
        for k, series in ref.items():
            idx = list(zip(g["seed"], g["item_id"]))
            row[f"{k}_em"] = float(series.reindex(idx).mean()) if len(series) else float("nan")
        for col in CELL_COLUMNS[11:]:
            if col in g:
                row[col] = g[col].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=CELL_COLUMNS)


def curve_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI over seeds per (arm, setting, eval set): EM, F1, the seed-paired EM gain
    over closed-book on the same items, and on trained facts the gain in facts (EM gain x trained
    items: how many of the n trained facts the adapter added, estimated from the sample asked)."""
    rows = []
    for key, g in cells.groupby(["arm", "kind", "size", "augmentation", "eval_set"], sort=False, dropna=False):
        arm, kind, size, aug, eval_set = key
        base = {"arm": arm, "kind": kind, "size": size, "augmentation": aug, "eval_set": eval_set,
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
    return f"{row['arm']}@{Point(int(row['size']), _truthy(row['augmentation'])).label}"


def summary_table(curve: pd.DataFrame) -> pd.DataFrame:
    """The long form every experiment writes: arm = arm@setting, metric = metric:eval_set."""
    if curve.empty:
        return pd.DataFrame(columns=["arm", "metric", "mean", "ci_low", "ci_high", "n"])
    return pd.DataFrame({"arm": curve.apply(setting_label, axis=1),
                         "metric": curve["metric"] + ":" + curve["eval_set"],
                         **{c: curve[c] for c in ("mean", "ci_low", "ci_high", "n")}})


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0")


def load_cells(results_dir: Path) -> pd.DataFrame:
    cells = pd.read_csv(Path(results_dir) / "cells.csv")
    cells["augmentation"] = cells["augmentation"].map(lambda v: float("nan") if pd.isna(v) else _truthy(v))
    return cells


# -- claims ----------------------------------------------------------------------------------------

CLAIM_GAINS = ("data-scaling", "100-500 examples already show measurable gains")
CLAIM_OVADIA = ("data-scaling.paraphrases",
                "paraphrase augmentation improves knowledge injection (Ovadia et al. 2023)")


def paired(cells: pd.DataFrame, kind: str, aug: bool, size: int, eval_set: str, minus: str):
    """Mean/CI over seeds of EM(kind at setting) - EM(minus) on the same items: minus is
    'closed_book' (its EM on the same items) or 'other_aug' (the same size without/with paraphrases)."""
    sel = lambda a: cells[(cells["kind"] == kind) & (cells["size"] == size) & (cells["augmentation"] == a)
                          & (cells["eval_set"] == eval_set)].set_index("seed")["exact_match"]
    a = sel(aug)
    b = cells[(cells["kind"] == kind) & (cells["size"] == size) & (cells["augmentation"] == aug)
              & (cells["eval_set"] == eval_set)].set_index("seed")["closed_book_em"] \
        if minus == "closed_book" else sel(not aug)
    diff = (a - b).dropna()
    return mean_ci(diff.tolist())


def gains_verdict(cells: pd.DataFrame, aug: bool = True, eval_set: str = "reworded"):
    """(verdict, n*, per-size gains): n* = the smallest size whose seed-paired 95% CI of
    EM(lora) - EM(closed_book) lies above 0. Supported if n* <= 500; contradicted if no size
    <= 500 does and at the largest size <= 500 the CI's upper end is below +1 EM point (a gain
    that large is ruled out); inconclusive otherwise."""
    lora = cells[(cells["kind"] == "lora") & (cells["augmentation"] == aug)]
    sizes = sorted(int(n) for n in lora["size"].dropna().unique())
    gains = {n: paired(cells, "lora", aug, n, eval_set, "closed_book") for n in sizes}
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
    lora = cells[cells["kind"] == "lora"]
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
    d = paired(cells, "lora", True, n, "reworded", "other_aug")
    dt = paired(cells, "lora", True, n, "test", "other_aug")
    smaller = "; ".join(f"n={int(m)}: {fmt_ci(*paired(cells, 'lora', True, m, 'reworded', 'other_aug')[:3])}"
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


# -- plots -----------------------------------------------------------------------------------------

def redraw(results_dir: Path) -> list[Path]:
    from bench.report.plots import _save   # first: selects the Agg backend

    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    results_dir = Path(results_dir)
    if not results_present(results_dir, "cells.csv"):
        return []
    cells = load_cells(results_dir)
    curve = curve_table(cells)
    em = curve[curve["metric"] == "exact_match"]
    fig, grid = plt.subplots(2, 2, figsize=(13, 9.5))
    axes = grid.flatten()
    colors = {"lora": "tab:orange", "hybrid": "tab:red", "closed_book": "tab:gray", "rag": "tab:blue"}
    for ax, eval_set in zip(axes, ("reworded", "trained", "test")):
        e = em[em["eval_set"] == eval_set]
        swept = e[e["size"].notna()]
        for (kind, aug), g in swept.groupby(["kind", "augmentation"], sort=False):
            g = g.sort_values("trained_items")
            x, y = g["trained_items"], 100 * g["mean"]
            err = [100 * (g["mean"] - g["ci_low"]), 100 * (g["ci_high"] - g["mean"])]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=colors.get(kind),
                        linestyle="-" if aug else "--",
                        label=f"{kind} {'with' if aug else 'without'} paraphrases")
        for _, r in e[e["size"].isna()].iterrows():
            c = colors.get(r["kind"], "black")
            ax.axhline(100 * r["mean"], color=c, linestyle=":", label=f"{r['arm']} (reference)")
            if pd.notna(r["ci_low"]) and r["ci_high"] > r["ci_low"]:
                ax.axhspan(100 * r["ci_low"], 100 * r["ci_high"], color=c, alpha=0.12)
        _log_x(ax, swept["trained_items"], NullFormatter)
        ax.set_ylim(-3, 103)      # 2-seed t-intervals can reach past 0 and 100
        ax.set_ylabel("exact match, % (mean over seeds, 95% CI)")
        ax.set_title(f"{eval_set}: {EVAL_SETS[eval_set]}", fontsize=9)
    axes[0].legend(fontsize=7)
    ax = axes[3]
    gained = curve[(curve["metric"] == "facts_gained") & (curve["kind"] == "lora")
                   & (curve["eval_set"] == "reworded")]
    for aug, g in gained.groupby("augmentation", sort=False):
        g = g.sort_values("trained_items")
        ax.errorbar(g["trained_items"], g["mean"], yerr=[g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]],
                    marker="o", capsize=3, color=colors["lora"], linestyle="-" if aug else "--",
                    label=f"lora {'with' if aug else 'without'} paraphrases")
    ax.axhline(0, color="tab:gray", linestyle=":")
    _log_x(ax, gained["trained_items"], NullFormatter)
    ax.set_ylabel("facts gained over closed-book (EM gain x trained items)")
    ax.set_title("trained facts lora added, answered in a never-trained wording", fontsize=9)
    ax.legend(fontsize=7)
    return [_save(fig, results_dir / "data_scaling.png")]


def _log_x(ax, xs, null_formatter) -> None:
    ax.set_xscale("log")
    ticks = sorted({round(x) for x in xs.dropna()})
    if ticks:
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(null_formatter())
    ax.set_xlabel("trained QA items (log)")
    ax.grid(alpha=0.3)


# -- report ----------------------------------------------------------------------------------------

def curve_markdown(curve: pd.DataFrame) -> list[str]:
    """One row per arm and setting: EM and seed-paired gain over closed-book on both sets."""
    def ci(g, metric, eval_set) -> str:
        r = g[(g["metric"] == metric) & (g["eval_set"] == eval_set)]
        return fmt_ci(*r[["mean", "ci_low", "ci_high"]].iloc[0]) if len(r) else ""

    lines = ["| arm | paraphrases | trained items | EM trained facts, reworded | gain vs closed-book "
             "| EM trained facts, trained wording | EM held-out test facts | gain vs closed-book |",
             "|---|---|---|---|---|---|---|---|"]
    keyed = curve.assign(_size=curve["size"].fillna(-1))
    for (arm, aug, size), g in keyed.groupby(["arm", "augmentation", "_size"], sort=False, dropna=False):
        if size == -1:
            lines.append(f"| {arm} | | reference | {ci(g, 'exact_match', 'reworded')} | "
                         f"| {ci(g, 'exact_match', 'trained')} | {ci(g, 'exact_match', 'test')} | |")
            continue
        lines.append(f"| {arm} | {'yes' if aug else 'no'} | {g['trained_items'].iloc[0]:.0f} | "
                     f"{ci(g, 'exact_match', 'reworded')} | {ci(g, 'em_gain_vs_closed_book', 'reworded')} | "
                     f"{ci(g, 'exact_match', 'trained')} | {ci(g, 'exact_match', 'test')} | "
                     f"{ci(g, 'em_gain_vs_closed_book', 'test')} |")
    return lines


def report(cfg, s: Settings, out: Path, quick: bool) -> Path:
    cells = load_cells(out)
    curve = curve_table(cells)
    lora = cells[cells["kind"] == "lora"]
    steps = lora.groupby(["size", "augmentation"])[["steps", "train_qa_examples", "train_examples"]].mean()
    steps_txt = "; ".join(f"n={int(n)}{'+para' if a else ''}: {r['steps']:.0f} steps "
                          f"({r['train_qa_examples']:.0f} QA + {r['train_examples'] - r['train_qa_examples']:.0f} "
                          f"documents)" for (n, a), r in steps.iterrows())
    lo = next(a for a in cfg.arms if a.arm == "lora").settings
    md = [f"# data-scaling: {cfg.claim.strip()}", "", cfg.description.strip(), "",
          "## What was measured", "",
          f"- Model `{cfg.model.name}`, world of {cfg.data.world.entities if cfg.data.world else '?'} people, "
          f"seeds {list(cfg.seeds)} (each a fresh world and fresh adapters){', --quick' if quick else ''}.",
          f"- Sweep: {len(s.sizes)} sizes {sorted(s.sizes)} of train-split QA items x paraphrase augmentation "
          f"{[bool(a) for a in s.augmentation]}; one adapter per (size, augmentation, seed), shared by lora and hybrid. "
          f"Recipe otherwise the accuracy experiment's: documents + QA + reading replay, LoRA r={lo.lora.rank}, "
          f"batch {lo.lora.batch_size}, lr {lo.lora.lr}, replay_share {lo.lora.replay_share}.",
          f"- Steps: epochs x training examples (documents + QA) / rows per step, epochs = {s.epochs:g}, clamped to "
          f"[{s.min_steps}, {s.max_steps}] (the accuracy adapters train 300 steps, ~3 passes): {steps_txt}.",
          "- Held-out wording: every train item's last paraphrase is never trained; with augmentation an item "
          "trains in its two other wordings, without in its canonical question only.",
          f"- `reworded`: {EVAL_SETS['reworded']} (all trained items, at most {s.reworded_items} per setting and seed). "
          f"`trained`: {EVAL_SETS['trained']}, for contrast. `test`: {EVAL_SETS['test']} "
          f"({s.test_items} per seed). References closed_book and rag answer the same "
          "items; gains are seed-paired differences on identical items.",
          "- Exact match in %, mean over seeds with a 95% t-interval (n = seeds).", "",
          "![learning curves](data_scaling.png)", "", *curve_markdown(curve), "",
          "## Verdicts", "", markdown_rows(claims(out)), "",
          "## Reading the numbers", "",
          "- EM on trained facts is a per-fact rate over the n facts trained: at a fixed number of passes it can "
          "fall as n grows while the number of facts the adapter adds (EM gain x n, last panel of the plot) rises.",
          f"- With {len(cfg.seeds)} seeds the 95% t-interval is the mean +- {_t95(len(cfg.seeds)):.1f} standard "
          "errors, and it collapses to a point when every seed gives the same value (the suite's `mean_ci`); "
          "the verdicts use exactly these intervals.", ""]
    return write_text("\n".join(md) + "\n", out / "report.md")


def _t95(n: int) -> float:
    from scipy import stats
    return float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")


def rewrite(config: Path, out: Path, quick: bool = False) -> Path:
    """Rewrite curve.csv, summary.csv, the plot and report.md from the saved cells.csv alone (no
    model; the manifest of the run that measured it is kept)."""
    cfg, s, _ = load(config, quick)
    out = Path(out)
    curve = curve_table(load_cells(out))
    write_csv(curve, out / "curve.csv")
    write_csv(summary_table(curve), out / "summary.csv")
    redraw(out)
    return report(cfg, s, out, quick)


def run(config: Path, out: Path, quick: bool = False, progress: bool = True,
        cache_dir: Path = CACHE_DIR) -> Path:
    from bench.report.manifest import write_manifest
    from bench.runner import preflight

    start = time.perf_counter()
    cfg, s, kinds = load(config, quick)
    preflight(cfg)      # the model resolves and every seed's data loads, before any training
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = run_sweep(cfg, s, kinds, out, Path(cache_dir), progress)
    items.to_parquet(out / "items.parquet", index=False)
    cells = cell_table(items)
    write_csv(cells, out / "cells.csv")
    path = rewrite(config, out, quick)
    lora = cells[cells["kind"] == "lora"].drop_duplicates(["size", "augmentation", "seed"])
    trained = float(pd.to_numeric(lora["train_seconds"], errors="coerce").sum())
    write_manifest(out / "manifest.json", cfg.name, {"experiment": cfg.to_json(), "study": asdict(s),
                                                     "quick": quick}, cfg.source,
                   {"total": round(time.perf_counter() - start, 1), "adapter_training": round(trained, 1)})
    return path
