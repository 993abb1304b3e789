"""Prototype (see README.md here): a full pocket build from scratch with another mix or length,
written to OUT_DIR (never over the committed checkpoint); then `python -m bench probes --model
OUT_DIR --out DIR` measures it.

    [LR=3e-3] [RECIPE='{"layers": 6}'] build_variant.py STEPS OUT_DIR [WEIGHTS_JSON]

LR (environment) overrides the recipe's peak learning rate, RECIPE (a JSON object) any other
recipe fields (model size, say). The monitor log is in OUT_DIR.stage1.partial/recipe.json while
the first stage runs.
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.pocket.recipe import PocketRecipe  # noqa: E402
from bench.pocket.train import build_pocket  # noqa: E402


def build(steps, out_dir, weights=None, lr=None, fields=None):
    """A from-scratch build of `steps` steps with another mix (None: the recipe's), peak lr and
    other recipe fields."""
    recipe = PocketRecipe(**{"steps": steps, "weights": weights or PocketRecipe().weights,
                             "lr": lr or PocketRecipe().lr, **(fields or {})})
    print(recipe.hash(), flush=True)
    summary = build_pocket(recipe, out_dir, progress=False)
    print(json.dumps({k: v for k, v in summary.items() if k != "log"}))


if __name__ == "__main__":
    build(int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None,
          float(os.environ["LR"]) if "LR" in os.environ else None,
          json.loads(os.environ.get("RECIPE", "{}")))
