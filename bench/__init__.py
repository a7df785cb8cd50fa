"""Benchmarks for OneRing (run with ``python bench/pipeline.py``)."""
