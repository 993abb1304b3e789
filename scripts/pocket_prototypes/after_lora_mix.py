"""Prototype (see README.md here): the after-LoRA probe with its adapter trained the way the
pocket model learnt its background world, which it recalls closed-book even for facts whose
questions it never trained on (recall held-out 83%). `qa` with `mixed` replay is what
bench/pocket/probes.py now does (its defaults: 1000 steps, rank 32, 20 renderings).

The adapter's examples are COPIES fresh renderings of every new person's biography (random
templates and order, the `biography` stream of pretraining) plus, with `qa`, the new world's
training questions; with `noqa` the biographies only, leaving the question format to what the
base model already knows. The replayed share is `bench.pocket.data.rehearsal_example` (half
reading, a quarter background biographies, a quarter background questions; `mixed`) or
reading only (`reading`).

    after_lora_mix.py qa|noqa STEPS RANK COPIES [mixed|reading] [LR]
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.models.generator import Generator  # noqa: E402
from bench.models.lora import LoraSettings  # noqa: E402
from bench.pocket import data, probes  # noqa: E402
from bench.pocket.recipe import PocketRecipe  # noqa: E402

variant, steps, rank, copies = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
replay_kind = sys.argv[5] if len(sys.argv) > 5 else "mixed"
lr = float(sys.argv[6]) if len(sys.argv) > 6 else 2e-3
torch.set_num_threads(2)
background = data.background_world(PocketRecipe())
# `qa` with `mixed` replay is what bench/pocket/probes.py now does; the others take a part away
biographies_and_questions = probes.lora_examples
if variant == "noqa":
    probes.lora_examples = lambda world, renderings: [
        e for e in biographies_and_questions(world, renderings) if not e[0]]
if replay_kind == "reading":
    probes.data.rehearsal_example = lambda rng, world, trained, max_k, style: data.reading_example(
        rng, max_k=max_k, answer_style=style)
settings = probes.ProbeSettings(renderings=copies,
                                lora=LoraSettings(steps=steps, rank=rank, alpha=2 * rank, lr=lr))
gen = Generator.load("pocket", batch_size=64)
for row in probes.probe_after_lora(gen, background, settings, progress=False):
    print(variant, steps, rank, copies, replay_kind, lr, row, flush=True)
