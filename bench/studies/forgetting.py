"""forgetting: what the base model knew (the pocket model's background world) before and after
LoRA training on the test world, by training steps (epochs) and by LoRA rank.

Claim tested: narrow fine-tuning causes catastrophic forgetting. The pocket model was pretrained
on a background world of people disjoint from every test world (bench/pocket/data.py); half of
the background facts it was also drilled on as closed-book QA ("trained", ~100% recalled), the
other half it only read in documents ("held-out"). A fixed sample of each is asked closed-book
of the base model and of every adapter. Each adapter is the accuracy experiment's LoRA arm
(same world, training data and settings) with only steps or rank changed, alpha scaled with the
rank (alpha / rank as in the template arm), so the 300-step, rank-16 adapter is the accuracy
experiment's own, and adapters shared with other studies come from the cache.

So that the price of forgetting sits beside what was bought, each adapter's test-world accuracy
is measured too: closed-book on the facts it was trained on (train split) and on held-out facts,
and reading with one retrieved passage in the prompt (the hybrid arm), all on answerable items.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bench.config import CACHE_DIR, ArmConfig, ConfigError, ExperimentConfig, content_hash
from bench.report.claims import (Claim, fmt_ci, interval_verdict, markdown_rows, not_run,
                                 results_present)
from bench.report.plots import _save
from bench.report.tables import mean_ci, paired
from bench.studies.common import load_study, write_csv, write_text

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


@dataclass(frozen=True)
class Settings:
    steps: tuple[int, ...] = (100, 300, 400)      # the steps sweep, at base_rank
    ranks: tuple[int, ...] = (16, 64)             # the rank sweep, at base_steps
    base_steps: int = 300                         # the accuracy adapter: in both sweeps
    base_rank: int = 16
    background_items: int = 200                   # per background split, a fixed sample
    reading: bool = True                          # also score the hybrid arm (RAG reading)
    sweep_seeds: tuple[int, ...] | None = None    # seeds of the other adapters (None: all seeds);
                                                  # the base adapter and the references use all
    max_items: int | None = None                  # test-world items per split (None: data.max_items)
    entities: int | None = None                   # override data.world.entities (quick runs)

    def validate(self, where: str) -> None:
        for key in ("steps", "ranks"):
            values = getattr(self, key)
            if not values or min(values) < 1 or len(set(values)) != len(values):
                raise ConfigError(f"{where}.{key}: expected distinct values >= 1, got {list(values)}")
        if self.base_steps not in self.steps:
            raise ConfigError(f"{where}.base_steps: {self.base_steps} must be one of steps {list(self.steps)}")
        if self.base_rank not in self.ranks:
            raise ConfigError(f"{where}.base_rank: {self.base_rank} must be one of ranks {list(self.ranks)}")
        if self.background_items < 1:
            raise ConfigError(f"{where}.background_items: expected >= 1")
        if self.sweep_seeds is not None and not self.sweep_seeds:
            raise ConfigError(f"{where}.sweep_seeds: expected at least one seed (or leave it out)")


# -- configuration ---------------------------------------------------------------------------

def template_arm(cfg: ExperimentConfig, kind: str, where: str) -> ArmConfig:
    arms = [a for a in cfg.arms if a.arm == kind]
    if len(arms) != 1:
        raise ConfigError(f"{where}: arms: expected exactly one `arm: {kind}` (the template the "
                          f"sweeps vary), found {len(arms)}")
    return arms[0]


def variant_arm(template: ArmConfig, steps: int, rank: int) -> ArmConfig:
    """The template LoRA/hybrid arm with only steps and rank changed; alpha keeps its ratio to
    the rank, so the template's own (steps, rank) gives the template's adapter exactly."""
    lora = template.settings.lora
    alpha = lora.alpha * rank / lora.rank
    if alpha != int(alpha):
        raise ConfigError(f"{template.name}: alpha {lora.alpha} / rank {lora.rank} gives a "
                          f"non-integer alpha at rank {rank}")
    settings = replace(template.settings, lora=replace(lora, steps=steps, rank=rank, alpha=int(alpha)))
    return ArmConfig(f"{template.arm}_s{steps}_r{rank}", template.arm, settings)


def variants(s: Settings) -> list[tuple[int, int]]:
    """(steps, rank) of every adapter: the steps sweep at base_rank, then the rank sweep."""
    out = [(st, s.base_rank) for st in s.steps]
    out += [(s.base_steps, r) for r in s.ranks if (s.base_steps, r) not in out]
    return out


def load(config: Path, quick: bool = False):
    cfg, s = load_study(config, Settings, quick)
    where = str(config)
    if cfg.model.name != "pocket":
        raise ConfigError(f"{where}: model.name: the background world is what the pocket model was "
                          f"pretrained on; this study needs `pocket`, got '{cfg.model.name}'")
    if cfg.data.world is None:
        raise ConfigError(f"{where}: data.world: the study trains on a synthetic test world")
    for kind in ("closed_book", "lora") + (("rag", "hybrid") if s.reading else ()):
        template_arm(cfg, kind, where)
    extra = sorted(set(s.sweep_seeds or ()) - set(cfg.seeds))
    if extra:
        raise ConfigError(f"{where}: study.sweep_seeds: {extra} not in seeds {list(cfg.seeds)}")
    data = cfg.data
    if s.entities is not None:
        data = replace(data, world=replace(data.world, entities=s.entities))
    if s.max_items is not None:
        data = replace(data, max_items=s.max_items)
    data = replace(data, eval_splits=("train", "test"))
    return dataclasses.replace(cfg, data=data), s


def sweep_seeds(cfg: ExperimentConfig, s: Settings) -> tuple[int, ...]:
    return tuple(s.sweep_seeds) if s.sweep_seeds is not None else cfg.seeds


def seeds_of(cfg: ExperimentConfig, s: Settings, steps: int, rank: int) -> tuple[int, ...]:
    """The base adapter (the accuracy experiment's, cached) at every seed; the others at sweep_seeds."""
    return cfg.seeds if (steps, rank) == (s.base_steps, s.base_rank) else sweep_seeds(cfg, s)


def run_config(cfg: ExperimentConfig, s: Settings) -> ExperimentConfig:
    """The runner's view: the two references, then a lora (and hybrid) arm per variant."""
    arms = [template_arm(cfg, "closed_book", cfg.source)]
    if s.reading:
        arms.append(template_arm(cfg, "rag", cfg.source))
    lora = template_arm(cfg, "lora", cfg.source)
    arms += [variant_arm(lora, st, r) for st, r in variants(s)]
    if s.reading:
        hybrid = template_arm(cfg, "hybrid", cfg.source)
        arms += [variant_arm(hybrid, st, r) for st, r in variants(s)]
    return dataclasses.replace(cfg, arms=tuple(arms))


# -- measurement -----------------------------------------------------------------------------

def background_items(n: int) -> list:
    """A fixed sample of n answerable background questions per split: 'train' = facts the pocket
    model was drilled on as QA, 'test' = facts it only read in documents."""
    from bench.pocket.data import background_world
    from bench.pocket.recipe import PocketRecipe

    world = background_world(PocketRecipe())
    items = []
    for split in ("train", "test"):
        pool = [q for q in world.qa() if q.answerable and q.split == split]
        keep = {q.id for q in random.Random(f"background:{split}").sample(pool, min(n, len(pool)))}
        items += [q for q in pool if q.id in keep]
    return items


def background_jobs(rcfg: ExperimentConfig, arms_seeds, datasets, items) -> list:
    """Closed-book questions about the pocket model's background world, asked of each (arm, seed)
    model: a view of its own (the background sample), so the logs sit beside the test-world ones;
    a lora arm loads its adapter from the cache the test-world pass filled."""
    from bench.engine import Job

    view = "background:" + content_hash([q.id for q in items], n=12)
    return [Job(arm, seed, rcfg.model, rcfg.data, datasets[seed], tuple(items), view=view, tag="-background")
            for arm, seed in arms_seeds]


def _em_rows(rows) -> list[dict]:
    from bench.metrics.scores import exact_match

    return [{"split": r["split"], "exact_match": exact_match(r["prediction"], r["answers"])} for r in rows]


def _em(rows, split: str | None = None) -> float:
    scores = [r["exact_match"] for r in rows if split is None or r["split"] == split]
    return sum(scores) / len(scores) if scores else float("nan")


def measure(cfg: ExperimentConfig, s: Settings, out: Path, cache_dir: Path = CACHE_DIR,
            progress: bool = True) -> pd.DataFrame:
    """One row per (variant, seed): background EM, the drop from the base model, test-world EM."""
    from bench.engine import run_jobs
    from bench.runner import plan, preflight, stats_table

    rcfg = run_config(cfg, s)
    datasets = preflight(rcfg)
    # two test-world passes: references and the base adapter at every seed, the rest at sweep_seeds
    swept = {f"{k}_s{st}_r{r}" for k in ("lora", "hybrid") for st, r in variants(s)
             if seeds_of(cfg, s, st, r) != cfg.seeds}
    passes = [dataclasses.replace(rcfg, arms=tuple(a for a in rcfg.arms if a.name not in swept)),
              dataclasses.replace(rcfg, arms=tuple(a for a in rcfg.arms if a.name in swept),
                                  seeds=sweep_seeds(cfg, s))]
    results = run_jobs([job for p in passes for job in plan(p, datasets)], out, cache_dir, progress,
                       desc=f"{NAME}: test world")
    world = {(r.job.arm.name, r.job.seed): _em_rows([row for row in r.rows if row["answers"]])
             for r in results}                     # answerable items only
    stats = stats_table(results).set_index(["arm", "seed"])
    items = background_items(s.background_items)
    by_name = {a.name: a for a in rcfg.arms}
    base_arm = template_arm(cfg, "closed_book", cfg.source)
    first = cfg.seeds[0]   # the base model does not depend on the seed: asked once
    asked = [(base_arm, first)] + [(by_name[f"lora_s{st}_r{r}"], seed) for st, r in variants(s)
                                   for seed in seeds_of(cfg, s, st, r)]
    answered = run_jobs(background_jobs(rcfg, asked, datasets, items), out, cache_dir, progress,
                        desc=f"{NAME}: background")
    background = {(r.job.arm.name, r.job.seed): _em_rows(r.rows) for r in answered}
    background[BASE] = background.pop((base_arm.name, first))
    before = {sp: _em(background[BASE], sp) for sp in ("train", "test")}
    rag_name = template_arm(cfg, "rag", cfg.source).name if s.reading else None
    rows = []
    for seed in cfg.seeds:
        reading = world.get((rag_name, seed), [])
        rows.append({"variant": BASE, "steps": 0, "rank": 0, "seed": seed,
                     "background_trained_em": before["train"], "background_heldout_em": before["test"],
                     "background_trained_drop": 0.0, "background_heldout_drop": 0.0,
                     "world_trained_em": _em(world[(base_arm.name, seed)], "train"),
                     "world_heldout_em": _em(world[(base_arm.name, seed)], "test"),
                     "world_reading_em": _em(reading, "test"),
                     "epochs": 0.0, "train_seconds": 0.0, "trainable_parameters": 0})
        for st, r in variants(s):
            if seed not in seeds_of(cfg, s, st, r):
                continue
            name = f"lora_s{st}_r{r}"
            arm = by_name[name]
            cell = stats.loc[(name, seed)]
            lora = arm.settings.lora
            per_step = lora.batch_size - round(lora.batch_size * lora.replay_share)
            bg = background[(name, seed)]
            rows.append({"variant": name, "steps": st, "rank": r, "seed": seed,
                         "background_trained_em": _em(bg, "train"),
                         "background_heldout_em": _em(bg, "test"),
                         "background_trained_drop": before["train"] - _em(bg, "train"),
                         "background_heldout_drop": before["test"] - _em(bg, "test"),
                         "world_trained_em": _em(world[(name, seed)], "train"),
                         "world_heldout_em": _em(world[(name, seed)], "test"),
                         "world_reading_em": _em(world.get((f"hybrid_s{st}_r{r}", seed), []), "test"),
                         "epochs": st * per_step / float(cell["train_examples"]),
                         "train_seconds": float(cell["train_seconds"]),
                         "trainable_parameters": int(cell["trainable_parameters"]),
                         "adapter_cached": bool(cell["adapter_cached"])})
    return pd.DataFrame(rows)


# -- tables ----------------------------------------------------------------------------------

def tables(per_seed: pd.DataFrame, s: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary in long form, one wide row per variant with means and CIs over seeds)."""
    long, wide = [], []
    for variant, group in per_seed.groupby("variant", sort=False):
        steps, rank = int(group["steps"].iloc[0]), int(group["rank"].iloc[0])
        row = {"variant": variant, "steps": steps, "rank": rank,
               "in_steps_sweep": variant == BASE or (rank == s.base_rank and steps in s.steps),
               "in_rank_sweep": variant == BASE or (steps == s.base_steps and rank in s.ranks),
               "n": len(group)}
        for metric in METRICS:
            if metric not in group:
                continue
            m, lo, hi, n = mean_ci(group[metric].astype(float).tolist())
            long.append({"arm": variant, "metric": metric, "mean": m, "ci_low": lo, "ci_high": hi, "n": n})
            row.update({metric: m, f"{metric}_lo": lo, f"{metric}_hi": hi})
        wide.append(row)
    return pd.DataFrame(long), pd.DataFrame(wide)


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
    main = Claim(
        NAME, CLAIM, NAME,
        f"closed-book EM on background facts the base model knew: {base['background_trained_em'] * 100:.1f}% "
        f"before, {pts(base_row, 'background_trained_em')}% after the accuracy adapter "
        f"({int(base_row.steps)} steps = {base_row.epochs:.1f} epochs, rank {int(base_row['rank'])}): "
        f"a drop of {pts(base_row, d)} points (n={int(base_row.n)} seeds); document-only facts "
        f"{base['background_heldout_em'] * 100:.1f}% -> {pts(base_row, 'background_heldout_em')}%. "
        f"Drops per adapter: {sweep}. The adapter's own gain: trained test-world facts "
        f"{base['world_trained_em'] * 100:.1f}% -> {pts(base_row, 'world_trained_em')}%",
        verdict,
        "supported when the 95% CI over seeds of (before - after) background EM on the QA-trained "
        "background facts, for the accuracy adapter, lies above 0; contradicted when below 0; "
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


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, "forgetting.csv"):
        return []
    wide = pd.read_csv(results_dir / "forgetting.csv")
    base = wide[wide["variant"] == BASE].iloc[0]
    lora = wide[wide["variant"] != BASE]
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
                        capsize=3, label=f"{LABELS[metric]} (after)")
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
    return [_save(fig, results_dir / "forgetting.png")]


# -- report ----------------------------------------------------------------------------------

def _table(wide: pd.DataFrame) -> str:
    cols = ["background_trained_em", "background_trained_drop", "background_heldout_em",
            "world_trained_em", "world_heldout_em", "world_reading_em"]
    head = ["adapter", "n", "steps", "epochs", "rank", "bg trained EM", "bg trained drop",
            "bg doc-only EM", "world trained EM", "world held-out EM", "world reading EM"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in wide.iterrows():
        cells = ["base model (before)" if r.variant == BASE else r.variant, str(int(r.n)),
                 str(int(r.steps)) if r.steps else "-", f"{r.epochs:.1f}" if r.steps else "-",
                 str(int(r["rank"])) if r["rank"] else "-"]
        cells += [fmt_ci(r[c], r[f"{c}_lo"], r[f"{c}_hi"]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def report(cfg: ExperimentConfig, s: Settings, out: Path, seconds: float) -> Path:
    wide = pd.read_csv(out / "forgetting.csv")
    plots = redraw(out)
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
          f"Background: {s.background_items} QA-trained and {s.background_items} document-only "
          f"background questions (fixed sample), closed-book, exact match. Test world: answerable "
          f"items only, up to {cfg.data.max_items} per split and seed. Epochs = steps x new "
          f"examples per batch / training examples. Means over seeds with 95% t-intervals (n = "
          f"seeds; EM and drops in %, drops in points). {_timing(out, seconds)}", "",
          *[f"![{p.stem}]({p.name})" for p in plots], "", _table(wide), "",
          "## Verdict", "", markdown_rows(cl), ""]
    md += [tradeoff(wide), ""]
    return write_text("\n".join(md) + "\n", out / "report.md")


def run(config: Path, out: Path, quick: bool = False, progress: bool = True,
        cache_dir: Path = CACHE_DIR) -> Path:
    from bench.report.manifest import write_manifest

    start = time.perf_counter()
    cfg, s = load(config, quick)          # every config error before any model loads
    out = Path(out)
    per_seed = measure(cfg, s, out, Path(cache_dir), progress)
    summary, wide = tables(per_seed, s)
    write_csv(per_seed, out / "per_seed.csv")
    write_csv(summary, out / "summary.csv")
    write_csv(wide, out / "forgetting.csv")
    seconds = time.perf_counter() - start
    trained = per_seed[per_seed["variant"] != BASE]
    write_manifest(out / "manifest.json", cfg.name, {"experiment": cfg.to_json(),
                                                     "study": dataclasses.asdict(s)},
                   cfg.source, {"total": round(seconds, 1),
                                "lora_train_seconds_by_this_study": round(float(
                                    trained.loc[~trained["adapter_cached"].astype(bool), "train_seconds"].sum()), 1)},
                   extra={"adapters_cached": int(trained["adapter_cached"].astype(bool).sum()),
                          "adapters_total": len(trained),
                          "adapter_train_seconds_all": round(float(trained["train_seconds"].sum()), 1)})
    return report(cfg, s, out, seconds)
