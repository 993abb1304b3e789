"""Prototype (see README.md here): a full pocket build whose context answers quote the gold
passage from the question's name on, then give the value ("Mirel Nukavu is employed by Total
Textiles. Answer: Total Textiles"), the format of `toy_binding.py quote`; then its probes, the
value read from after the last "Answer:". Closed-book answers and "unknown" stay as they are.

    quote_build.py STEPS OUT_DIR [WEIGHTS_JSON]      (then: quote_build.py probes OUT_DIR)

`continue_binding.py` imports use_quote_answers() to train such a model on (QUOTE=1).
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_variant import build  # noqa: E402
from bench.models.generator import Generator  # noqa: E402
from bench.pocket import data, probes  # noqa: E402
from bench.pocket.recipe import PocketRecipe  # noqa: E402
from bench.prompts import ANSWER_PREFIX, completion  # noqa: E402

plain_reading_example = data.reading_example


def quoted_reading_example(rng, *args, **kwargs):
    prompt, target = plain_reading_example(rng, *args, **kwargs)
    value = target.strip()
    if value == data.UNKNOWN:
        return prompt, target
    name = prompt.split("\nQuestion: ")[1]
    lines = [line.split("] ", 1)[1] for line in prompt.split("\n") if line.startswith("[")]
    # the gold passage names the person asked about and holds the value; every template puts
    # the name before the value, so the quote from the name on still holds the value
    gold = next(p for p in lines if f" {value}" in p and _asked_name(p, name))
    return prompt, completion(f"{gold[gold.index(_asked_name(gold, name)):]} {ANSWER_PREFIX} {value}")


def _asked_name(passage, question):
    """The two-word name in `passage` that `question` asks about (person names are two words)."""
    words = passage.rstrip(".").split()
    for i in range(len(words) - 1):
        name = " ".join(words[i:i + 2])
        if name in question:
            return name
    return None


def read_value(text):
    return text.rsplit(ANSWER_PREFIX, 1)[1].strip() if ANSWER_PREFIX in text else text


def quote_generator(path):
    gen = Generator.load(path, batch_size=64, max_new_tokens=40)
    generate = gen.generate

    def generate_values(prompts, **kwargs):
        out = generate(prompts, **kwargs)
        for g in out:
            g.text = read_value(g.text)
        return out

    gen.generate = generate_values
    return gen


def use_quote_answers():
    """From here on every context example of `bench.pocket.data` answers by quoting."""
    data.reading_example = quoted_reading_example


def main(args):
    use_quote_answers()
    if args[0] == "probes":
        rows = probes.run_probes(quote_generator(args[1]), data.background_world(PocketRecipe()))
        for row in rows:
            print(json.dumps(row), flush=True)
        return
    build(int(args[0]), args[1], json.loads(args[2]) if len(args) > 2 else None)


if __name__ == "__main__":
    main(sys.argv[1:])
