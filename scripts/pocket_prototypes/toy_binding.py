"""Prototype (see README.md here): a fresh small model trained on binding alone, optionally with
the question before the context or with reverse questions ("Whose color is teal?" -> the name)
mixed in. Prints teacher-forced accuracy on 128 held-out examples every 250 steps.

    toy_binding.py FORMAT REVERSE_SHARE STEPS MAX_K     FORMAT: ctx | qfirst | adjacent | quote

`adjacent` writes every passage as "Name: value." (no template words between name and value),
to test whether the distance between them is what keeps binding from forming. `quote` trains the
answer as the gold passage quoted from the question's name on ("Mirel Nukavu is employed by
Total Textiles."): the passage is then found by an induction head on the name, a circuit the
copy warm-up trains, instead of a name-to-value binding.
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
from bench.data import names  # noqa: E402
from bench.data.world import ATTRIBUTES  # noqa: E402
from bench.pocket import data  # noqa: E402
from bench.pocket.recipe import CHECKPOINT_DIR, PocketRecipe  # noqa: E402
from bench.pocket.train import (collate, encode_example, model_config,  # noqa: E402
                                per_example_loss, teacher_forced_accuracy)
from bench.prompts import completion, context_prompt  # noqa: E402

fmt, reverse_share, steps, max_k = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
torch.set_num_threads(int(os.environ.get('THREADS', 1)))
tok = AutoTokenizer.from_pretrained(CHECKPOINT_DIR)   # the committed tokenizer, a fresh model


def same_attribute_people(rng, max_k):
    """1..max_k fresh (name, value) pairs of one attribute: the binding case."""
    k, attr = rng.randint(1, max_k), rng.choice(ATTRIBUTES)
    return attr, [(names.person_name(rng, 0), attr.sample(rng)) for _ in range(k)]


def adjacent(rng, k):
    attr, people = same_attribute_people(rng, k)
    name, value = rng.choice(people)
    passages = [f"{n}: {v}." for n, v in people]
    return context_prompt(data._question(rng, attr.name, name), passages), completion(value)


def quote(rng, k):
    attr, people = same_attribute_people(rng, k)
    passages = [data._statement(rng, attr.name, n, v) for n, v in people]
    i = rng.randrange(len(people))
    name, gold = people[i][0], passages[i]
    return context_prompt(data._question(rng, attr.name, name), passages), completion(gold[gold.index(name):])


def forward(rng, k):
    if fmt == "adjacent":
        return adjacent(rng, k)
    if fmt == "quote":
        return quote(rng, k)
    prompt, target = data.reading_example(rng, max_k=k, abstain_share=0.0, same_attribute_share=1.0)
    if fmt == "qfirst":
        ctx, question = prompt.split("\nQuestion: ")
        prompt = f"Question: {question.replace(chr(10) + 'Answer:', '')}\n{ctx}\nAnswer:"
    return prompt, target


def reverse(rng, k):
    attr, people = same_attribute_people(rng, k)
    passages = [data._statement(rng, attr.name, name, value) for name, value in people]
    name, value = rng.choice(people)
    return context_prompt(f"Whose {attr.name.replace('_', ' ')} is {value}?", passages), completion(name)


model = LlamaForCausalLM(model_config(PocketRecipe(hidden=128, layers=4, heads=4, intermediate=256), tok))
held = random.Random(2)
monitor = {"fwd": [forward(held, max_k) for _ in range(128)]}
if os.environ.get("PER_K"):   # the same examples split by their number of passages
    for k in range(1, max_k + 1):
        monitor[f"k{k}"] = [e for e in monitor["fwd"] if e[0].count("\n[") == k]
if reverse_share:
    monitor["rev"] = [reverse(held, max_k) for _ in range(128)]
opt = torch.optim.AdamW(model.parameters(), lr=float(os.environ.get("LR", 1e-3)), weight_decay=0.01, betas=(0.9, 0.98))
rng, start = random.Random(1), time.time()
for step in range(steps):
    # no draw for the mix when there are no reverse questions: the runs without them reproduce
    rows = [encode_example(tok, *(reverse(rng, max_k) if reverse_share and rng.random() < reverse_share
                                  else forward(rng, max_k))) for _ in range(64)]
    loss = per_example_loss(model, collate(rows, tok.pad_token_id))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    if (step + 1) % 250 == 0:
        row = {"step": step + 1, "loss": round(loss.item(), 3), "s": round(time.time() - start)}
        row.update({k: round(teacher_forced_accuracy(model, tok, v), 3) for k, v in monitor.items()})
        print(json.dumps(row), flush=True)
if os.environ.get("SAVE"):
    model.save_pretrained(os.environ["SAVE"])
    tok.save_pretrained(os.environ["SAVE"])
