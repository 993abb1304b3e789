"""Prototype (see README.md here): what the pocket model answers when it misreads. For the
reading probe's items at k = 1..3, each greedy answer is sorted into: the gold value, another
passage's value (a distractor: type right, binding wrong), text from the context that is no
passage's value, or text found in no passage (invented; `said_unknown` counts the abstentions
among them). `first_token_gold` is the share whose
first token is the gold value's (binding at the first step, right or not afterwards); a few
invented answers are printed as examples.

    reading_errors.py [MODEL_DIR]       default: the committed checkpoint
"""
import collections
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.data.world import UNKNOWN, WorldSpec, generate_world  # noqa: E402
from bench.metrics.text import exact_match, normalize_answer as normalize  # noqa: E402
from bench.models.generator import Generator  # noqa: E402
from bench.pocket.probes import ProbeSettings, reading_items  # noqa: E402
from bench.pocket.recipe import CHECKPOINT_DIR  # noqa: E402

model = sys.argv[1] if len(sys.argv) > 1 else str(CHECKPOINT_DIR)
s = ProbeSettings()
world = generate_world(WorldSpec(n_entities=s.world_entities), seed=s.seed)
values = {normalize(v) for v in world.facts.values()}
gen = Generator.load(model, batch_size=64)


def first_token(text):
    return gen.tokenizer(" " + text.strip(), add_special_tokens=False)["input_ids"][:1]



rng = random.Random(s.seed)
for k in range(1, s.max_k + 1):
    items = reading_items(world, k, s.n_items, rng)
    preds = gen.generate([p for p, _ in items])
    counts, examples = collections.Counter(), []
    for pred, (prompt, answers) in zip(preds, items):
        text = normalize(pred.text)
        lines = [normalize(line) for line in prompt.split("Question:")[0].splitlines()[1:]]
        counts["first_token_gold"] += first_token(pred.text) == first_token(answers[0])
        if exact_match(pred.text, answers):
            counts["gold"] += 1
        elif text in values and any(text in line for line in lines):
            counts["distractor"] += 1
        elif text and any(text in line for line in lines):
            counts["other_context_text"] += 1
        else:
            counts["invented"] += 1
            counts["said_unknown"] += text == normalize(UNKNOWN)
            examples.append((pred.text.strip(), answers[0], lines))
    print(json.dumps({"k": k, "n": len(items), **{c: round(counts[c] / len(items), 3) for c in
                      ("gold", "distractor", "other_context_text", "invented", "said_unknown", "first_token_gold")}}),
          flush=True)
    for example in examples[:3]:
        print("  invented:", example)
