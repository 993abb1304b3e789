"""Prototype (see README.md here): the after-LoRA probe with more steps or one-fact examples."""
import sys, json, random, dataclasses
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
import torch; torch.set_num_threads(2)
from bench.models.generator import Generator
from bench.models.lora import LoraSettings
from bench.pocket import probes, data
from bench.pocket.data import background_world
from bench.pocket.recipe import PocketRecipe
variant, steps, rank = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if variant == "sentences":
    orig = probes.lora_examples
    def lora_examples(world):
        ex = [e for e in orig(world) if e[0]]
        return ex + [("", p.text) for p in world.passages()]
    probes.lora_examples = lora_examples
s = probes.ProbeSettings(lora=LoraSettings(steps=steps, rank=rank, alpha=2 * rank))
gen = Generator.load("pocket", batch_size=64)
rows = probes.probe_after_lora(gen, background_world(PocketRecipe()), s, progress=False)
for r in rows: print(variant, steps, rank, r)
