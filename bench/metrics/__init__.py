"""Metrics: pure functions from (prediction, gold) to a score."""
