"""A chroma vector store of chunks, content-addressed and reused across runs.

One on-disk `chromadb.PersistentClient` per `root`; one collection per content hash of
(chunk ids + passage ids + texts, chunking key, embedder name). A collection is reused only
when its metadata says `complete` (set after the last add); a build interrupted half way has
no such flag and is deleted and rebuilt.

`upsert` / `delete` mutate the collection in place (freshness experiments do this on
purpose), so afterwards its content no longer matches the hash in its name. Such a collection
is flagged `mutated` in its metadata, and a later `open_or_build` for the original content
rebuilds it instead of silently reusing the edited one.

Reproducible top-k. Each distinct text is embedded once, so a sentence that two documents share
has one vector and ties with itself exactly; ties break by chunk id. Search is exact (cosine in
float64 over every vector) up to EXACT_MAX_CHUNKS, which covers the default worlds: an HNSW graph
built on another CPU can visit a different neighbour among near-ties, and so change an answer.
`search="hnsw"` (or a larger index under "auto") queries chroma's HNSW graph instead.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bench.locks import entry_lock
from bench.retrieval.chunking import Chunk
from bench.retrieval.embedder import Embedder, distinct_texts

EMBED_BATCH = 256  # texts per progress-bar step while building


@dataclass
class Hit:
    chunk_id: str
    text: str
    passage_ids: tuple[str, ...]
    score: float  # cosine similarity (1 - chroma cosine distance)


@dataclass
class QueryTiming:
    embed_seconds: float   # per query: batch wall time / batch size
    search_seconds: float


def _client(root: Path):
    import chromadb
    from chromadb.config import Settings

    root.mkdir(parents=True, exist_ok=True)
    # chroma creates its sqlite tables when a client first opens a root: two processes doing it
    # at once (two workers of a parallel run) fail with "table collections already exists"
    with entry_lock(root, "chroma-client"):
        return chromadb.PersistentClient(path=str(root), settings=Settings(anonymized_telemetry=False))


# One insert thread: a multi-threaded HNSW build differs run to run, and so would the top-k.
# A wide ef_search keeps the approximate search close to exact at these corpus sizes.
HNSW = {"space": "cosine", "num_threads": 1, "ef_construction": 200, "ef_search": 200}
SEARCH_MODES = ("auto", "exact", "hnsw")
EXACT_MAX_CHUNKS = 50_000      # "auto": exact search up to this many chunks (~75 MB of float32)
EXACT_PAGE = 10_000            # chunks read a call when the exact index loads
# how a collection's vectors were made: one encode per distinct text (part of the content hash)
EMBED_RULE = "distinct-texts-sorted"


def content_hash(chunks: Sequence[Chunk], chunking: str, embedder_name: str) -> str:
    h = hashlib.sha256()
    for part in (chunking, embedder_name, json.dumps(HNSW, sort_keys=True), EMBED_RULE):
        h.update(part.encode() + b"\0")
    for c in chunks:
        h.update(c.id.encode() + b"\0" + "\x1f".join(c.passage_ids).encode() + b"\0"
                 + c.text.encode() + b"\0")
    return h.hexdigest()


def _meta(c: Chunk) -> dict:
    return {"passage_ids": json.dumps(list(c.passage_ids)), "doc_id": c.doc_id}


def embed_distinct(texts: Sequence[str], embedder: Embedder, progress: bool = False) -> np.ndarray:
    """One row per text; each distinct text encoded once, so equal texts get equal vectors, and
    in sorted order, so the vectors do not depend on the order the texts came in (a text's
    batch-mates set its padding, which moves the last bits)."""
    from tqdm.auto import tqdm

    distinct, rows = distinct_texts(texts)
    parts = [embedder.encode(batch) for batch in
             tqdm(list(_batches(distinct, EMBED_BATCH)), desc="embed", unit="batch",
                  disable=not progress or len(distinct) <= EMBED_BATCH)]
    emb = np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), np.float32)
    return emb[rows] if len(texts) else emb


def _batches(seq: Sequence, n: int):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class VectorStore:
    def __init__(self, client, collection, embedder: Embedder, root: Path, meta: dict,
                 build_seconds: float, reused: bool, search: str = "auto"):
        if search not in SEARCH_MODES:
            raise ValueError(f"search: expected one of {SEARCH_MODES}, got {search!r}")
        self.search_mode = search
        self._exact = None            # (ids, texts, passage ids, float64 vectors), loaded lazily
        self._count: int | None = None  # chunks in the collection; reset by this store's own writes
        self.client = client
        self.collection = collection
        self.embedder = embedder
        self.root = Path(root)
        self.collection_name: str = collection.name
        self.build_seconds = build_seconds          # this open: ~0.0 when reused
        self.reused = reused
        self.original_build_seconds = float(meta.get("build_seconds", build_seconds))
        self.embed_seconds = float(meta.get("embed_seconds", 0.0))
        self.index_seconds = float(meta.get("index_seconds", 0.0))
        self._meta = dict(meta)
        self._max_batch = int(client.get_max_batch_size())

    @classmethod
    def open_or_build(cls, chunks: list[Chunk], embedder: Embedder, root: Path,
                      chunking: str = "passages:1", progress: bool = True,
                      embeddings: np.ndarray | None = None, search: str = "auto") -> "VectorStore":
        """The collection of these chunks under `root`, built unless a complete one is there.
        `embeddings` (one L2-normalised row per chunk, from this embedder) skips the encoding,
        so the build time is the index alone (the scale study embeds once for many sizes)."""
        ids = [c.id for c in chunks]
        if len(set(ids)) != len(ids):
            raise ValueError("chunk ids must be unique")
        if embeddings is not None and tuple(np.shape(embeddings)) != (len(chunks), embedder.dimension):
            raise ValueError(f"embeddings: expected shape ({len(chunks)}, {embedder.dimension}) "
                             f"(chunks x embedder dimension), got {tuple(np.shape(embeddings))}")
        # absolute: chromadb caches clients by path, so a relative root breaks after a chdir
        root = Path(root).resolve()
        name = "bench-" + content_hash(chunks, chunking, embedder.name)[:40]
        # another run building this collection holds the lock; once it is ours, an incomplete
        # collection is one whose builder died, and is rebuilt
        with entry_lock(root, name):   # lock files in <root>/locks, beside chroma's own files
            return cls._open_or_build(chunks, embedder, root, name, chunking, progress, embeddings, search)

    @classmethod
    def _open_or_build(cls, chunks, embedder, root: Path, name: str, chunking: str, progress: bool,
                       embeddings, search: str) -> "VectorStore":
        from chromadb.errors import NotFoundError
        from tqdm.auto import tqdm

        client = _client(root)
        t0 = time.perf_counter()
        try:
            col = client.get_collection(name, embedding_function=None)
        except (NotFoundError, ValueError):  # ValueError: chroma < 0.6
            col = None
        if col is not None:
            meta = dict(col.metadata or {})
            if meta.get("complete") and not meta.get("mutated") and col.count() == len(chunks):
                return cls(client, col, embedder, root, meta, time.perf_counter() - t0, True, search)
            client.delete_collection(name)  # interrupted or edited: rebuild from scratch

        meta = {"complete": False, "chunking": chunking, "embedder": embedder.name,
                "n_chunks": len(chunks)}
        col = client.create_collection(name, metadata=meta, embedding_function=None,
                                       configuration={"hnsw": HNSW})
        t0 = time.perf_counter()
        if embeddings is None:
            emb = embed_distinct([c.text for c in chunks], embedder, progress)
        else:
            emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        t1 = time.perf_counter()
        max_batch = int(client.get_max_batch_size())
        for i in tqdm(range(0, len(chunks), max_batch), desc=f"index {len(chunks)}", unit="batch",
                      disable=not progress or len(chunks) <= max_batch, leave=False):
            batch = chunks[i:i + max_batch]
            col.add(ids=[c.id for c in batch], embeddings=emb[i:i + len(batch)],
                    documents=[c.text for c in batch], metadatas=[_meta(c) for c in batch])
        t2 = time.perf_counter()
        meta.update(complete=True, embed_seconds=(t1 - t0) if embeddings is None else 0.0,
                    index_seconds=t2 - t1, build_seconds=t2 - t0)
        col.modify(metadata=meta)
        return cls(client, col, embedder, root, meta, t2 - t0, False, search)

    def exact(self) -> bool:
        return self.search_mode == "exact" or (self.search_mode == "auto"
                                               and self.count() <= EXACT_MAX_CHUNKS)

    def _load_exact(self):
        """Every chunk's id, text, passage ids and vector, sorted by chunk id (the tie-break)."""
        got = {"ids": [], "embeddings": [], "documents": [], "metadatas": []}
        # in pages: one get() of a whole large collection passes a SQL variable per row, past
        # sqlite's limit (~32k); pages of EXACT_PAGE keep every call under it
        for offset in range(0, self.count(), EXACT_PAGE):
            page = self.collection.get(include=["embeddings", "documents", "metadatas"],
                                       limit=EXACT_PAGE, offset=offset)
            for key in got:
                got[key].extend(page[key])
        order = sorted(range(len(got["ids"])), key=lambda i: got["ids"][i])
        vectors = np.asarray(got["embeddings"], dtype=np.float64).reshape(-1, self.embedder.dimension)
        self._exact = ([got["ids"][i] for i in order], [got["documents"][i] for i in order],
                       [tuple(json.loads(got["metadatas"][i]["passage_ids"])) for i in order],
                       vectors[order])

    def _search_exact(self, emb: np.ndarray, n: int) -> list[list[Hit]]:
        if self._exact is None:
            self._load_exact()
        ids, docs, pids, vectors = self._exact
        scores = np.asarray(emb, dtype=np.float64) @ vectors.T
        results = []
        for row in scores:
            # a stable sort of the id-ordered rows by descending score: equal scores keep id order
            top = np.argsort(-row, kind="stable")[:n]
            results.append([Hit(ids[j], docs[j], pids[j], float(row[j])) for j in top])
        return results

    def search(self, queries: list[str], k: int) -> tuple[list[list[Hit]], list[QueryTiming]]:
        """Top-k hits per query (score desc, ties by chunk id): one batched encode, then an exact
        scan or one batched HNSW query (see the module docstring)."""
        if not queries:
            return [], []
        n = min(int(k), self.count())
        t0 = time.perf_counter()
        emb = self.embedder.encode(list(queries))
        t1 = time.perf_counter()
        if n <= 0:
            results = [[] for _ in queries]
        else:
            results = self._search_exact(emb, n) if self.exact() else self._search_hnsw(emb, n)
        t2 = time.perf_counter()
        q = len(queries)
        timing = QueryTiming((t1 - t0) / q, (t2 - t1) / q)
        return results, [timing for _ in queries]

    def _search_hnsw(self, emb: np.ndarray, n: int) -> list[list[Hit]]:
        # fetch spare candidates so ties (the same sentence in two documents) break by chunk id,
        # not by the order the index happened to visit them
        fetch = min(max(2 * n, n + 8), self.count())
        results: list[list[Hit]] = []
        for i in range(0, len(emb), self._max_batch):
            res = self.collection.query(query_embeddings=emb[i:i + self._max_batch], n_results=fetch,
                                        include=["documents", "metadatas", "distances"])
            for ids, docs, metas, dists in zip(res["ids"], res["documents"],
                                               res["metadatas"], res["distances"]):
                hits = [Hit(cid, doc, tuple(json.loads(m["passage_ids"])), 1.0 - float(d))
                        for cid, doc, m, d in zip(ids, docs, metas, dists)]
                hits.sort(key=lambda h: (-round(h.score, 5), h.chunk_id))
                results.append(hits[:n])
        return results

    def _flag_mutated(self) -> None:
        # an exact index is part of the update: reloaded here, inside the update's timing
        self._exact, self._count = None, None
        if self.exact():
            self._load_exact()
        if not self._meta.get("mutated"):
            self._meta["mutated"] = True
            self.collection.modify(metadata=self._meta)

    def upsert(self, chunks: list[Chunk]) -> float:
        """Insert or replace chunks in place (no rebuild); returns wall seconds."""
        t0 = time.perf_counter()
        if chunks:
            emb = embed_distinct([c.text for c in chunks], self.embedder)
            for i in range(0, len(chunks), self._max_batch):
                batch = chunks[i:i + self._max_batch]
                self.collection.upsert(ids=[c.id for c in batch],
                                       embeddings=emb[i:i + len(batch)],
                                       documents=[c.text for c in batch],
                                       metadatas=[_meta(c) for c in batch])
        if chunks:
            self._flag_mutated()
        return time.perf_counter() - t0

    def delete(self, chunk_ids: list[str]) -> float:
        """Remove chunks by id in place; returns wall seconds."""
        t0 = time.perf_counter()
        for batch in _batches(list(chunk_ids), self._max_batch):
            self.collection.delete(ids=batch)
        if chunk_ids:
            self._flag_mutated()
        return time.perf_counter() - t0

    def count(self) -> int:
        # asked up to three times a search; chroma's count() is a database query (~0.8 ms at 100k
        # chunks, a quarter of an HNSW lookup), so it is read once and kept until this store writes
        if self._count is None:
            self._count = int(self.collection.count())
        return self._count

    def disk_bytes(self) -> int:
        """Bytes on disk that belong to this collection: its HNSW segment folder exactly, plus
        its share of the client's shared `chroma.sqlite3` (documents, metadata, write-ahead log),
        apportioned by embedding rows. Other collections under the same `root` are not counted."""
        return collection_disk_bytes(self.root, str(self.collection.id))


def collection_disk_bytes(root: Path, collection_id: str) -> int:
    """See `VectorStore.disk_bytes`. Reads chroma's own sqlite catalogue (read-only)."""
    root = Path(root)
    db = root / "chroma.sqlite3"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        segments = con.execute("SELECT id, scope FROM segments WHERE collection = ?",
                               (collection_id,)).fetchall()
        ours = [sid for sid, scope in segments if scope == "METADATA"]
        mine = con.execute(f"SELECT COUNT(*) FROM embeddings WHERE segment_id IN "
                           f"({','.join('?' * len(ours))})", ours).fetchone()[0] if ours else 0
        total = con.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    vector_bytes = sum(p.stat().st_size for sid, scope in segments if scope == "VECTOR"
                       for p in (root / sid).rglob("*") if p.is_file())
    shared = sum(p.stat().st_size for p in root.glob("chroma.sqlite3*") if p.is_file())
    return int(vector_bytes + (shared * mine / total if total else 0))


def recall_at_k(hits: list[Hit], gold_passage_ids: Sequence[str]) -> float:
    """The registered metric (bench.metrics.scores.recall_at_k) on a list of hits."""
    from bench.metrics.scores import recall_at_k as recall_of_ids

    return recall_of_ids([h.passage_ids for h in hits], gold_passage_ids)
