"""scale, the measuring half: per seed the largest corpus embedded once (passage embeddings
cached per world by content hash), then per size an index built from those embeddings, the
question sample searched one query at a time and in one batch, and the first `rag_items`
questions answered by the experiment's model from the top `k_rag` chunks.

Not executor jobs: the study times a retriever itself, one (size, seed) cell at a time, and
keeps no prediction log; the reading is a `rag` arm answering from the cell's index through the
executor's pieces (open_arm, answer_rows, the store seam).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config import content_hash
from bench.engine import torch_threads
from bench.io import atomic_write, write_text
from bench.locks import entry_lock
from bench.retrieval import Embedder, VectorStore, chunk_passages, recall_at_k
from bench.studies.scale.corpus import corpus_worlds, questions
from bench.studies.scale.read import summarize

ENCODE_SLICE = 512             # passages per embedding call (one progress step)


def world_embeddings(texts: list[str], embedder: Embedder, cache: Path,
                     bar) -> tuple[np.ndarray, float, bool]:
    """(embeddings, seconds it took to compute them, from cache?)."""
    key = content_hash([embedder.name, texts], n=32)
    with entry_lock(cache.parent, f"scale-embeddings-{key}"):   # another run embedding this world: wait
        return _load_or_embed(texts, embedder, cache, key, bar)


def _load_or_embed(texts: list[str], embedder: Embedder, cache: Path, key: str,
                   bar) -> tuple[np.ndarray, float, bool]:
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


def embedded_corpus(s, seed: int, embedder: Embedder, cache: Path, progress: bool):
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

def rag_exact_match(run, seed: int, store, items) -> float:
    """Exact match of the experiment's model reading the top `k_rag` chunks of this cell's index:
    a `rag` arm answering from the store handed to it (the executor's pieces, so the prompt and
    decoding are every rag arm's)."""
    from bench.arms.base import RetrievalSettings
    from bench.arms.registry import get_arm_class
    from bench.config import ArmConfig, DataConfig, WorldData
    from bench.engine import Job, answer_rows, open_arm
    from bench.metrics.scores import exact_match

    s = run.settings
    settings = get_arm_class("rag").Settings(retrieval=RetrievalSettings(k=s.k_rag, embedder=s.embedder,
                                                                                 search="hnsw"))
    job = Job(ArmConfig("rag", "rag", settings), seed, run.cfg.model,
              DataConfig(world=WorldData(entities=s.base_entities)), None, tuple(items), store=store)
    with open_arm(job, run.cache_dir, progress=False) as (arm, _):
        rows = answer_rows(arm, job, items)
    return float(np.mean([exact_match(r["prediction"], r["answers"]) for r in rows]))


def measure_cell(run, seed: int, size: int, passages, emb, secs, items, embedder,
                 root: Path) -> dict:
    s, progress = run.settings, run.progress
    chunks = chunk_passages(passages[:size], 1)
    # embedded once for every size (see embedded_corpus): the build timed here is the index
    # HNSW at every size: the study times the approximate index a large corpus needs
    store = VectorStore.open_or_build(chunks, embedder, root, progress=progress, embeddings=emb[:size],
                                      search="hnsw")
    # On a small shared CPU a 2-thread batch-1 encode stalls whenever another thread holds a
    # core (chroma keeps working for seconds after a build): measured ~500 ms instead of ~20.
    # One thread per query is also how a CPU server handles concurrent requests.
    try:
        with torch_threads(s.query_threads):
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
        rag_em = rag_exact_match(run, seed, store, items[: s.rag_items]) if s.rag_items else math.nan
    finally:
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
    row["rag_items"], row["rag_em"] = min(s.rag_items, len(items)), rag_em
    return row


# --- the study ------------------------------------------------------------------------------

def measure(run) -> dict[str, pd.DataFrame]:
    from tqdm.auto import tqdm

    cfg, s = run.cfg, run.settings
    load_before = os.getloadavg()
    embedder = Embedder.load(s.embedder)
    rows, cached, loads = [], 0, 0
    emb_cache = run.cache_dir / "scale-embeddings"
    try:
        with torch_threads(cfg.model.threads):   # the timed queries run with query_threads
            for seed in cfg.seeds:
                t0 = time.perf_counter()
                passages, emb, secs, hits = embedded_corpus(s, seed, embedder, emb_cache, run.progress)
                cached, loads = cached + hits[0], loads + hits[1]
                run.timings[f"embed_corpus_seed{seed}"] = time.perf_counter() - t0
                items = questions(s, seed)
                for size in tqdm(s.sizes, desc=f"sizes (seed {seed})", disable=not run.progress):
                    t0 = time.perf_counter()
                    root = run.cache_dir / "chroma-scale" / f"{size}-s{seed}-{uuid.uuid4().hex[:8]}"
                    rows.append(measure_cell(run, seed, size, passages, emb, secs, items, embedder, root))
                    run.timings[f"cell_{size}_seed{seed}"] = time.perf_counter() - t0
    finally:
        embedder.close()
    # how many world embeddings came from the cache (the report says so); other processes on
    # the machine inflate latencies: the load average says how busy it was
    run.extra.update(embeddings_cached=[cached, loads],
                     load_average_1_5_15={"start": load_before, "end": os.getloadavg()})
    table = pd.DataFrame(rows)
    return {"scale.csv": table, "summary.csv": summarize(table)}
