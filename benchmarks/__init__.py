"""Benchmark harnesses: `python -m benchmarks.NAME --help`. Each prints a table and writes JSON."""
