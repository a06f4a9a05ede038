"""Benchmark inputs built from the NAB nyc_taxi series."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from schemas.records import MetricBatch, MetricSample
from tocsin.replay import read_samples

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data"
NYC_TAXI = DATA_DIR / "NAB" / "data" / "realKnownCause" / "nyc_taxi.csv"

# Labels a worker's threshold rule matches on.
LABELS = {"service": "nyc-taxi", "metric": "passenger_count"}


class DataNotFoundError(FileNotFoundError):
    """The NAB series the benchmarks read is missing."""


def load_series(path: Path = NYC_TAXI) -> list[MetricSample]:
    """Read the NAB series at `path`, raising DataNotFoundError if it is missing."""
    if not path.is_file():
        raise DataNotFoundError(
            f"NAB series not found at {path}. The benchmarks read the NAB "
            "repository from <repo>/../shared/data/NAB."
        )
    return list(read_samples(path))


def extended_samples(
    series: list[MetricSample], start: int, count: int
) -> list[MetricSample]:
    """Return samples `start` to `start + count` of the series repeated end to end.

    Each repetition is shifted by the span of the series plus one sample
    interval, so event times keep increasing and a rule applies every sample.
    """
    interval = series[1].at - series[0].at
    period = series[-1].at - series[0].at + interval
    samples = []
    for index in range(start, start + count):
        cycle, position = divmod(index, len(series))
        base = series[position]
        samples.append(MetricSample(at=base.at + cycle * period, value=base.value))
    return samples


def series_labels(series_name: str) -> dict[str, str]:
    return {**LABELS, "series": series_name}


def metric_batches(
    series: list[MetricSample], names: list[str], batch_count: int, batch_size: int
) -> Iterator[tuple[str, MetricBatch]]:
    """Yield `batch_count` (series name, batch) pairs, round robin over `names`.

    Every series carries the same values. Within a series, event times increase
    from one batch to the next.
    """
    for index in range(batch_count):
        position, name_index = divmod(index, len(names))
        name = names[name_index]
        samples = extended_samples(series, position * batch_size, batch_size)
        yield (
            name,
            MetricBatch(series=name, labels=series_labels(name), samples=samples),
        )
