"""Data: the schema every arm reads, loaders with validation, and the synthetic world generator."""
