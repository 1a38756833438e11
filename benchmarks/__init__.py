"""Reproducible benchmarks of the worker against a minimal floor and the naive loop (see BENCHMARKS.md)."""
