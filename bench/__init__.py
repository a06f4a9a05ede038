"""Throughput benchmarks of Tocsin's hot paths against baselines from the same run.

Run `python -m bench` (add `--quick` for a smoke run, `--skip-broker` to skip
the Kafka pipeline benchmark). docs/benchmarks.md records the results.
"""


class BenchmarkError(RuntimeError):
    """A benchmark could not complete its measurement."""
