"""Benchmark harness: errorproxy against nginx on the same upstream, run by `python bench/run.py`."""
