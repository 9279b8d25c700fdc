"""Benchmarks: ``vigie bench <name> --json``. One module per benchmark.

Each module exposes ``run(**options) -> dict`` returning the figures; figures
are reported as ratios against a baseline measured in the same run.
"""
