"""How an instruct model reads: the gold passage given, 60 held-out facts of world seed 0
(40 people), answered through the bench's Generator with the chat format and 0..4 worked turns.

    .venv/bin/python scripts/probe_chat.py [--model smollm2-135m] [--demos 0 4]

Prints exact match and answer containment per setting (bench.models.chat quotes them).
"""

from __future__ import annotations

import argparse

import torch

from bench.data.world import WorldSpec, generate_world
from bench.metrics.scores import contains, exact_match
from bench.models.generator import Generator
from bench.prompts import context_prompt


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--demos", type=int, nargs="+", default=[0, 4])
    p.add_argument("--items", type=int, default=60)
    a = p.parse_args()
    torch.set_num_threads(2)
    world = generate_world(WorldSpec(n_entities=40), 0)
    text = {x.id: x.text for x in world.passages()}
    items = [q for q in world.qa() if q.answers and q.split == "test"][:a.items]
    for demos in a.demos:
        gen = Generator.load(a.model, max_new_tokens=16, batch_size=16, demos=demos)
        outs = gen.generate([gen.wrap(context_prompt(q.question, [text[q.gold_ids[0]]]), True) for q in items])
        em = sum(exact_match(o.text, q.answers) for o, q in zip(outs, items))
        hit = sum(contains(o.text, q.answers) for o, q in zip(outs, items))
        print(f"{a.model}, {demos} worked turns: exact match {em:.0f}/{len(items)}, "
              f"containment {hit:.0f}/{len(items)}", flush=True)
        gen.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
