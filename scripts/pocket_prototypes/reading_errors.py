"""Prototype (see README.md here): what the pocket model answers when it misreads. For the
reading probe's items at k = 1..3, each greedy answer is sorted into: the gold value, another
passage's value (a distractor: type right, binding wrong), text from the context that is no
passage's value, or text found in no passage (invented; `said_unknown` counts the abstentions
among them). `first_token_gold` is the share whose
first token is the gold value's (binding at the first step, right or not afterwards); a few
invented answers are printed as examples.

For a model that quotes before it answers (answer_style "quote"), each miss is also sorted by
its quote: the gold passage's text, another passage's text, or a blend that starts on the asked
name and goes on with the wording of another passage (`blend_from_other`: the quote's last
words are found in another passage; `blend_other`: the rest); `starts_on_asked_name` counts
the missed quotes whose first two words are in the question. BEAMS > 1 decodes with beam
search instead of greedily.

    reading_errors.py [MODEL_DIR [BEAMS]]       default: the committed checkpoint, greedy
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
from bench.prompts import ANSWER_PREFIX  # noqa: E402
from bench.pocket.probes import ProbeSettings, reading_items  # noqa: E402
from bench.pocket.recipe import CHECKPOINT_DIR  # noqa: E402

model = sys.argv[1] if len(sys.argv) > 1 else str(CHECKPOINT_DIR)
s = ProbeSettings()
world = generate_world(WorldSpec(n_entities=s.world_entities), seed=s.seed)
values = {normalize(v) for v in world.facts.values()}
gen = Generator.load(model, batch_size=64)
gen.model.generation_config.num_beams = int(sys.argv[2]) if len(sys.argv) > 2 else 1


def first_token(text):
    return gen.tokenizer(" " + text.strip(), add_special_tokens=False)["input_ids"][:1]



def quote_kind(quote, gold, lines):
    """Where a missed answer's quote comes from (arguments normalised)."""
    gold_line = next((line for line in lines if gold in line), "")
    if quote and quote in gold_line:
        return "gold_passage"
    if quote and any(quote in line for line in lines):
        return "other_passage"
    tail = " ".join(quote.split()[-2:])
    return "blend_from_other" if tail and any(tail in line for line in lines if line != gold_line) else "blend_other"


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
        if not exact_match(pred.text, answers) and ANSWER_PREFIX in pred.raw:
            quote = normalize(pred.raw.rsplit(ANSWER_PREFIX, 1)[0])
            counts["quote:" + quote_kind(quote, normalize(answers[0]), lines)] += 1
            question = normalize(prompt.split("Question:")[1])
            counts["quote:starts_on_asked_name"] += " ".join(quote.split()[:2]) in question
    print(json.dumps({"k": k, "n": len(items), **{c: round(counts[c] / len(items), 3) for c in
                      ("gold", "distractor", "other_context_text", "invented", "said_unknown", "first_token_gold")},
                      **{c: round(n / len(items), 3) for c, n in sorted(counts.items()) if c.startswith("quote:")}}),
          flush=True)
    for example in examples[:3]:
        print("  invented:", example)
