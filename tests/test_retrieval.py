"""Retrieval with the real packaged MiniLM and a real on-disk chroma (no mocks)."""

import math
import time

import numpy as np
import pytest

from bench.data.schema import Passage
from bench.retrieval import (Chunk, Embedder, VectorStore, chunk_passages, chunking_key,
                             recall_at_k)
from bench.retrieval.store import Hit

CORPUS = [
    Passage("p1", "Tavo Selin was born in 1843.", "tavo"),
    Passage("p2", "Tavo Selin worked as a lighthouse keeper in Orvane.", "tavo"),
    Passage("p3", "Mira Kalen plays the harp.", "mira"),
    Passage("p4", "Mira Kalen lives in the mountain town of Dessik.", "mira"),
    Passage("p5", "Joren Vask founded a bakery called The Copper Loaf.", "joren"),
    Passage("p6", "Joren Vask has two daughters.", "joren"),
    Passage("p7", "Liss Aramor wrote a novel about river pirates.", "liss"),
    Passage("p8", "Liss Aramor speaks four languages.", "liss"),
    Passage("p9", "Petra Quill is the mayor of Hollowmere.", "petra"),
    Passage("p10", "Petra Quill collects antique clocks.", "petra"),
]
QUESTION = "Which instrument does Mira Kalen play?"


@pytest.fixture(scope="module")
def embedder():
    emb = Embedder.load()
    yield emb
    emb.close()


@pytest.fixture
def store(embedder, tmp_path):
    return VectorStore.open_or_build(chunk_passages(CORPUS), embedder, tmp_path / "chroma",
                                     progress=False)


def test_chunking_size_one_keeps_passage_ids():
    chunks = chunk_passages(CORPUS)
    assert [c.id for c in chunks] == [p.id for p in CORPUS]
    assert chunks[2] == Chunk("p3", "Mira Kalen plays the harp.", ("p3",), "mira")


def test_chunking_groups_within_documents():
    ps = [Passage("a1", "A one.", "a"), Passage("a2", "A two.", "a"),
          Passage("a3", "A three.", "a"), Passage("b1", "B one.", "b"),
          Passage("a4", "A four.", "a")]
    chunks = chunk_passages(ps, size=2)
    assert [c.id for c in chunks] == ["a1+2", "a3+1", "b1+1", "a4+1"]
    assert chunks[0].text == "A one. A two."
    assert chunks[0].passage_ids == ("a1", "a2")
    assert [c.doc_id for c in chunks] == ["a", "a", "b", "a"]
    assert chunking_key(2) != chunking_key(1)


@pytest.mark.parametrize("size", [0, -3])
def test_chunking_rejects_bad_size(size):
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_passages(CORPUS, size=size)


def test_embedder_normalised(embedder):
    vecs = embedder.encode(["hello there", "Mira Kalen plays the harp."])
    assert embedder.dimension == 384
    assert vecs.dtype == np.float32 and vecs.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, embedder.dimension)


def test_search_finds_harp_first(store):
    assert not store.reused and store.count() == len(CORPUS)
    assert store.build_seconds >= 0 and store.embed_seconds >= 0 and store.index_seconds >= 0
    hits, timings = store.search([QUESTION, "When was Tavo Selin born?"], k=3)
    assert len(hits) == 2 and all(len(h) == 3 for h in hits)
    top = hits[0][0]
    assert top.chunk_id == "p3" and top.passage_ids == ("p3",)
    assert top.text == "Mira Kalen plays the harp."
    assert 0.0 < top.score <= 1.0 + 1e-6
    assert [h.score for h in hits[0]] == sorted((h.score for h in hits[0]), reverse=True)
    assert hits[1][0].chunk_id == "p1"
    assert len(timings) == 2
    assert all(t.embed_seconds >= 0 and t.search_seconds >= 0 for t in timings)
    assert store.disk_bytes() > 0


def test_recall_at_k():
    hits = [Hit("p3", "x", ("p3",), 0.9), Hit("p4+2", "y", ("p4", "p5"), 0.5)]
    assert recall_at_k(hits, ["p3"]) == 1.0
    assert recall_at_k(hits, ["p5"]) == 1.0
    assert recall_at_k(hits, ["p9"]) == 0.0
    assert recall_at_k([], ["p9"]) == 0.0
    assert math.isnan(recall_at_k(hits, []))


def test_reuse_and_content_addressing(store, embedder, tmp_path):
    t0 = time.perf_counter()
    again = VectorStore.open_or_build(chunk_passages(CORPUS), embedder, tmp_path / "chroma",
                                      progress=False)
    assert time.perf_counter() - t0 < 5.0
    assert again.reused and again.collection_name == store.collection_name
    assert again.build_seconds < 1.0
    assert again.original_build_seconds == pytest.approx(store.build_seconds)
    assert again.count() == len(CORPUS)

    changed = [Passage("p3", "Mira Kalen plays the violin.", "mira")] + CORPUS[3:]
    other = VectorStore.open_or_build(chunk_passages(changed), embedder, tmp_path / "chroma",
                                      progress=False)
    assert not other.reused and other.collection_name != store.collection_name
    grouped = VectorStore.open_or_build(chunk_passages(CORPUS, 2), embedder, tmp_path / "chroma",
                                        chunking=chunking_key(2), progress=False)
    assert grouped.collection_name not in (store.collection_name, other.collection_name)
    assert grouped.count() == 5

    # disk use is per collection: a second collection under the same root does not inflate
    # the first, and the parts add up to no more than the folder
    sizes = [s.disk_bytes() for s in (store, other, grouped)]
    folder = sum(p.stat().st_size for p in (tmp_path / "chroma").rglob("*") if p.is_file())
    assert all(0 < size < folder for size in sizes)
    assert sum(sizes) <= folder


def test_interrupted_build_is_rebuilt(store, embedder, tmp_path):
    meta = dict(store._meta, complete=False)
    store.collection.modify(metadata=meta)
    again = VectorStore.open_or_build(chunk_passages(CORPUS), embedder, tmp_path / "chroma",
                                      progress=False)
    assert not again.reused and again.count() == len(CORPUS)


def test_upsert_and_delete_in_place(store, embedder, tmp_path):
    name = store.collection_name
    secs = store.upsert(chunk_passages([Passage("p3", "Mira Kalen plays the violin.", "mira")]))
    assert secs >= 0
    assert store.count() == len(CORPUS) and store.collection_name == name
    hits, _ = store.search([QUESTION], k=2)
    assert hits[0][0].chunk_id == "p3" and hits[0][0].text == "Mira Kalen plays the violin."

    assert store.delete(["p9", "p10"]) >= 0
    assert store.count() == len(CORPUS) - 2
    hits, _ = store.search(["Who is the mayor of Hollowmere?"], k=3)
    assert len(hits[0]) == 3 and all(h.chunk_id not in ("p9", "p10") for h in hits[0])

    # the edited collection is not mistaken for the original content later
    again = VectorStore.open_or_build(chunk_passages(CORPUS), embedder, tmp_path / "chroma",
                                      progress=False)
    assert not again.reused and again.count() == len(CORPUS)


def test_two_builds_rank_ties_and_near_ties_the_same(embedder, tmp_path):
    """Same corpus -> same top-k in two fresh stores; identical sentences break ties by chunk id."""
    passages = [Passage(f"d{d}-s{i}", text, f"d{d}") for d in range(4)
                for i, text in enumerate(["Tavo Selin was born in 1843.", "Tavo Selin plays the harp.",
                                          f"Person {d} works for Velda Works."])]
    chunks = chunk_passages(passages)
    queries = ["When was Tavo Selin born?", "Which instrument does Tavo Selin play?",
               "Who employs person 2?"]
    runs = []
    for name in ("a", "b"):
        found, _ = VectorStore.open_or_build(chunks, embedder, tmp_path / name, progress=False).search(queries, 2)
        runs.append([[h.chunk_id for h in hits] for hits in found])
    assert runs[0] == runs[1]
    assert runs[0][0] == ["d0-s0", "d1-s0"]      # four identical sentences: lowest ids win


def test_build_from_precomputed_embeddings_searches_the_same(store, embedder, tmp_path):
    chunks = chunk_passages(CORPUS)
    emb = embedder.encode([c.text for c in chunks])
    pre = VectorStore.open_or_build(chunks, embedder, tmp_path / "pre", progress=False,
                                    embeddings=emb)
    assert pre.embed_seconds == 0.0 < pre.index_seconds
    (a,), _ = store.search([QUESTION], 3)
    (b,), _ = pre.search([QUESTION], 3)
    assert [h.chunk_id for h in a] == [h.chunk_id for h in b]
    assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
    with pytest.raises(ValueError, match=r"embeddings: expected shape \(10, 384\)"):
        VectorStore.open_or_build(chunks, embedder, tmp_path / "bad", progress=False,
                                  embeddings=emb[:3])


def test_index_built_in_two_orders_returns_the_same_hits(embedder, tmp_path, monkeypatch):
    """Exact search: the top-k is a function of the chunks, not of the order they were inserted;
    shared sentences (one vector each) tie exactly and break by chunk id."""
    import random

    shared = ["Tavo Selin was born in 1843.", "Mira Kalen plays the harp.", "The mill closed in 1920."]
    passages = [Passage(f"d{d:02d}-s{i}", text, f"d{d:02d}") for d in range(40)
                for i, text in enumerate([shared[d % 3], f"Person {d} works for Velda Works.",
                                          f"Person {d} lives in town {d % 7}."])]
    chunks = chunk_passages(passages)
    shuffled = list(chunks)
    random.Random(7).shuffle(shuffled)
    queries = ["When was Tavo Selin born?", "Who plays the harp?", "When did the mill close?"] + \
              [f"Where does person {d} live?" for d in range(0, 40, 4)]
    runs = []
    for name, order in (("forward", chunks), ("shuffled", shuffled), ("reversed", chunks[::-1])):
        store = VectorStore.open_or_build(order, embedder, tmp_path / name, progress=False)
        assert store.exact() and store.search_mode == "auto"
        found, _ = store.search(queries, 5)
        runs.append([[(h.chunk_id, h.score) for h in hits] for hits in found])
    assert runs[0] == runs[1] == runs[2]              # ids and scores, bit for bit
    import bench.retrieval.store as store_module      # the exact index read in pages (a large KB)
    monkeypatch.setattr(store_module, "EXACT_PAGE", 7)
    paged = VectorStore.open_or_build(chunks, embedder, tmp_path / "forward", progress=False)
    assert paged.reused and paged.count() == 120 > store_module.EXACT_PAGE
    found, _ = paged.search(queries, 5)
    assert [[(h.chunk_id, h.score) for h in hits] for hits in found] == runs[0]
    born = [cid for cid, _ in runs[0][0]]
    assert born == ["d00-s0", "d03-s0", "d06-s0", "d09-s0", "d12-s0"]   # 14 exact ties: lowest ids
    assert len({score for _, score in runs[0][0]}) == 1
    # the same ranking as a brute-force scan in float64 with the id tie-break
    emb = embedder.encode([c.text for c in chunks]).astype(np.float64)
    q = embedder.encode(queries[3:4]).astype(np.float64)[0]
    want = sorted(range(len(chunks)), key=lambda j: (-round(float(emb[j] @ q), 6), chunks[j].id))[:5]
    assert [cid for cid, _ in runs[0][3]] == [chunks[j].id for j in want]


def test_hnsw_search_is_available_and_agrees_on_a_small_corpus(store, embedder, tmp_path):
    hnsw = VectorStore.open_or_build(chunk_passages(CORPUS), embedder, tmp_path / "chroma",
                                     progress=False, search="hnsw")
    assert not hnsw.exact() and store.exact()
    (a,), _ = store.search([QUESTION], 3)
    (b,), _ = hnsw.search([QUESTION], 3)
    assert [h.chunk_id for h in a] == [h.chunk_id for h in b]
    with pytest.raises(ValueError, match="search: expected one of"):
        VectorStore(hnsw.client, hnsw.collection, embedder, hnsw.root, {}, 0.0, True, search="fast")


def test_equal_texts_get_equal_vectors(embedder):
    from bench.retrieval.store import embed_distinct

    texts = ["A short one.", "A much longer sentence that pads every other one in its batch.",
             "A short one."]
    emb = embed_distinct(texts, embedder)
    assert emb.shape == (3, embedder.dimension) and np.array_equal(emb[0], emb[2])


def test_sentence_chunks_with_overlap_keep_their_passage():
    text = "Dr. Ames met J. Smith in the U.S. Army. He left in 1990! \"Why?\" she asked. Then 5 more."
    p = [Passage("p1", text, "doc")]
    one = chunk_passages(p, 1, "sentences")
    assert [c.text for c in one] == ["Dr. Ames met J. Smith in the U.S. Army.", "He left in 1990!",
                                     "\"Why?\" she asked.", "Then 5 more."]
    assert [c.id for c in one] == ["p1#s0", "p1#s1", "p1#s2", "p1#s3"]
    assert all(c.passage_ids == ("p1",) and c.doc_id == "doc" for c in one)
    two = chunk_passages(p, 2, "sentences", overlap=1)
    assert [c.text for c in two] == [one[0].text + " " + one[1].text, one[1].text + " " + one[2].text,
                                     one[2].text + " " + one[3].text]
    assert chunking_key(2, "sentences", 1) not in (chunking_key(2, "sentences"), chunking_key(2))
    with pytest.raises(ValueError, match="overlap"):
        chunk_passages(p, 2, "sentences", overlap=2)
    with pytest.raises(ValueError, match="chunking: expected one of"):
        chunk_passages(p, 2, "paragraphs")


def test_token_chunks_cut_the_original_text(embedder):
    tok = embedder.model.tokenizer
    text = " ".join(f"Word{i} is here." for i in range(40))
    chunks = chunk_passages([Passage("p", text, "d")], 32, "tokens", overlap=8, tokenizer=tok)
    assert len(chunks) > 3 and all(c.text in text for c in chunks)
    assert all(len(tok(c.text, add_special_tokens=False)["input_ids"]) <= 32 for c in chunks)
    assert chunks[0].text.startswith("Word0") and text.endswith(chunks[-1].text)
    # neighbours share their overlap: the next chunk starts inside the previous one
    assert all(b.text[:6] in a.text for a, b in zip(chunks, chunks[1:]))


def test_passage_windows_with_overlap():
    ps = [Passage(f"a{i}", f"A {i}.", "a") for i in range(5)]
    chunks = chunk_passages(ps, 3, "passages", overlap=1)
    assert [c.passage_ids for c in chunks] == [("a0", "a1", "a2"), ("a2", "a3", "a4")]
