"""Prototype (see README.md here): greedy answers of the quote toy (`toy_binding.py quote`, saved
with SAVE=DIR) on 150 fresh k = 2 examples, sorted into the gold quote, quotes carrying the other
passage's value, and the rest; prints the first eight misses.

    quote_errors.py [DIR]     (default /tmp/toy_quote)
"""
import collections
import random
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.data import names  # noqa: E402
from bench.data.world import ATTRIBUTES  # noqa: E402
from bench.pocket import data  # noqa: E402
from bench.prompts import context_prompt  # noqa: E402

torch.set_num_threads(2)
path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/toy_quote"
model, tok = LlamaForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
rng, counts, shown = random.Random(7), collections.Counter(), 0
for _ in range(150):
    attr = rng.choice(ATTRIBUTES)
    people = [(names.person_name(rng, 0), attr.sample(rng)) for _ in range(2)]
    passages = [data._statement(rng, attr.name, n, v) for n, v in people]
    i = rng.randrange(2)
    name = people[i][0]
    ids = tok(context_prompt(data._question(rng, attr.name, name), passages), return_tensors="pt").input_ids
    new = model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=tok.eos_token_id)[0, ids.shape[1]:]
    out = tok.decode(new, skip_special_tokens=True).strip()
    kind = "gold" if out == passages[i][passages[i].index(name):] else (
        "other passage's value" if people[1 - i][1] in out else "other")
    counts[kind] += 1
    if kind != "gold" and shown < 8:
        shown += 1
        print(passages, "|", name, "->", repr(out))
print({k: f"{v / 150:.1%}" for k, v in counts.items()})
