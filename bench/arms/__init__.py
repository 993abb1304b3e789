"""The arms: one small module each, registered by kind. Importing the package registers them."""

from bench.arms import closed_book, hybrid, lora, rag  # noqa: F401  (registration side effect)
