"""scale: one RAG retriever over a knowledge base grown from ~1k to 100k chunks.

Claim tested: "RAG scales to very large knowledge bases", and the quoted figure "retrieval adds
typically 100-300 ms" (an HNSW lookup itself takes milliseconds; the rest is embedding, network,
re-ranking).

The corpus at each size is the base test world (whose questions we ask) plus distractor passages
from other generated worlds, appended in a fixed order, so every larger corpus is a superset of
every smaller one and recall differences come from the added distractors only. Distractor worlds
use the same name partition as the test world (names the pocket model never saw), and any
distractor passage about an entity of the base world is dropped, so a distractor can never
state a competing fact about an asked entity.

Each seed (the experiment's `seeds`) is a fresh base world (new entities and questions) against
the same distractor worlds; every (size, seed) cell builds its own index and asks the same
question sample at every size, so sizes are compared on identical questions. Passage embeddings
are cached per world by content hash (.cache/scale-embeddings): embedding 100k passages with
MiniLM on 2 CPU cores takes ~5 minutes (~350 passages/s measured), every seed reuses the
distractor worlds, and a larger corpus reuses the smaller one's. The cache stores the seconds
measured when each world was embedded, which is what `embed_s` reports; index build, disk size,
query embedding and search are measured fresh in every run. The experiment's model (`--model`)
answers the first `rag_items` questions from the top `k_rag` chunks.

No arms: the study drives a retriever and a reader itself. corpus.py builds the corpora (no
model), measure.py embeds, indexes and times them, read.py turns the saved scale.csv and
summary.csv into the verdicts, plot and report. `make scale` runs the --quick setting into
results/scale, `make scale-100k` the full one into results/scale-100k, which the claims report
prefers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


from bench.config import ConfigError
from bench.models.resolve import MINILM
from bench.studies.registry import Study, register_study
from bench.studies.scale import read
from bench.studies.scale.corpus import DISTRACTOR_SEED0, base_world


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...] = (1000, 10000, 100000)   # chunks in the knowledge base, increasing
    k: int = 3                        # recall@k of the gold passage
    queries: int = 200                # answerable test questions of the base world per seed
    base_entities: int = 100          # the asked world: ~800 passages, so the smallest KB is ~1k
    distractor_entities: int = 200    # per distractor world (~1,900 passages each)
    embedder: str = MINILM
    rag_items: int = 100              # first items of the question sample the model answers (0 = none)
    k_rag: int = 1                    # the pocket model reads one passage well, several badly
    query_threads: int = 1            # torch threads while timing queries (see measure_cell)
    max_recall_drop: float = 0.05     # verdict rule: recall@k / EM may drop this much at most
    max_search_p95_ms: float = 100.0  # verdict rule: HNSW search p95 at the largest size

    def validate(self, where: str) -> None:
        if not self.sizes or any(b <= a for a, b in zip(self.sizes, self.sizes[1:])):
            raise ConfigError(f"{where}.sizes: expected a non-empty, strictly increasing list, "
                              f"got {list(self.sizes)}")
        for key in ("k", "queries", "base_entities", "distractor_entities", "k_rag", "query_threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")
        if not 0 <= self.rag_items <= self.queries:
            raise ConfigError(f"{where}.rag_items: expected 0..queries ({self.queries}), "
                              f"got {self.rag_items}")


@register_study("scale")
class Scale(Study):
    order = 130
    Settings = Settings
    topics = (("scale", "RAG scales to large knowledge bases"),)
    summary = "knowledge base grown to 100k chunks: index, latency, recall, RAG quality"
    measure = "bench.studies.scale.measure"
    # summary.csv is measured too: its intervals come from the unrounded per-cell numbers
    base_tables = ("scale.csv", "summary.csv")
    arms_required = False
    folders = ("scale-100k", "scale")

    def check(self, cfg, settings, source):
        if not all(0 <= s < DISTRACTOR_SEED0 for s in cfg.seeds):
            raise ConfigError(f"{source}: seeds: expected seeds in [0, {DISTRACTOR_SEED0}) (distractor "
                              f"worlds use the seeds above), got {list(cfg.seeds)}")
        # the smallest knowledge base must hold the whole base world, or a gold passage is missing
        for seed in cfg.seeds:
            n = len(base_world(settings, seed).passages())
            if settings.sizes[0] < n:
                raise ConfigError(f"{source}: study.sizes: {settings.sizes[0]} is smaller than the base "
                                  f"world ({n} passages for seed {seed}); raise it or lower base_entities")

    # nothing to derive (summary.csv is a base table); claims and plot read the rule's settings
    # from the manifest, which the driver writes before the reading half runs
    claims = staticmethod(read.claims)
    redraw = staticmethod(read.redraw)

    def report(self, folder: Path, run) -> str:
        return read.report_md(folder, run)
