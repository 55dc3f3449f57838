"""Benchmarks: each script prints its figures and one JSON line; `python -m benchmarks` runs all."""
