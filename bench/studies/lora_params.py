"""lora-params: how many parameters LoRA trains, and how big the adapter is, by rank and target
modules, against full fine-tuning; for the bench's model and for Hugging Face configs.

Claim tested: LoRA trains a small fraction of the parameters (the article's example: a 512 x 64
matrix has 32,768 weights; LoRA at r=8 trains 8 x (512 + 64) = 4,608).

Every count comes twice: from peft, wrapping the real module tree (built from the config on the
meta device, so no weights are loaded or downloaded), and from arithmetic on the config alone,
r x (d_in + d_out) per adapted matrix; the two must agree. Adapter size on disk is the size of
the files peft writes (adapter_model.safetensors + adapter_config.json), written for real from
the adapter's state-dict shapes (a file's size depends only on names, shapes and dtypes). Full
fine-tuning trains every parameter; its checkpoint size is parameters x bytes per parameter.

Accuracy vs rank reuses the forgetting study's rank-sweep adapters (same world, recipe and
seeds, so they come from the adapter cache): closed-book EM on the trained and held-out
test-world facts and reading EM with one retrieved passage (hybrid arm), answerable items.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from tqdm import tqdm

from bench.config import CACHE_DIR, ConfigError, ExperimentConfig
from bench.report.claims import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Claim, fmt_ci, markdown_rows,
                                 not_run, results_present)
from bench.report.plots import _save
from bench.report.tables import mean_ci
from bench.studies.common import load_study, write_csv, write_text

NAME = "lora-params"
CLAIM = "LoRA trains a small fraction of the parameters"
EXAMPLE_CLAIM = "a 512 x 64 matrix has 32,768 weights; LoRA at r=8 trains 4,608"
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
ACC_METRICS = ["world_trained_em", "world_heldout_em", "world_reading_em", "train_seconds",
               "trainable_parameters"]


def _default_sets() -> dict:
    return {"q+v": ["q_proj", "v_proj"], "attention": list(ATTENTION),
            "attention+mlp": list(ATTENTION + MLP)}


@dataclass(frozen=True)
class Settings:
    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    target_sets: dict = field(default_factory=_default_sets)   # name -> module names
    hf_configs: dict = field(default_factory=dict)              # name -> a transformers config dict
    verdict_rank: int = 8
    small_fraction: float = 0.01          # "a small fraction": below 1% of the parameters
    bytes_per_parameter: int = 4          # full fine-tuning checkpoint (fp32, as the adapters)
    example: tuple[int, ...] = (512, 64, 8)   # (d_out, d_in, rank) of the article's example
    accuracy_ranks: tuple[int, ...] = (16, 64)      # adapters shared with forgetting; [] = skip
    accuracy_steps: int = 300
    max_items: int | None = None          # test-world items per split (None: data.max_items)
    entities: int | None = None           # override data.world.entities (quick runs)

    def validate(self, where: str) -> None:
        if not self.ranks or min(self.ranks) < 1:
            raise ConfigError(f"{where}.ranks: expected ranks >= 1, got {list(self.ranks)}")
        if self.verdict_rank not in self.ranks:
            raise ConfigError(f"{where}.verdict_rank: {self.verdict_rank} must be one of ranks")
        if not isinstance(self.target_sets, dict) or not self.target_sets:
            raise ConfigError(f"{where}.target_sets: expected a mapping name -> list of module names")
        for name, mods in self.target_sets.items():
            if not isinstance(mods, list) or not mods or not all(isinstance(m, str) for m in mods):
                raise ConfigError(f"{where}.target_sets.{name}: expected a non-empty list of module names")
        if not isinstance(self.hf_configs, dict):
            raise ConfigError(f"{where}.hf_configs: expected a mapping name -> config dict")
        for name, conf in self.hf_configs.items():
            if not isinstance(conf, dict) or not isinstance(conf.get("model_type"), str):
                raise ConfigError(f"{where}.hf_configs.{name}.model_type: required (e.g. qwen2, llama)")
        if len(self.example) != 3 or min(self.example) < 1:
            raise ConfigError(f"{where}.example: expected [d_out, d_in, rank], got {list(self.example)}")
        if not 0 < self.small_fraction < 1:
            raise ConfigError(f"{where}.small_fraction: expected 0 < x < 1")
        if self.accuracy_ranks and min(self.accuracy_ranks) < 1:
            raise ConfigError(f"{where}.accuracy_ranks: expected ranks >= 1")


# -- arithmetic ------------------------------------------------------------------------------

def lora_parameters(d_in: int, d_out: int, rank: int) -> int:
    """LoRA on a d_out x d_in matrix trains A (rank x d_in) and B (d_out x rank)."""
    return rank * (d_in + d_out)


LLAMA_FAMILY = ("llama", "qwen2", "mistral")


def config_shapes(config: dict) -> dict[str, tuple[int, int]] | None:
    """(d_in, d_out) of each projection in one decoder layer, from a llama-family config alone;
    None for another architecture (then the shapes come from the module tree)."""
    if config.get("model_type") not in LLAMA_FAMILY:
        return None
    h, heads = config["hidden_size"], config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    hd = config.get("head_dim") or h // heads
    inter = config["intermediate_size"]
    return {"q_proj": (h, heads * hd), "k_proj": (h, kv * hd), "v_proj": (h, kv * hd),
            "o_proj": (heads * hd, h), "gate_proj": (h, inter), "up_proj": (h, inter),
            "down_proj": (inter, h)}


def formula_count(config: dict, modules, rank: int) -> int | None:
    shapes = config_shapes(config)
    if shapes is None:
        return None
    return config["num_hidden_layers"] * sum(lora_parameters(*shapes[m], rank)
                                             for m in modules if m in shapes)


def full_parameter_count(config: dict) -> int | None:
    """Every weight of a llama-family model, from its config (tied embeddings counted once)."""
    shapes = config_shapes(config)
    if shapes is None:
        return None
    h, vocab = config["hidden_size"], config["vocab_size"]
    layer = sum(a * b for a, b in shapes.values()) + 2 * h           # weights + two RMSNorms
    if config["model_type"] == "qwen2":                                # q, k, v carry a bias
        layer += sum(shapes[m][1] for m in ("q_proj", "k_proj", "v_proj"))
    else:
        if config.get("attention_bias"):
            layer += sum(shapes[m][1] for m in ATTENTION)
        if config.get("mlp_bias"):
            layer += sum(shapes[m][1] for m in MLP)
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings", True) else 2)
    return embeddings + config["num_hidden_layers"] * layer + h


# -- peft on the real module tree ------------------------------------------------------------

def hf_config(config: dict):
    from transformers import AutoConfig

    rest = {k: v for k, v in config.items() if k != "model_type"}
    return AutoConfig.for_model(config["model_type"], **rest)


def meta_model(config):
    """The model class's real module tree with no storage behind it: nothing loaded or downloaded."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def adapter_disk_bytes(peft_model) -> int:
    """Bytes of the two files peft's save_pretrained writes for an adapter (weights + config),
    written for real from the state dict's names, shapes and dtypes (values do not change sizes)."""
    import torch
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in get_peft_model_state_dict(peft_model).items()}
    with tempfile.TemporaryDirectory() as d:
        save_file(state, os.path.join(d, "adapter_model.safetensors"), metadata={"format": "pt"})
        peft_model.peft_config["default"].save_pretrained(d)
        return sum(f.stat().st_size for f in Path(d).iterdir() if f.is_file())


def peft_count(config, modules, rank: int, disk: bool = True) -> dict:
    """peft's own count on a fresh module tree: trainable LoRA parameters, the base model's
    parameters, the adapted matrices and their shapes (for the arithmetic check)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    model = meta_model(config)
    full = sum(p.numel() for p in model.parameters())
    with torch.device("meta"):
        peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank,
                                                      target_modules=list(modules),
                                                      task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    layers = [m for m in peft_model.modules() if isinstance(m, LoraLayer)]
    shapes = [(m.in_features, m.out_features) for m in layers]
    return {"trainable": trainable, "full": full, "matrices": len(layers),
            "shape_formula": sum(lora_parameters(a, b, rank) for a, b in shapes),
            "adapter_bytes": adapter_disk_bytes(peft_model) if disk else None}


def example_check(d_out: int, d_in: int, rank: int) -> dict:
    """The article's example on a real d_out x d_in nn.Linear, counted by peft and by formula."""
    import torch
    from peft import LoraConfig, get_peft_model

    class One(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(d_in, d_out, bias=False)

        def forward(self, x):
            return self.w(x)

    module = One()
    weights = module.w.weight.numel()
    peft_model = get_peft_model(module, LoraConfig(r=rank, target_modules=["w"]))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return {"d_out": d_out, "d_in": d_in, "rank": rank, "weights": weights,
            "lora_peft": trainable, "lora_formula": lora_parameters(d_in, d_out, rank),
            "fraction": trainable / weights}


def count_table(models: dict, s: Settings, progress: bool = True) -> pd.DataFrame:
    """One row per (model, target set, rank) plus one full fine-tuning row per model."""
    rows = []
    todo = [(m, t, r) for m in models for t in s.target_sets for r in s.ranks]
    for name, target, rank in tqdm(todo, desc=f"{NAME}: counts", disable=not progress):
        kind, config = models[name]
        conf = config.to_dict()
        modules = s.target_sets[target]
        c = peft_count(config, modules, rank)
        formula = formula_count(conf, modules, rank)
        source = "config" if formula is not None else "module shapes"
        formula = c["shape_formula"] if formula is None else formula
        rows.append({"model": name, "kind": kind, "target_set": target, "modules": " ".join(modules),
                     "rank": rank, "adapted_matrices": c["matrices"], "trainable_peft": c["trainable"],
                     "trainable_formula": formula, "formula_source": source,
                     "counts_match": c["trainable"] == formula == c["shape_formula"],
                     "total_parameters": c["full"], "trainable_fraction": c["trainable"] / c["full"],
                     "adapter_bytes": c["adapter_bytes"],
                     "full_checkpoint_bytes": c["full"] * s.bytes_per_parameter})
    for name, (kind, config) in models.items():
        full = next(r["total_parameters"] for r in rows if r["model"] == name)
        arithmetic = full_parameter_count(config.to_dict())
        rows.append({"model": name, "kind": kind, "target_set": "full fine-tuning", "modules": "all",
                     "rank": float("nan"), "adapted_matrices": float("nan"), "trainable_peft": full,
                     "trainable_formula": full if arithmetic is None else arithmetic,
                     "formula_source": "module tree" if arithmetic is None else "config",
                     "counts_match": arithmetic is None or arithmetic == full,
                     "total_parameters": full, "trainable_fraction": 1.0,
                     "adapter_bytes": full * s.bytes_per_parameter,
                     "full_checkpoint_bytes": full * s.bytes_per_parameter})
    return pd.DataFrame(rows)


# -- accuracy vs rank (adapters shared with the forgetting study) ------------------------------

def accuracy_per_seed(cfg: ExperimentConfig, s: Settings, out: Path, cache_dir: Path,
                      progress: bool) -> pd.DataFrame:
    from bench.metrics.scores import exact_match
    from bench.runner import run_plain, stats_table
    from bench.studies.forgetting import template_arm, variant_arm

    kinds = [k for k in ("lora", "hybrid") if any(a.arm == k for a in cfg.arms)]
    arms = [variant_arm(template_arm(cfg, k, cfg.source), s.accuracy_steps, r)
            for k in kinds for r in s.accuracy_ranks]
    rcfg = dataclasses.replace(cfg, arms=tuple(arms))
    results = run_plain(rcfg, out, cache_dir, progress)
    em: dict[tuple[str, int], dict[str, float]] = {}
    for r in results:
        rows = [row for row in r.rows if row["answers"]]
        em[(r.job.arm.name, r.job.seed)] = {
            split: _mean([exact_match(x["prediction"], x["answers"]) for x in rows if x["split"] == split])
            for split in ("train", "test")}
    stats = stats_table(results).set_index(["arm", "seed"])
    rows = []
    for rank in s.accuracy_ranks:
        name = f"lora_s{s.accuracy_steps}_r{rank}"
        for seed in cfg.seeds:
            cell = stats.loc[(name, seed)]
            hybrid = em.get((f"hybrid_s{s.accuracy_steps}_r{rank}", seed), {})
            rows.append({"rank": rank, "steps": s.accuracy_steps, "seed": seed,
                         "world_trained_em": em[(name, seed)]["train"],
                         "world_heldout_em": em[(name, seed)]["test"],
                         "world_reading_em": hybrid.get("test", float("nan")),
                         "train_seconds": float(cell["train_seconds"]),
                         "trainable_parameters": int(cell["trainable_parameters"]),
                         "adapter_cached": bool(cell["adapter_cached"])})
    return pd.DataFrame(rows)


def _mean(values) -> float:
    return sum(values) / len(values) if values else float("nan")


# -- tables ----------------------------------------------------------------------------------

def tables(counts: pd.DataFrame, acc: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(summary in long form, accuracy by rank with CIs over seeds)."""
    long = []
    for _, r in counts.iterrows():
        arm = f"{r.model}/{r.target_set}" + ("" if pd.isna(r["rank"]) else f"/r{int(r['rank'])}")
        for metric in ("trainable_peft", "trainable_formula", "trainable_fraction", "adapter_bytes"):
            v = float(r[metric])
            long.append({"arm": arm, "metric": metric, "mean": v, "ci_low": v, "ci_high": v, "n": 1})
    wide = None
    if acc is not None and len(acc):
        wide_rows = []
        for rank, group in acc.groupby("rank", sort=True):
            row = {"rank": int(rank), "steps": int(group["steps"].iloc[0]), "n": len(group)}
            for metric in ACC_METRICS:
                m, lo, hi, n = mean_ci(group[metric].astype(float).tolist())
                long.append({"arm": f"lora_r{int(rank)}", "metric": metric, "mean": m, "ci_low": lo,
                             "ci_high": hi, "n": n})
                row.update({metric: m, f"{metric}_lo": lo, f"{metric}_hi": hi})
            wide_rows.append(row)
        wide = pd.DataFrame(wide_rows)
    return pd.DataFrame(long), wide


# -- claims and plots from saved tables ------------------------------------------------------

def fraction_verdict(fractions: list[float], small: float = 0.01, large: float = 0.10) -> str:
    """supported when every fraction is below `small`; contradicted when every one is at least
    `large`; inconclusive in between (or with nothing to judge)."""
    if not fractions or any(math.isnan(f) for f in fractions):
        return INCONCLUSIVE
    if max(fractions) < small:
        return SUPPORTED
    if min(fractions) >= large:
        return CONTRADICTED
    return INCONCLUSIVE


def claims(results_dir: Path) -> list[Claim]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, "params.csv", "example.csv", "manifest.json"):
        return [not_run(NAME, CLAIM, NAME), not_run(f"{NAME}.example", EXAMPLE_CLAIM, NAME)]
    counts = pd.read_csv(results_dir / "params.csv")
    ex = pd.read_csv(results_dir / "example.csv").iloc[0]
    study = json.loads((results_dir / "manifest.json").read_text())["config"]["study"]
    rank, small = int(study["verdict_rank"]), float(study["small_fraction"])
    lora = counts[counts["target_set"] != "full fine-tuning"]
    at = lora[lora["rank"] == rank]
    judged = at[at["kind"] == "hf_config"] if (at["kind"] == "hf_config").any() else at
    agree = bool(counts["counts_match"].all())

    def describe(model: str) -> str:
        rows = at[at["model"] == model]
        full = int(rows["total_parameters"].iloc[0])
        parts = ", ".join(f"{r.target_set} {int(r.trainable_peft):,} ({r.trainable_fraction * 100:.2f}%)"
                          for _, r in rows.iterrows())
        return f"{model} ({full:,} parameters): {parts}"

    verdict = fraction_verdict(judged["trainable_fraction"].tolist(), small) if agree else INCONCLUSIVE
    measured = (f"trainable parameters at r={rank} by target modules: "
                + "; ".join(describe(m) for m in dict.fromkeys(at["model"]))
                + (". peft counts equal r x (d_in + d_out) summed over the adapted matrices in every row"
                   if agree else ". WARNING: peft and the formula disagree in some rows (see params.csv)"))
    judged_names = ", ".join(dict.fromkeys(judged["model"]))
    main = Claim(NAME, CLAIM, NAME, measured, verdict,
                 f"supported when LoRA at r={rank} trains under {small * 100:g}% of the parameters for "
                 f"every target-module set of {judged_names}; contradicted when every set trains "
                 f"10% or more; inconclusive in between (or if peft and the formula disagree). "
                 f"Smaller models get larger fractions at the same rank (shown, not judged)")
    exact = (int(ex.weights) == int(ex.d_out) * int(ex.d_in) and int(ex.lora_peft) == int(ex.lora_formula)
             and int(ex.lora_formula) == int(ex["rank"]) * (int(ex.d_out) + int(ex.d_in)))
    article = int(ex.weights) == 32768 and int(ex.lora_peft) == 4608
    example = Claim(f"{NAME}.example", EXAMPLE_CLAIM, NAME,
                    f"{int(ex.d_out)} x {int(ex.d_in)} nn.Linear: {int(ex.weights):,} weights; peft "
                    f"LoRA r={int(ex['rank'])} trains {int(ex.lora_peft):,}, formula "
                    f"{int(ex['rank'])} x ({int(ex.d_out)} + {int(ex.d_in)}) = {int(ex.lora_formula):,} "
                    f"({ex.fraction * 100:.1f}% of the matrix)",
                    SUPPORTED if exact and article else CONTRADICTED,
                    "supported when peft's count on a real 512 x 64 matrix and the formula both give "
                    "exactly 4,608 of 32,768 weights; contradicted otherwise")
    return [main, example]


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    out = []
    if results_present(results_dir, "params.csv"):
        counts = pd.read_csv(results_dir / "params.csv")
        lora = counts[counts["target_set"] != "full fine-tuning"]
        models = list(dict.fromkeys(lora["model"]))
        sets = list(dict.fromkeys(lora["target_set"]))
        styles = ["-", "--", ":", "-."]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        for i, model in enumerate(models):
            for j, target in enumerate(sets):
                rows = lora[(lora["model"] == model) & (lora["target_set"] == target)].sort_values("rank")
                kw = dict(color=f"C{j}", ls=styles[i % len(styles)], marker="o", ms=3,
                          label=f"{model}: {target}")
                ax1.plot(rows["rank"], rows["trainable_fraction"] * 100, **kw)
                ax2.plot(rows["rank"], rows["adapter_bytes"] / 1e6, **kw)
            full = counts[(counts["model"] == model) & (counts["target_set"] == "full fine-tuning")]
            ax2.axhline(float(full["full_checkpoint_bytes"].iloc[0]) / 1e6, color="gray",
                        ls=styles[i % len(styles)], lw=1, label=f"{model}: full fine-tuning")
        ax1.axhline(100, color="gray", lw=1, label="full fine-tuning (100%)")
        ax1.axhline(1, color="red", lw=0.8, ls=":", label="1%")
        for ax, label in ((ax1, "trainable parameters, % of the model"), (ax2, "size on disk (MB)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("LoRA rank")
            ax.set_ylabel(label)
        ax1.set_title("trainable fraction vs rank")
        ax2.set_title("adapter vs full checkpoint size")
        ax1.legend(fontsize=6)
        ax2.legend(fontsize=6)
        out.append(_save(fig, results_dir / "lora_params.png"))
    if results_present(results_dir, "accuracy.csv"):
        acc = pd.read_csv(results_dir / "accuracy.csv").sort_values("rank")
        fig, ax = plt.subplots(figsize=(6, 4))
        for metric, label in (("world_trained_em", "trained facts, closed-book"),
                              ("world_heldout_em", "held-out facts, closed-book"),
                              ("world_reading_em", "reading with RAG (hybrid)")):
            if acc[metric].isna().all():
                continue
            ax.errorbar(acc["rank"], acc[metric], capsize=3, marker="o", label=label,
                        yerr=[acc[metric] - acc[f"{metric}_lo"], acc[f"{metric}_hi"] - acc[metric]])
        ax.set_xscale("log", base=2)
        ax.set_xticks(acc["rank"].tolist())
        ax.set_xticklabels([str(int(r)) for r in acc["rank"]])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"LoRA rank ({int(acc['steps'].iloc[0])} steps)")
        ax.set_ylabel("exact match (mean over seeds, 95% CI)")
        ax.set_title("test-world accuracy vs rank")
        ax.legend(fontsize=8)
        out.append(_save(fig, results_dir / "accuracy_vs_rank.png"))
    return out


# -- report ----------------------------------------------------------------------------------

def _mb(b: float) -> str:
    return f"{b / 1e6:.2f}" if b < 1e9 else f"{b / 1e9:.2f} GB"


def _counts_table(counts: pd.DataFrame, rank: int) -> str:
    lines = ["| model | target modules | matrices | trainable (peft) | r x (d_in + d_out) | "
             "% of model | size on disk (MB) |", "|---|---|---|---|---|---|---|"]
    pick = counts[(counts["rank"] == rank) | (counts["target_set"] == "full fine-tuning")]
    for _, r in pick.iterrows():
        full = r.target_set == "full fine-tuning"
        lines.append(f"| {r.model} | {r.target_set} | {'-' if full else int(r.adapted_matrices)} | "
                     f"{int(r.trainable_peft):,} | {int(r.trainable_formula):,} | "
                     f"{r.trainable_fraction * 100:.3g} | {_mb(r.adapter_bytes)} |")
    return "\n".join(lines)


def _rank_table(counts: pd.DataFrame) -> str:
    lora = counts[counts["target_set"] != "full fine-tuning"]
    cols = list(dict.fromkeys(zip(lora["model"], lora["target_set"])))
    lines = ["| rank | " + " | ".join(f"{m}: {t}" for m, t in cols) + " |", "|---|" + "---|" * len(cols)]
    for rank in sorted(lora["rank"].unique()):
        cells = []
        for m, t in cols:
            r = lora[(lora["model"] == m) & (lora["target_set"] == t) & (lora["rank"] == rank)].iloc[0]
            cells.append(f"{int(r.trainable_peft):,} ({r.trainable_fraction * 100:.2g}%)")
        lines.append(f"| {int(rank)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _acc_table(acc: pd.DataFrame) -> str:
    lines = ["| rank | trainable | train s | trained facts EM | held-out EM | reading EM (hybrid) |",
             "|---|---|---|---|---|---|"]
    for _, r in acc.iterrows():
        cells = [fmt_ci(r[m], r[f"{m}_lo"], r[f"{m}_hi"]) for m in
                 ("world_trained_em", "world_heldout_em", "world_reading_em")]
        lines.append(f"| {int(r['rank'])} | {int(r.trainable_parameters):,} | {r.train_seconds:.0f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(cfg: ExperimentConfig, s: Settings, out: Path, seconds: float) -> Path:
    counts = pd.read_csv(out / "params.csv")
    plots = redraw(out)
    cl = claims(out)
    md = [f"# lora-params: {CLAIM}", "", (cfg.description or "").strip(), "",
          f"Models: `{cfg.model.name}` (the bench's model) and the Hugging Face configs "
          f"{', '.join(f'`{n}`' for n in s.hf_configs) or '(none)'}, each built on the meta device from "
          f"its config (no weights). Trainable counts from peft `get_peft_model` on the real module "
          f"tree, checked against r x (d_in + d_out) per adapted matrix from the config alone. Size "
          f"on disk: adapter_model.safetensors + adapter_config.json as peft writes them (fp32 "
          f"adapter); full fine-tuning: every parameter x {s.bytes_per_parameter} bytes. "
          f"Run time {seconds:.0f} s.", "",
          *[f"![{p.stem}]({p.name})" for p in plots], "",
          f"## At rank {s.verdict_rank}", "", _counts_table(counts, s.verdict_rank), "",
          "## Trainable parameters by rank", "", _rank_table(counts), ""]
    if (out / "accuracy.csv").exists():
        acc = pd.read_csv(out / "accuracy.csv")
        md += [f"## Accuracy vs rank (`{cfg.model.name}`, {int(acc['steps'].iloc[0])} steps, "
               f"targets {' '.join(template_lora(cfg).target_modules)})", "",
               "Test-world exact match on answerable items, means over seeds "
               f"{list(cfg.seeds)} with 95% CIs; the adapters are the forgetting study's rank sweep.",
               "", _acc_table(acc), ""]
    md += ["## Verdict", "", markdown_rows(cl), ""]
    return write_text("\n".join(md) + "\n", out / "report.md")


def template_lora(cfg: ExperimentConfig):
    from bench.studies.forgetting import template_arm
    return template_arm(cfg, "lora", cfg.source).settings.lora


def load(config: Path, quick: bool = False):
    cfg, s = load_study(config, Settings, quick)
    for name, conf in s.hf_configs.items():     # a bad config dict fails here, before any work
        try:
            hf_config(conf)
        except Exception as e:  # transformers raises ValueError/KeyError/TypeError
            raise ConfigError(f"{config}: study.hf_configs.{name}: not a valid config: {e}") from None
    if s.accuracy_ranks:
        from bench.studies.forgetting import template_arm
        if cfg.data.world is None:
            raise ConfigError(f"{config}: data.world: accuracy vs rank trains on a synthetic world")
        template_arm(cfg, "lora", str(config))
        data = cfg.data
        if s.entities is not None:
            data = replace(data, world=replace(data.world, entities=s.entities))
        if s.max_items is not None:
            data = replace(data, max_items=s.max_items)
        cfg = dataclasses.replace(cfg, data=replace(data, eval_splits=("train", "test")))
    return cfg, s


def run(config: Path, out: Path, quick: bool = False, progress: bool = True,
        cache_dir: Path = CACHE_DIR) -> Path:
    from transformers import AutoConfig

    from bench.models.resolve import resolve_model
    from bench.report.manifest import write_manifest

    start = time.perf_counter()
    cfg, s = load(config, quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = {cfg.model.name: ("bench", AutoConfig.from_pretrained(resolve_model(cfg.model.name),
                                                                  trust_remote_code=cfg.model.trust_remote_code))}
    models.update({name: ("hf_config", hf_config(conf)) for name, conf in s.hf_configs.items()})
    counts = count_table(models, s, progress)
    t_counts = time.perf_counter() - start
    example = pd.DataFrame([example_check(*s.example)])
    acc = accuracy_per_seed(cfg, s, out, Path(cache_dir), progress) if s.accuracy_ranks else None
    summary, acc_wide = tables(counts, acc)
    write_csv(counts, out / "params.csv")
    write_csv(example, out / "example.csv")
    write_csv(summary, out / "summary.csv")
    if acc is not None:
        write_csv(acc, out / "accuracy_per_seed.csv")
        write_csv(acc_wide, out / "accuracy.csv")
    seconds = time.perf_counter() - start
    timings = {"total": round(seconds, 1), "counts": round(t_counts, 1)}
    if acc is not None:
        timings["lora_train_seconds_by_this_study"] = round(float(acc.loc[~acc["adapter_cached"], "train_seconds"].sum()), 1)
    write_manifest(out / "manifest.json", cfg.name, {"experiment": cfg.to_json(),
                                                     "study": dataclasses.asdict(s)},
                   cfg.source, timings)
    return report(cfg, s, out, seconds)
