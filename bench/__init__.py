"""Benchmarks and tuning scripts, each run from the repository root as ``python -m bench.<name>``
(bench/README.md); results in bench/results/."""
