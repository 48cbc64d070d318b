"""The benchmarks of scripts/benchmark.py, one module each."""
