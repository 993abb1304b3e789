"""Prototype (see README.md here): the after-LoRA probe with more LoRA steps, or with the test
world's documents split into one-fact sentences (`sentences`) instead of whole documents (`docs`),
or every document re-rendered three times with random templates and sentence order (`augmented`,
the paraphrase augmentation that Allen-Zhu & Li and Ovadia et al. find knowledge extraction needs).

    after_lora.py docs|sentences|augmented STEPS RANK
"""
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.data.world import ATTRIBUTE_BY_NAME, render_statement  # noqa: E402
from bench.models.generator import Generator  # noqa: E402
from bench.models.lora import LoraSettings  # noqa: E402
from bench.pocket import probes  # noqa: E402
from bench.pocket.data import background_world  # noqa: E402
from bench.pocket.recipe import PocketRecipe  # noqa: E402

variant, steps, rank = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
if variant == "sentences":
    documents_and_questions = probes.lora_examples

    def one_fact_examples(world):
        questions = [e for e in documents_and_questions(world) if e[0]]   # plain text has no prompt
        return questions + [("", p.text) for p in world.passages()]

    probes.lora_examples = one_fact_examples
if variant == "augmented":
    documents_and_questions = probes.lora_examples

    def rerender(rng, world, sentence):
        attr = ATTRIBUTE_BY_NAME[sentence.attribute]
        value = world.facts[(sentence.entity, sentence.attribute)]
        return render_statement(attr, rng.randrange(len(attr.statements)), sentence.entity, value)

    def augmented_examples(world, copies=3):
        rng = random.Random(0)
        by_doc = {}
        for sent in world.sentences:
            by_doc.setdefault(sent.doc_id, []).append(sent)
        docs = []
        for sentences in by_doc.values():
            for _ in range(copies):
                order = rng.sample(sentences, len(sentences))
                docs.append(("", " ".join(rerender(rng, world, x) for x in order)))
        return [e for e in documents_and_questions(world) if e[0]] + docs

    probes.lora_examples = augmented_examples
settings = probes.ProbeSettings(lora=LoraSettings(steps=steps, rank=rank, alpha=2 * rank))
gen = Generator.load("pocket", batch_size=64)
for row in probes.probe_after_lora(gen, background_world(PocketRecipe()), settings, progress=False):
    print(variant, steps, rank, row)
