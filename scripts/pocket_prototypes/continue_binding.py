"""Prototype (see README.md here): continue training the committed pocket model with another
mix of example kinds (JSON weights, as in PocketRecipe.weights) and a fresh cosine schedule.

    [MODEL=DIR] [QUOTE=1] continue_binding.py STEPS OUT_DIR WEIGHTS_JSON LR

MODEL continues another checkpoint than the committed one; QUOTE=1 trains quote-then-value
context answers (quote_build.py), for a model built with them.
"""
import json, math, os, random, sys, time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.pocket import data  # noqa: E402
from bench.pocket.recipe import CHECKPOINT_DIR, PocketRecipe  # noqa: E402
from bench.pocket.train import batches, per_example_loss, teacher_forced_accuracy, _save

steps = int(sys.argv[1]); out = sys.argv[2]; weights = json.loads(sys.argv[3]); lr = float(sys.argv[4])
torch.manual_seed(0); torch.set_num_threads(2)
recipe = PocketRecipe()
if os.environ.get("QUOTE"):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quote_build import use_quote_answers
    use_quote_answers()
start = os.environ.get("MODEL", CHECKPOINT_DIR)
tok = AutoTokenizer.from_pretrained(start)
model = LlamaForCausalLM.from_pretrained(start)
world = data.background_world(recipe)
held = random.Random(2)
mon = {"binding_k2": [data.reading_example(held, max_k=2, abstain_share=0.0, same_attribute_share=1.0) for _ in range(96)],
       "binding_k3": [data.reading_example(held, max_k=3, abstain_share=0.0, same_attribute_share=1.0) for _ in range(96)],
       "reading_k4": [data.reading_example(held, max_k=4) for _ in range(96)],
       "recall": [data.closed_book_example(held, world, e, a) for e, a in held.sample(data.background_qa_facts(world)[0], 96)]}
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
warm = 50
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
rng = random.Random(7)
stream = batches(rng, tok, data.mixture(rng, world, weights, 3), 32)
t0 = time.time(); model.train()
for step in range(steps):
    loss = per_example_loss(model, next(stream)); loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
    if (step + 1) % 200 == 0 or step + 1 == steps:
        row = {"step": step + 1, "loss": round(loss.item(), 3), "s": round(time.time() - t0)}
        row.update({k: round(teacher_forced_accuracy(model, tok, v), 3) for k, v in mon.items()})
        print(json.dumps(row), flush=True)
_save(model, tok, {"hash": None}, Path(out))
