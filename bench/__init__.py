"""RAG vs LoRA vs hybrid bench: the same QA task through several ways of giving an LLM knowledge."""

__version__ = "0.1.0"
