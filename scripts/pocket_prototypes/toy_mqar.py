"""Prototype (see README.md here): a sanity check of the training pipeline on the textbook
binding task (associative recall): random one-token keys and values "k1 v1 k2 v2 ... kq" ->
vq, with GAP random filler tokens between each key and its value. The same toy model, loss and
optimiser as toy_binding.py. Prints accuracy on 256 held-out examples every 250 steps.

    toy_mqar.py STEPS MAX_K GAP [all]

With `all`, every key is asked once after the pairs (in random order) and every answer carries
loss: k supervised tokens per example instead of one.
"""
import json
import os
import random
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.pocket.recipe import CHECKPOINT_DIR, PocketRecipe  # noqa: E402
from bench.pocket.train import IGNORE, collate, model_config, per_example_loss  # noqa: E402

steps, max_k, gap = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ask_all = sys.argv[4:] == ["all"]
torch.manual_seed(0)
torch.set_num_threads(int(os.environ.get("THREADS", 1)))
tok = AutoTokenizer.from_pretrained(CHECKPOINT_DIR)
vocab = len(tok)


def example(rng):
    k = max_k if os.environ.get("FIXED_K") else rng.randint(1, max_k)
    keys = rng.sample(range(16, vocab), k)
    ids = []
    for key in keys:
        ids += [key] + [rng.randrange(16, vocab) for _ in range(gap)] + [rng.randrange(16, vocab)]
    labels = [IGNORE] * len(ids)
    asked = rng.sample(range(k), k) if ask_all else [rng.randrange(k)]
    for q in asked:
        value = ids[q * (gap + 2) + gap + 1]
        ids += [keys[q], value]
        labels += [IGNORE, value]
    return ids, labels


@torch.no_grad()
def accuracy(model, rows):
    model.eval()
    batch = collate(rows, tok.pad_token_id)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    pred, gold = logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
    model.train()
    return ((pred == gold) | (gold == IGNORE)).all(dim=1).float().mean().item()


model = LlamaForCausalLM(model_config(PocketRecipe(hidden=128, layers=4, heads=4, intermediate=256), tok))
held = [example(random.Random(10_000 + i)) for i in range(256)]
opt = torch.optim.AdamW(model.parameters(), lr=float(os.environ.get("LR", 1e-3)), weight_decay=0.01, betas=(0.9, 0.98))
rng, start = random.Random(1), time.time()
for step in range(steps):
    loss = per_example_loss(model, collate([example(rng) for _ in range(64)], tok.pad_token_id))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    if (step + 1) % 250 == 0:
        print(json.dumps({"step": step + 1, "loss": round(loss.item(), 3),
                          "s": round(time.time() - start), "acc": round(accuracy(model, held), 3)}),
              flush=True)
