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

Each seed is a fresh base world (new entities and questions) against the same distractor worlds;
every (size, seed) cell builds its own index and asks the same question sample at every size,
so sizes are compared on identical questions. Passage embeddings are cached per world by content
hash (.cache/scale-embeddings): embedding 100k passages with MiniLM on 2 CPU cores takes ~5
minutes (~350 passages/s measured), every seed reuses the distractor worlds, and a larger corpus
reuses the smaller one's. The cache stores the seconds
measured when each world was embedded, which is what `embed_s` reports; index build, disk size,
query embedding and search are measured fresh in every run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench.config import CACHE_DIR, ConfigError, build, content_hash
from bench.data.schema import Passage
from bench.data.world import WorldSpec, generate_world
from bench.models.resolve import MINILM
from bench.report.manifest import write_manifest
from bench.retrieval import Embedder, VectorStore, chunk_passages, recall_at_k
from bench.io import atomic_write, write_csv, write_text
from bench.studies.scale_report import (claims, plot, redraw, report, summarize,  # noqa: F401
                                        verdicts)

DISTRACTOR_SEED0 = 1_000_000   # distractor world seeds start here, far from any base seed
ENCODE_SLICE = 512             # passages per embedding call (one progress step)


@dataclass(frozen=True)
class Settings:
    name: str = "scale"
    claim: str = ""
    sizes: tuple[int, ...] = (1000, 10000, 100000)   # chunks in the knowledge base, increasing
    k: int = 3                        # recall@k of the gold passage
    queries: int = 200                # answerable test questions of the base world per seed
    seeds: tuple[int, ...] = (0, 1, 2)
    base_entities: int = 100          # the asked world: ~800 passages, so the smallest KB is ~1k
    distractor_entities: int = 200    # per distractor world (~1,900 passages each)
    embedder: str = MINILM
    rag_model: str = "pocket"         # answers from the top k_rag chunks ('' = no generation)
    rag_items: int = 100              # first items of the question sample that get an answer
    k_rag: int = 1                    # the pocket model reads one passage well, several badly
    query_threads: int = 1            # torch threads while timing queries (see measure_cell)
    max_new_tokens: int = 8
    max_recall_drop: float = 0.05     # verdict rule: recall@k / EM may drop this much at most
    max_search_p95_ms: float = 100.0  # verdict rule: HNSW search p95 at the largest size
    quick: dict | None = None         # overrides applied with --quick

    def validate(self, where: str) -> None:
        if self.quick is not None and not isinstance(self.quick, dict):
            raise ConfigError(f"{where}.quick: expected a mapping of overrides")
        if not self.sizes or any(b <= a for a, b in zip(self.sizes, self.sizes[1:])):
            raise ConfigError(f"{where}.sizes: expected a non-empty, strictly increasing list, "
                              f"got {list(self.sizes)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or \
                not all(0 <= s < DISTRACTOR_SEED0 for s in self.seeds):
            raise ConfigError(f"{where}.seeds: expected distinct seeds in [0, {DISTRACTOR_SEED0}), "
                              f"got {list(self.seeds)}")
        for key in ("k", "queries", "base_entities", "distractor_entities", "k_rag",
                    "max_new_tokens", "query_threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")
        if not 0 <= self.rag_items <= self.queries:
            raise ConfigError(f"{where}.rag_items: expected 0..queries ({self.queries}), "
                              f"got {self.rag_items}")
        # the smallest knowledge base must hold the whole base world, or a gold passage is missing
        for seed in self.seeds:
            n = len(base_world(self, seed).passages())
            if self.sizes[0] < n:
                raise ConfigError(f"{where}.sizes: {self.sizes[0]} is smaller than the base world "
                                  f"({n} passages for seed {seed}); raise it or lower "
                                  f"base_entities")


def load_settings(path: Path, quick: bool = False) -> Settings:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: study file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not valid YAML") from None
    return parse_settings(raw, str(path), quick)


def parse_settings(raw: dict, source: str = "<scale>", quick: bool = False) -> Settings:
    settings = build(Settings, raw, f"{source}: scale")
    if quick:   # the quick block is checked by the same strict rules as the file itself
        settings = build(Settings, {**raw, **(settings.quick or {}), "quick": None},
                         f"{source}: scale.quick")
    return settings


# --- the corpus -----------------------------------------------------------------------------

def base_world(s: Settings, seed: int):
    return generate_world(WorldSpec(n_entities=s.base_entities), seed)


def _tagged(passages: list[Passage], tag: str) -> list[Passage]:
    # world generators reuse ids (e00000-d0-s0 in every world), so distractor ids get a prefix
    return [Passage(f"{tag}{p.id}", p.text, f"{tag}{p.doc_id}", p.meta) for p in passages]


def corpus_worlds(s: Settings, seed: int, size: int) -> list[tuple[list[Passage], list[int]]]:
    """[(passages of the whole world, indices kept in the corpus)]: the base world first, then
    distractor worlds until `size` is covered. A distractor world is kept whole beside the
    indices of its passages about entities nobody asks about, so its cached embeddings serve
    every seed (the dropped passages differ by seed) and every size (the last world may be
    used only in part, see corpus)."""
    world = base_world(s, seed)
    asked = set(world.entities) | {q["entity"] for q in world.qa_plan}   # incl. unknown names
    base = world.passages()
    worlds = [(base, list(range(len(base))))]
    total, i = len(base), 0
    while total < size:
        w = generate_world(WorldSpec(n_entities=s.distractor_entities), DISTRACTOR_SEED0 + i)
        ps = _tagged(w.passages(), f"x{i}:")
        kept = [j for j, p in enumerate(ps) if p.meta["entity"] not in asked]
        worlds.append((ps, kept))
        total += len(kept)
        i += 1
    return worlds


def corpus(s: Settings, seed: int, size: int) -> list[Passage]:
    return [ps[j] for ps, kept in corpus_worlds(s, seed, size) for j in kept][:size]


def world_embeddings(texts: list[str], embedder: Embedder, cache: Path,
                     bar) -> tuple[np.ndarray, float, bool]:
    """(embeddings, seconds it took to compute them, from cache?)."""
    key = content_hash([embedder.name, texts], n=32)
    npy, meta = cache / f"{key}.npy", cache / f"{key}.json"
    if npy.exists() and meta.exists():
        bar.update(len(texts))
        return np.load(npy), float(json.loads(meta.read_text())["seconds"]), True
    t0 = time.perf_counter()
    parts = []
    for i in range(0, len(texts), ENCODE_SLICE):
        parts.append(embedder.encode(texts[i:i + ENCODE_SLICE]))
        bar.update(len(parts[-1]))
    emb = np.concatenate(parts)
    seconds = time.perf_counter() - t0
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write(npy, lambda p: np.save(p, emb))   # the .json comes second: an .npy without it is recomputed
    write_text(json.dumps({"seconds": seconds, "n": len(texts), "embedder": embedder.name}), meta)
    return emb, seconds, False


def embedded_corpus(s: Settings, seed: int, embedder: Embedder, cache: Path, progress: bool):
    """(passages, embeddings, per-passage embedding seconds) of the largest size, and how
    many of its worlds' embeddings came from the cache."""
    from tqdm.auto import tqdm

    worlds = corpus_worlds(s, seed, s.sizes[-1])
    n = sum(len(ps) for ps, _ in worlds)
    passages, embs, secs, cached = [], [], [], 0
    with tqdm(total=n, desc=f"embed corpus (seed {seed})", unit="passage",
              disable=not progress) as bar:
        for ps, kept in worlds:
            emb, seconds, hit = world_embeddings([p.text for p in ps], embedder, cache, bar)
            cached += hit
            passages += [ps[j] for j in kept]
            embs.append(emb[kept])
            secs += [seconds / len(ps)] * len(kept)
    size = s.sizes[-1]
    return passages[:size], np.concatenate(embs)[:size], np.asarray(secs[:size]), \
        (cached, len(worlds))


# --- one cell: (size, seed) -----------------------------------------------------------------

def questions(s: Settings, seed: int):
    """A fixed sample of answerable test questions (recall needs a gold passage)."""
    items = [q for q in base_world(s, seed).qa() if q.split == "test" and q.answerable]
    return random.Random(f"scale:{seed}").sample(items, min(s.queries, len(items)))


def measure_cell(s: Settings, seed: int, size: int, passages, emb, secs, items, embedder,
                 generator, root: Path, progress: bool) -> dict:
    import torch

    chunks = chunk_passages(passages[:size], 1)
    # embedded once for every size (see embedded_corpus): the build timed here is the index
    store = VectorStore.open_or_build(chunks, embedder, root, progress=progress, embeddings=emb[:size])
    # On a small shared CPU a 2-thread batch-1 encode stalls whenever another thread holds a
    # core (chroma keeps working for seconds after a build): measured ~500 ms instead of ~20.
    # One thread per query is also how a CPU server handles concurrent requests.
    threads = torch.get_num_threads()
    torch.set_num_threads(s.query_threads)
    try:
        disk = store.disk_bytes()
        texts = [q.question for q in items]
        # the first query pays for loading the index; reported apart, kept out of percentiles
        _, cold = store.search([texts[0]], s.k)
        # steady state, as a serving process sees it: the first encode of each input length
        # builds CPU kernels, and the index settles after the build; so one untimed pass first
        for text in texts:
            store.search([text], s.k)
        hits, embed_ms, search_ms = [], [], []
        for text in texts:   # batch size 1: what one user waits for
            h, t = store.search([text], s.k)
            hits.append(h[0])
            embed_ms.append(t[0].embed_seconds * 1000)
            search_ms.append(t[0].search_seconds * 1000)
        _, batched = store.search(texts, s.k)   # one batch: per-query amortised cost
    finally:
        torch.set_num_threads(threads)
        store.client.delete_collection(store.collection_name)
        shutil.rmtree(root, ignore_errors=True)
    total_ms = np.add(embed_ms, search_ms)
    row = {
        "size": size, "seed": seed, "n_chunks": len(chunks),
        "distractors": sum(1 for p in passages[:size] if ":" in p.id),
        "queries": len(items),
        "embed_s": float(secs[:size].sum()), "index_s": store.index_seconds,
        "disk_mb": disk / 2**20,
        "cold_query_ms": (cold[0].embed_seconds + cold[0].search_seconds) * 1000,
        "recall_at_k": float(np.mean([recall_at_k(h, q.gold_ids) for h, q in zip(hits, items)])),
        "recall_at_1": float(np.mean([recall_at_k(h[:1], q.gold_ids) for h, q in zip(hits, items)])),
    }
    for name, values in (("embed", embed_ms), ("search", search_ms), ("total", total_ms)):
        row[f"{name}_ms_p50"] = float(np.percentile(values, 50))
        row[f"{name}_ms_p95"] = float(np.percentile(values, 95))
    row["embed_ms_batched"] = batched[0].embed_seconds * 1000
    row["search_ms_batched"] = batched[0].search_seconds * 1000
    row["rag_items"], row["rag_em"] = 0, math.nan
    if generator is not None and s.rag_items:
        from bench.metrics.scores import exact_match
        from bench.prompts import context_prompt

        rag = list(zip(items, hits))[: s.rag_items]
        prompts = [context_prompt(q.question, [c.text for c in h[: s.k_rag]]) for q, h in rag]
        preds = generator.generate(prompts)
        row["rag_items"] = len(rag)
        row["rag_em"] = float(np.mean([exact_match(g.text, q.answers)
                                       for g, (q, _) in zip(preds, rag)]))
    return row


# --- the study ------------------------------------------------------------------------------

def run(config: Path, out: Path, quick: bool = False, progress: bool = True,
        cache_dir: Path = CACHE_DIR) -> Path:
    start, load_before = time.perf_counter(), os.getloadavg()
    s = load_settings(config, quick)
    out, cache_dir = Path(out), Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    embedder = Embedder.load(s.embedder)
    generator = None
    if s.rag_model and s.rag_items:
        from bench.models.generator import Generator
        generator = Generator.load(s.rag_model, max_new_tokens=s.max_new_tokens, batch_size=32)
    from tqdm.auto import tqdm

    rows, timings, n_items, cached, loads = [], {}, [], 0, 0
    emb_cache = cache_dir / "scale-embeddings"
    try:
        for seed in s.seeds:
            t0 = time.perf_counter()
            passages, emb, secs, hits = embedded_corpus(s, seed, embedder, emb_cache, progress)
            cached, loads = cached + hits[0], loads + hits[1]
            timings[f"embed_corpus_seed{seed}"] = time.perf_counter() - t0
            items = questions(s, seed)
            n_items.append(len(items))
            for size in tqdm(s.sizes, desc=f"sizes (seed {seed})", disable=not progress):
                t0 = time.perf_counter()
                root = cache_dir / "chroma-scale" / f"{size}-s{seed}-{uuid.uuid4().hex[:8]}"
                rows.append(measure_cell(s, seed, size, passages, emb, secs, items, embedder,
                                         generator, root, progress))
                timings[f"cell_{size}_seed{seed}"] = time.perf_counter() - t0
    finally:
        embedder.close()
        if generator is not None:
            generator.close()
    table = pd.DataFrame(rows)
    summary = summarize(table)
    write_csv(table, out / "scale.csv")
    write_csv(summary, out / "summary.csv")
    plot(summary, out / "scale.png", s.k)
    seconds = time.perf_counter() - start
    timings["total"] = seconds
    path = write_text(report(summary, s, quick, seconds, (cached, loads), n_items), out / "report.md")
    write_manifest(out / "manifest.json", s.name, dataclasses.asdict(s), str(config), timings,
                   {"quick": quick, "verdicts": [dataclasses.asdict(c) for c in verdicts(summary, s)],
                    # other processes on the machine inflate latencies; this says how busy it was
                    "load_average_1_5_15": {"start": load_before, "end": os.getloadavg()}})
    return path
