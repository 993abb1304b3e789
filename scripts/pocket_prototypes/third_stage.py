"""Prototype (see README.md here): a third training stage on the committed model, a restart
like the recipe's second (warm-up, cosine decay to a tenth) on a mix and passage count of its
own, then the reading, recall and abstention probes of `make probes` on the result.

    third_stage.py OUT_DIR STEPS LR WEIGHTS_JSON MAX_K
    third_stage.py probe MODEL_DIR      (the probes alone, on any built model)
"""
import json, random, sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.data.world import WorldSpec, generate_world  # noqa: E402
from bench.models.generator import Generator  # noqa: E402
from bench.pocket import data  # noqa: E402
from bench.pocket.probes import ProbeSettings, probe_abstention, probe_reading, probe_recall  # noqa: E402
from bench.pocket.recipe import CHECKPOINT_DIR, PocketRecipe  # noqa: E402
from bench.pocket.train import _finish, _monitor, _train, batches  # noqa: E402


def train_and_probe(model, tok, out: Path, steps: int, lr: float, weights: dict, max_k: int, seed: int):
    """Train on after the committed model's last step (fresh 50-step warm-up, cosine schedule,
    the build's monitor), save to `out`, print the reading, recall and abstention probes."""
    recipe = PocketRecipe()
    rng = random.Random(seed)
    world = data.background_world(recipe)
    stream = batches(rng, tok, data.mixture(rng, world, weights, max_k, recipe.answer_style), recipe.batch_size)
    log, seconds, tokens = _train(model, tok, recipe, steps, lr, 50, lambda step: stream, _monitor(recipe, world),
                                  out, True, first_step=recipe.steps + recipe.stage2_steps)
    _finish(model, tok, {"hash": None, "log": log, "train_seconds": seconds, "tokens": tokens}, out, recipe.answer_style)
    print("trained", seconds, "s", flush=True)
    print_probes(out)


def print_probes(model_dir: Path):
    """The reading, recall and abstention probes of `make probes` (not the after-LoRA one)."""
    st = ProbeSettings()
    world = data.background_world(PocketRecipe())
    gen = Generator.load(str(model_dir), batch_size=64)
    unseen = generate_world(WorldSpec(n_entities=st.world_entities), seed=st.seed)
    for row in probe_reading(gen, unseen, st) + probe_recall(gen, world, st) + probe_abstention(gen, unseen, st):
        print(row, flush=True)


def main(args: list[str]):
    if len(args) == 2 and args[0] == "probe":
        return print_probes(Path(args[1]))
    if len(args) != 5:
        sys.exit(__doc__)
    seed = PocketRecipe().seed + 4              # the second stage used seed + 3
    torch.manual_seed(seed)
    torch.set_num_threads(PocketRecipe().threads)
    tok = AutoTokenizer.from_pretrained(CHECKPOINT_DIR)
    model = LlamaForCausalLM.from_pretrained(CHECKPOINT_DIR)
    train_and_probe(model, tok, Path(args[0]), int(args[1]), float(args[2]), json.loads(args[3]), int(args[4]), seed)


if __name__ == "__main__":
    main(sys.argv[1:])
