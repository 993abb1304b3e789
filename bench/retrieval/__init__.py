"""Dense retrieval for the RAG arms: embed (MiniLM), chunk passages, index in chroma."""

from bench.retrieval.chunking import Chunk, chunk_passages, chunking_key
from bench.retrieval.embedder import Embedder
from bench.retrieval.store import Hit, QueryTiming, VectorStore, recall_at_k

__all__ = ["Chunk", "chunk_passages", "chunking_key", "Embedder", "Hit", "QueryTiming",
           "VectorStore", "recall_at_k"]
