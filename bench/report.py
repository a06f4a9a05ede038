"""Benchmark results and the table that prints them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rate:
    """A measured throughput: items processed per second of wall time."""

    records_per_s: float | None
    samples_per_s: float


@dataclass(frozen=True)
class Row:
    """One benchmark case, its baseline from the same run, and the ratio of the two.

    `ratio` is measured samples/s divided by baseline samples/s, so a value
    below 1 means the measured code is slower than the baseline.
    """

    benchmark: str
    case: str
    measured: Rate
    baseline_name: str
    baseline: Rate

    @property
    def ratio(self) -> float:
        return self.measured.samples_per_s / self.baseline.samples_per_s


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


HEADERS = (
    "benchmark",
    "case",
    "records/s",
    "samples/s",
    "baseline",
    "baseline records/s",
    "baseline samples/s",
    "ratio",
)


def format_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}"


def format_table(rows: list[Row]) -> str:
    """Format rows as a Markdown table with right-aligned numbers."""
    cells = [
        [
            row.benchmark,
            row.case,
            format_rate(row.measured.records_per_s),
            format_rate(row.measured.samples_per_s),
            row.baseline_name,
            format_rate(row.baseline.records_per_s),
            format_rate(row.baseline.samples_per_s),
            f"{row.ratio:.3f}",
        ]
        for row in rows
    ]
    widths = [
        max(len(HEADERS[i]), *(len(line[i]) for line in cells)) if cells else len(h)
        for i, h in enumerate(HEADERS)
    ]
    numeric = {2, 3, 5, 6, 7}

    def format_line(values: list[str] | tuple[str, ...]) -> str:
        padded = [
            v.rjust(widths[i]) if i in numeric else v.ljust(widths[i])
            for i, v in enumerate(values)
        ]
        return "| " + " | ".join(padded) + " |"

    separator = [
        "-" * (w - 1) + ":" if i in numeric else "-" * w for i, w in enumerate(widths)
    ]
    lines = [format_line(HEADERS), format_line(separator)]
    lines.extend(format_line(line) for line in cells)
    return "\n".join(lines)
