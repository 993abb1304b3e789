"""What the default writer model (SmolLM2-135M-Instruct) writes for a corpus of your own: one
rewriting per document and two questions per passage, on the two passages of
tests/test_injection.py (the README quotes this output). Writes to a temporary cache, so it
generates every time. Run: .venv/bin/python scripts/probe_writer.py"""

import tempfile

from bench.data.dataset import Dataset
from bench.data.schema import Passage
from bench.injection.writers import ModelWriter

PASSAGES = [Passage("a", "The Quillon Dam was finished in 1931 by the builder Mara Vost.", "d1"),
            Passage("b", "The river Sable runs north through the valley of Denn.", "d2")]

if __name__ == "__main__":
    corpus = Dataset("probe", PASSAGES, [], "probe")
    writer = ModelWriter("smollm2-135m", tempfile.mkdtemp())
    for text in writer.renderings(corpus, 1, seed=0):
        print("rewriting:", text)
    for s in writer.questions(corpus, 2, seed=0):
        print(f"question: {s.question!r} -> answer: {s.answer!r} (passage {s.passage_id})")
    writer.close()
