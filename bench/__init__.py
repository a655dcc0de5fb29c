"""Benchmarks, run by hand: ``python -m bench.NAME --help``. Results go to docs/benchmarks.md."""
