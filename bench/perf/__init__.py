"""`python -m bench perf` (`make perf`): where the bench spends its time, measured side by side
against bare baselines in one run on one machine, written to results/perf/.

Four sections, one module each, one CSV each (plus report.md and manifest.json, run.py):
  generation.py  items/s through `Generator.generate` batched and one at a time, and a bare greedy
                 KV-cache loop doing the same work on the same tensors (its tokens checked)
  lora_step.py   seconds per step of the bench's LoRA loop (`fit_adapter`) vs a bare padded
                 forward+backward+AdamW step, a bare step over the real tokens only and the loop
                 in bfloat16; lora_profile.py: where the step's time goes (profiler shares, its
                 matrix multiplies replayed bare: the floor no loop change can pass)
  retrieval.py   one query at 100k chunks: the bench's store (embed + chroma), raw chroma, FAISS
                 HNSW and exact, and the query embedding alone; the target ratio
  make_times.py  `make all`'s wall time by target, from the studies' manifests and the log that
                 scripts/time_make_all.sh writes

The settings live here so the CLI, the report and the manifest read one definition; `--quick`
swaps in small sizes for a smoke run (minutes, not the full run's tens of minutes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

SECTIONS = ("generation", "lora", "retrieval", "make")


@dataclass(frozen=True)
class PerfSettings:
    model: str = "pocket"
    # the world, the answer batch size and the LoRA recipe come from the accuracy study's YAML, so
    # the shapes timed are the shapes the bench runs
    config: str = "experiments/accuracy.yaml"
    lora_arm: str = "lora"
    seed: int = 0
    # torch threads for generation and training; 0 = torch's default (what `make all` runs with)
    threads: int = 0
    entities: int | None = None      # world size; None = the config's
    # generation: prompts per prompt kind (closed-book, rag), timed repeats (median reported)
    gen_items: int = 128
    gen_repeats: int = 3
    gen_batch_size: int | None = None   # None = the config's model.batch_size
    # LoRA: steps timed per path (the real loop's per-step cost is its total / steps)
    lora_steps: int = 30
    # torch.compile backend for the compiled loop ("" skips it: compiling takes minutes on two cores)
    lora_compile: str = "inductor"
    # retrieval: chunks in the index, questions asked (each one query at a time)
    chunks: int = 100_000
    queries: int = 200
    k: int = 3
    base_entities: int = 100         # the scale study's corpus settings, so its embedding cache hits
    distractor_entities: int = 200
    hnsw_m: int = 32
    # efConstruction: chroma's own build setting (bench.retrieval.store.HNSW), so both graphs are
    # built alike; FAISS's default of 40 reaches only ~0.94 recall@3 at 10k on these look-alike texts
    hnsw_ef_construction: int = 200
    ef_grid: tuple[int, ...] = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048)
    min_recall: float = 0.99         # efSearch: the smallest on the grid reaching this recall@k
    query_threads: int = 1           # torch and FAISS threads while timing queries (as the scale study)
    target_ratio: float = 1.2        # bench retrieval / (bare embed + fastest search) should stay under

    def to_json(self) -> dict:
        return asdict(self)


# --quick: a smoke run; 10k chunks are what `make scale` (its quick setting) already embedded
QUICK = dict(entities=40, gen_items=32, gen_repeats=2, lora_steps=10, lora_compile="", chunks=10_000, queries=100)


def settings_for(quick: bool, **overrides) -> PerfSettings:
    s = PerfSettings()
    if quick:
        s = replace(s, **QUICK)
    return replace(s, **{k: v for k, v in overrides.items() if v is not None})
