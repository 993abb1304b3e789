"""Prototype (see README.md here): grow the committed pocket model to more layers and train on.

    grow_layers.py OUT_DIR LAYERS STEPS LR [WEIGHTS_JSON [MAX_K]]

Block expansion as in LLaMA Pro: each new layer is a copy of the layer before it with its
output projections (attention o_proj, MLP down_proj) set to zero, so the grown model computes
exactly what the old one did until training moves them. Then STEPS steps on the recipe's mix
(or WEIGHTS_JSON) under the build's warm-up and cosine schedule, the build's monitor, and the
reading, recall and abstention probes of `make probes` on the result.
"""
import json, sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.pocket.recipe import CHECKPOINT_DIR, PocketRecipe  # noqa: E402
from third_stage import train_and_probe  # noqa: E402  (the same training and probes)


def grow(model: LlamaForCausalLM, layers: int) -> LlamaForCausalLM:
    old = model.config.num_hidden_layers
    new = layers - old
    assert 0 < new <= old, "grow by 1 to as many layers as there are"
    after = {round((g + 1) * old / new) - 1 for g in range(new)}   # evenly spaced, as LLaMA Pro
    src = []
    for i in range(old):
        src += [(i, False)] + ([(i, True)] if i in after else [])
    config = model.config.__class__(**model.config.to_dict())
    config.num_hidden_layers = layers
    grown = LlamaForCausalLM(config)
    state = model.state_dict()
    weights = {k: v for k, v in state.items() if not k.startswith("model.layers.")}
    for j, (i, copy) in enumerate(src):
        for k, v in state.items():
            if k.startswith(f"model.layers.{i}."):
                name = k.replace(f"model.layers.{i}.", f"model.layers.{j}.", 1)
                zero = copy and (k.endswith("o_proj.weight") or k.endswith("down_proj.weight"))
                weights[name] = torch.zeros_like(v) if zero else v.clone()
    grown.load_state_dict(weights)
    print("layers from", [f"{i}{'*' if c else ''}" for i, c in src], flush=True)
    return grown


if __name__ == "__main__":
    out, layers, steps, lr = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    recipe = PocketRecipe()
    weights = json.loads(sys.argv[5]) if len(sys.argv) > 5 else recipe.weights
    max_k = int(sys.argv[6]) if len(sys.argv) > 6 else recipe.max_k
    torch.manual_seed(5); torch.set_num_threads(recipe.threads)
    tok = AutoTokenizer.from_pretrained(CHECKPOINT_DIR)
    base = LlamaForCausalLM.from_pretrained(CHECKPOINT_DIR)
    model = grow(base, layers)
    ids = tok(["Question: When was Tavo Selin born?\nAnswer:"], return_tensors="pt")
    with torch.no_grad():
        gap = (base(**ids).logits - model(**ids).logits).abs().max().item()
    print(f"grown to {layers} layers, {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"largest logit change before training {gap:.2e}", flush=True)
    del base
    train_and_probe(model, tok, out, steps, lr, weights, max_k, 5)
