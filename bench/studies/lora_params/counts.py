"""lora-params, the counting: trainable LoRA parameters by arithmetic on a config alone,
r x (d_in + d_out) per adapted matrix, and by peft wrapping the real module tree (built on the
meta device: nothing is loaded or downloaded), the adapter's size on disk from a real save of its
state-dict shapes, and the article's 512 x 64 example. The model stack (torch, transformers,
peft) is imported inside the functions that need it, so the arithmetic imports none of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

NAME = "lora-params"
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


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


def count_table(models: dict, s, progress: bool = True) -> pd.DataFrame:
    """One row per (model, target set, rank) plus one full fine-tuning row per model."""
    from tqdm import tqdm

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
