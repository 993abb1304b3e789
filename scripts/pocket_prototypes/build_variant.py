"""Prototype (see README.md here): a full pocket build from scratch with another mix or length,
written to OUT_DIR (never over the committed checkpoint); then `python -m bench probes --model
OUT_DIR --out DIR` measures it.

    [LR=3e-3] build_variant.py STEPS OUT_DIR [WEIGHTS_JSON]

LR (environment) overrides the recipe's peak learning rate.
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.pocket.recipe import PocketRecipe  # noqa: E402
from bench.pocket.train import build_pocket  # noqa: E402

weights = json.loads(sys.argv[3]) if len(sys.argv) > 3 else PocketRecipe().weights
lr = float(os.environ.get("LR", PocketRecipe().lr))
recipe = PocketRecipe(steps=int(sys.argv[1]), weights=weights, lr=lr)
print(recipe.hash(), flush=True)
summary = build_pocket(recipe, sys.argv[2], progress=False)
print(json.dumps({k: v for k, v in summary.items() if k != "log"}))
