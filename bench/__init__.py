"""Benchmarks (not part of the installed package): `python bench/engine.py --help`."""
