"""Vigie's command line, local orchestration, demo and benchmarks."""

__version__ = "0.1.0"
