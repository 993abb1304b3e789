"""Retrieval at N chunks (100k by default): one query's latency through the bench's store against
the index and the embedder alone.

The corpus and its passage embeddings are the scale study's (`bench.studies.scale`: the base
world plus distractor worlds; embeddings cached per world by content hash under
<cache>/scale-embeddings), so a machine that ran `make scale-100k` embeds nothing here, and one
that ran `make scale` has the first 10k (`--quick`). Rows of retrieval.csv, each one query at a
time over the scale study's question sample, after one untimed pass (as the scale study times),
the paths taking turns query by query:
  bench_store_hnsw     VectorStore.search([question], k): MiniLM encode + chroma HNSW query with
                       spare candidates, documents and metadata, ties re-sorted (the rag arm's
                       path above EXACT_MAX_CHUNKS, and the scale study's)
  bench_store_exact    the same with search="exact" (the rag arm's path up to EXACT_MAX_CHUNKS:
                       a float64 scan of every vector)
  chroma_raw           collection.query(query_embeddings=..., n_results=k, include=distances) on the
                       same collection, the query embedding precomputed
  chroma_as_bench      the same call as the store makes it (spare candidates, documents, metadata)
  faiss_hnsw           faiss.IndexHNSWFlat (inner product on the normalised vectors, M = 32,
                       efConstruction = 200 as chroma builds), efSearch the smallest of a grid
                       reaching recall@k >= 0.99 against exact
  faiss_flat           faiss.IndexFlatIP: exact search, the ground truth of every recall here
  minilm_one_query     the bench's Embedder.encode([question])
  minilm_bare_forward  tokenizer + BERT forward + mean pooling + normalising, no sentence-
                       transformers wrapper (its vectors are checked against the wrapper's)
  minilm_batched       Embedder.encode(all questions) / questions: the per-query cost in a batch
Recall counts a hit as right when its exact score reaches the k-th exact score (ties at the
boundary, duplicate sentences across worlds, are not misses).
Queries run with `query_threads` torch and FAISS threads (the scale study's choice: one, as a
CPU server handles concurrent requests, and a 2-thread query stalls on a busy 2-core machine).
"""

from __future__ import annotations

import shutil
import statistics
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["path", "chunks", "queries", "p50_ms", "p95_ms", "mean_ms", "embed_p50_ms",
           "search_p50_ms", "recall_at_k", "build_s", "detail"]
EF_COLUMNS = ["ef_search", "recall_at_k", "batched_ms_per_query", "chosen"]
INDEX_PATHS = ("chroma_raw", "faiss_hnsw", "faiss_flat")


def scale_settings(s):
    from bench.studies.scale import Settings

    return Settings(sizes=(s.chunks,), k=s.k, queries=s.queries, base_entities=s.base_entities,
                    distractor_entities=s.distractor_entities, rag_items=0,
                    query_threads=s.query_threads)


def corpus(s, embedder, cache_dir: Path, progress: bool):
    """(chunks, embeddings, questions, (worlds from cache, worlds)) through the scale study's
    corpus builder and embedding cache."""
    from bench.retrieval import chunk_passages
    from bench.studies.scale.corpus import questions
    from bench.studies.scale.measure import embedded_corpus

    ss = scale_settings(s)
    passages, emb, _, cached = embedded_corpus(ss, s.seed, embedder, cache_dir / "scale-embeddings", progress)
    return chunk_passages(passages, 1), emb, questions(ss, s.seed), cached


def interleaved(paths: dict, n: int) -> dict[str, np.ndarray]:
    """Milliseconds of each path's fn(i) for each query i, after one untimed pass over all of
    them. Paths take turns query by query, so a load change on a shared machine hits them alike
    (the target ratio divides one path's time by others')."""
    for i in range(n):
        for fn in paths.values():
            fn(i)
    out = {name: np.empty(n) for name in paths}
    for i in range(n):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn(i)
            out[name][i] = (time.perf_counter() - t0) * 1000
    return out


def recall(found: np.ndarray, queries: np.ndarray, vectors: np.ndarray, exact_scores: np.ndarray) -> float:
    """Share of found rows whose exact score reaches the k-th exact score (per query)."""
    kth = exact_scores[:, -1:] - 1e-5
    scores = np.einsum("qd,qkd->qk", queries, vectors[np.clip(found, 0, None)])
    return float(np.mean((scores >= kth) & (found >= 0)))


def bare_minilm(embedder):
    """One query through MiniLM with no wrapper: (encode function, its vectors)."""
    import torch

    st = embedder.model
    tok, bert, max_len = st.tokenizer, st[0].auto_model, st[0].max_seq_length

    def encode(text: str) -> np.ndarray:
        enc = tok([text], return_tensors="pt", truncation=True, max_length=max_len)
        with torch.inference_mode():
            hidden = bert(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return encode


def _row(path, chunks, ms, recall_k=float("nan"), build_s=float("nan"), detail="", embed=None, search=None):
    return {"path": path, "chunks": chunks, "queries": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(np.mean(ms)),
            "embed_p50_ms": float(np.percentile(embed, 50)) if embed is not None else float("nan"),
            "search_p50_ms": float(np.percentile(search, 50)) if search is not None else float("nan"),
            "recall_at_k": recall_k, "build_s": build_s, "detail": detail}


def faiss_indexes(s, emb: np.ndarray, q_emb: np.ndarray):
    """(exact index, HNSW index at the chosen efSearch, ef sweep table, build seconds, exact top-k)."""
    import faiss

    exact = faiss.IndexFlatIP(emb.shape[1])
    exact.add(emb)
    truth_scores, _ = exact.search(q_emb, s.k)
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(emb.shape[1], s.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = s.hnsw_ef_construction
    hnsw.add(emb)                     # all threads: the build is not what is compared
    build_s = time.perf_counter() - t0
    with query_threads(s.query_threads):
        sweep, chosen = _sweep(s, hnsw, emb, q_emb, truth_scores)
    hnsw.hnsw.efSearch = sweep[chosen]["ef_search"]
    return exact, hnsw, pd.DataFrame(sweep, columns=EF_COLUMNS), build_s, truth_scores


def _sweep(s, hnsw, emb, q_emb, truth_scores) -> tuple[list[dict], int]:
    """recall@k and batched time per efSearch of the grid; the chosen one is the smallest
    reaching min_recall (the widest, flagged in the table, when none does)."""
    hnsw.search(q_emb[:1], s.k)         # first-call costs out of the sweep's timing
    sweep, chosen = [], None
    for ef in s.ef_grid:
        hnsw.hnsw.efSearch = ef
        t0 = time.perf_counter()
        _, found = hnsw.search(q_emb, s.k)
        ms = (time.perf_counter() - t0) * 1000 / len(q_emb)
        r = recall(found, q_emb, emb, truth_scores)
        sweep.append({"ef_search": ef, "recall_at_k": r, "batched_ms_per_query": ms, "chosen": False})
        if chosen is None and r >= s.min_recall:
            chosen = len(sweep) - 1
    chosen = len(sweep) - 1 if chosen is None else chosen
    sweep[chosen]["chosen"] = True
    return sweep, chosen


@contextmanager
def query_threads(n: int):
    """n torch and n FAISS threads (restored afterwards)."""
    import faiss

    from bench.engine import torch_threads

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        with torch_threads(n):
            yield
    finally:
        faiss.omp_set_num_threads(before)


class StorePath:
    """The bench's search path end to end (embed + search), keeping the store's own split of
    its time and the rows it found."""

    def __init__(self, store, texts, k: int, row_of: dict):
        self.store, self.texts, self.k, self.row_of = store, texts, k, row_of
        self.found = [None] * len(texts)
        self.embed_ms, self.search_ms = [0.0] * len(texts), [0.0] * len(texts)

    def __call__(self, i: int) -> None:
        hits, timing = self.store.search([self.texts[i]], self.k)
        self.found[i] = [self.row_of[h.chunk_id] for h in hits[0]]
        self.embed_ms[i], self.search_ms[i] = timing[0].embed_seconds * 1000, timing[0].search_seconds * 1000


def query_paths(s, stores, embedder, hnsw, flat, texts, q_emb, row_of: dict) -> dict:
    """Every one-query path by name: fn(i) answers query i."""
    col, n = stores[0].collection, len(row_of)
    fetch = min(max(2 * s.k, s.k + 8), n)         # what VectorStore._search_hnsw asks chroma for
    chroma_found = [None] * len(texts)

    def chroma_raw(i):
        res = col.query(query_embeddings=q_emb[i:i + 1], n_results=s.k, include=["distances"])
        chroma_found[i] = [row_of[c] for c in res["ids"][0]]
    chroma_raw.found = chroma_found
    bare = bare_minilm(embedder)
    return {**{f"bench_store_{st.search_mode}": StorePath(st, texts, s.k, row_of) for st in stores},
            "chroma_raw": chroma_raw,
            "chroma_as_bench": lambda i: col.query(query_embeddings=q_emb[i:i + 1], n_results=fetch,
                                                   include=["documents", "metadatas", "distances"]),
            "faiss_hnsw": lambda i: hnsw.search(q_emb[i:i + 1], s.k),
            "faiss_flat": lambda i: flat.search(q_emb[i:i + 1], s.k),
            "minilm_one_query": lambda i: embedder.encode([texts[i]]),
            "minilm_bare_forward": lambda i: bare(texts[i])}


def rows_of(s, paths: dict, ms: dict, embedder, texts, emb, q_emb, truth, hnsw, flat, builds: dict) -> list[dict]:
    n, rows = len(emb), []
    for name, fn in paths.items():
        recall_k, detail, split = float("nan"), "", {}
        if isinstance(fn, StorePath):
            recall_k = recall(np.array(fn.found), q_emb, emb, truth)
            detail, split = f"search={fn.store.search_mode}", {"embed": fn.embed_ms, "search": fn.search_ms}
        elif name == "chroma_raw":
            recall_k, detail = recall(np.array(fn.found), q_emb, emb, truth), "ids+distances"
        elif name == "chroma_as_bench":
            detail = f"n_results={min(max(2 * s.k, s.k + 8), n)}, documents+metadatas+distances"
        elif name.startswith("faiss"):
            index = hnsw if name == "faiss_hnsw" else flat
            recall_k = recall(index.search(q_emb, s.k)[1], q_emb, emb, truth)
            detail = (f"M={s.hnsw_m}, efConstruction={s.hnsw_ef_construction}, efSearch={hnsw.hnsw.efSearch}"
                      if name == "faiss_hnsw" else "exact")
        elif name == "minilm_one_query":
            detail = "Embedder.encode"
        elif name == "minilm_bare_forward":
            same = np.allclose(np.concatenate([fn(i) for i in range(min(8, len(texts)))]),
                               embedder.encode(texts[:8]), atol=1e-4)
            detail = f"vectors match Embedder.encode: {bool(same)}"
        rows.append(_row(name, n, ms[name], recall_k, builds.get(name, float("nan")), detail, **split))
    batch = [_batched_ms(embedder, texts) for _ in range(3)]
    rows.append(_row("minilm_batched", n, np.full(len(texts), statistics.median(batch)),
                     detail=f"one encode of {len(texts)} questions, median of 3"))
    return rows


def measure(s, cache_dir: Path, progress: bool = False) -> tuple[dict[str, pd.DataFrame], dict]:
    """({'retrieval.csv', 'retrieval_hnsw_ef.csv'}, headline: target ratio and what it compares)."""
    from bench.retrieval import Embedder, VectorStore
    from bench.retrieval.store import EXACT_MAX_CHUNKS

    embedder = Embedder.load(scale_settings(s).embedder)
    root = Path(cache_dir) / "perf-chroma" / f"{s.chunks}-s{s.seed}-{uuid.uuid4().hex[:8]}"
    store = None
    try:
        t0 = time.perf_counter()
        chunks, emb, items, cached = corpus(s, embedder, Path(cache_dir), progress)
        corpus_s = time.perf_counter() - t0
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        n = len(chunks)
        # built from the cached embeddings (the build times the index alone), removed afterwards
        # as the scale study removes its own: a 100k collection is hundreds of MB
        store = VectorStore.open_or_build(chunks, embedder, root, progress=progress, embeddings=emb, search="hnsw")
        exact_store = VectorStore.open_or_build(chunks, embedder, root, progress=False, embeddings=emb,
                                                search="exact")   # the same collection, reused
        texts = [q.question for q in items]
        q_emb = embedder.encode(texts)
        row_of = {c.id: i for i, c in enumerate(chunks)}
        flat, hnsw, sweep, hnsw_build_s, truth = faiss_indexes(s, emb, q_emb)
        with query_threads(s.query_threads):
            paths = query_paths(s, (store, exact_store), embedder, hnsw, flat, texts, q_emb, row_of)
            ms = interleaved(paths, len(texts))
            rows = rows_of(s, paths, ms, embedder, texts, emb, q_emb, truth, hnsw, flat,
                           {"bench_store_hnsw": store.index_seconds, "faiss_hnsw": hnsw_build_s})
    finally:
        if store is not None:
            store.client.delete_collection(store.collection_name)
        shutil.rmtree(root, ignore_errors=True)
        embedder.close()
    table = pd.DataFrame(rows, columns=COLUMNS)
    headline = target_ratio(table, s.target_ratio, "bench_store_exact" if n <= EXACT_MAX_CHUNKS else "bench_store_hnsw")
    headline.update(chunks=n, corpus_seconds=round(corpus_s, 1), embeddings_cached_worlds=list(cached),
                    hnsw_build_seconds=round(hnsw_build_s, 1), chroma_index_seconds=round(store.index_seconds, 1))
    if progress:
        print(f"perf retrieval ({n} chunks): " + ", ".join(f"{r['path']} {r['p50_ms']:.2f} ms" for r in rows),
              flush=True)
    return {"retrieval.csv": table, "retrieval_hnsw_ef.csv": sweep}, headline


def _batched_ms(embedder, texts) -> float:
    t0 = time.perf_counter()
    embedder.encode(texts)
    return (time.perf_counter() - t0) * 1000 / len(texts)


def target_ratio(table: pd.DataFrame, target: float, bench_path: str) -> dict:
    """bench retrieval p50 / (one-query MiniLM p50 + the fastest index search p50)."""
    p50 = table.set_index("path")["p50_ms"]
    fastest = min(INDEX_PATHS, key=lambda p: p50[p])
    bare = p50["minilm_one_query"] + p50[fastest]
    ratio = p50[bench_path] / bare
    return {"bench_path": bench_path, "bench_p50_ms": float(p50[bench_path]), "fastest_index": fastest,
            "bare_p50_ms": float(bare), "ratio": float(ratio), "target": target, "holds": bool(ratio <= target)}
