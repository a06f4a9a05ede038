"""Score detections with the rules of the Numenta Anomaly Benchmark (NAB) v1.1.

Each labelled anomaly sits in the centre of an anomaly window (listed in NAB's
labels/combined_windows.json), and a file is scored from its detections:

- The first `min(floor(0.15 * rows), 750)` rows are a probationary period for
  the detector to learn in, and are not scored.
- The first detection in a window earns `tpWeight * S(y) / S(-1)`, where
  `S(y) = 2 / (1 + e^(5y)) - 1` and `y = -(right - i + 1) / width` is the row's
  position relative to the window's right edge. A detection on the window's
  first row so earns exactly `tpWeight`, and later ones earn less. Further
  detections in the same window neither earn nor cost anything.
- A window without a detection costs `fnWeight`.
- A detection outside every window costs `fpWeight * S(y)`, with
  `y = (i - right) / (width - 1)` measured from the preceding window, so it is
  cheap just after a window and costs `fpWeight` in full from `y >= 3` on or
  before the first window.

Over a set of files, the raw total is normalised as
`100 * (raw - null) / (perfect - null)`: the null detector, which never detects,
scores 0 and a detector that hits the first row of every window scores 100.
tests/unit/test_nab_scorer.py checks these rules against the per-file scores
NAB publishes for its numenta detector.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path

PROBATIONARY_FRACTION = 0.15
MAX_PROBATIONARY_ROWS = 750
# A false positive this far past a window, in units of (window width - 1) rows,
# costs the full fpWeight.
FAR_PAST_WINDOW = 3.0

Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class CostMatrix:
    """The weights of one NAB profile (config/profiles.json)."""

    tp_weight: float
    fp_weight: float
    fn_weight: float


@dataclass
class FileScore:
    """The NAB score of one file's detections and its confusion counts.

    Counts are of scored rows: `tp` is detections inside a window, `fn` rows
    inside a window without a detection, `fp` detections outside every window
    and `tn` the remaining rows. `row_scores` lays the score out per row as the
    S(t) columns of NAB's results files do: each window's earning or cost on
    its first scored row and each false positive's cost on its own row.
    """

    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    row_scores: list[float] = field(repr=False)

    @property
    def total(self) -> int:
        return self.tp + self.tn + self.fp + self.fn


@dataclass(frozen=True)
class CorpusScore:
    """Raw and normalised NAB scores of one detector on a set of files."""

    raw: float
    null: float
    perfect: float

    @property
    def normalised(self) -> float:
        return normalised_score(self.raw, self.null, self.perfect)


def parse_timestamp(text: str) -> datetime:
    """Parse a NAB timestamp such as `2014-07-01 00:30:00` or `... 00:30:00.000000`."""
    return datetime.fromisoformat(text.strip())


def load_profiles(path: Path) -> dict[str, CostMatrix]:
    """Read NAB's profiles.json into a cost matrix per profile name."""
    profiles = json.loads(path.read_text())
    return {
        name: CostMatrix(
            tp_weight=float(body["CostMatrix"]["tpWeight"]),
            fp_weight=float(body["CostMatrix"]["fpWeight"]),
            fn_weight=float(body["CostMatrix"]["fnWeight"]),
        )
        for name, body in profiles.items()
    }


def load_windows(path: Path) -> dict[str, list[Window]]:
    """Read NAB's combined_windows.json: file path -> (start, end) per window."""
    windows = json.loads(path.read_text())
    return {
        name: [(parse_timestamp(start), parse_timestamp(end)) for start, end in limits]
        for name, limits in windows.items()
    }


def scaled_sigmoid(position: float) -> float:
    """Return NAB's `2 / (1 + e^(5y)) - 1`, which is -1 from `y >= 3` on."""
    if position >= FAR_PAST_WINDOW:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


# The sigmoid at a window's first row (y = -1). True positives are divided by it.
MAX_TP = scaled_sigmoid(-1.0)


def probationary_length(rows: int) -> int:
    """Return how many leading rows of a file of `rows` rows NAB does not score."""
    return min(math.floor(PROBATIONARY_FRACTION * rows), MAX_PROBATIONARY_ROWS)


def detections_at(anomaly_scores: Sequence[float], threshold: float) -> list[bool]:
    """Return which rows are detections: those scoring at or above `threshold`."""
    return [score >= threshold for score in anomaly_scores]


def window_spans(
    timestamps: Sequence[datetime], windows: Sequence[Window]
) -> list[tuple[int, int]]:
    """Return the first and last row index of each window.

    Raises ValueError if a window limit is not one of the timestamps, or if
    the windows overlap or are out of order, because NAB's scoring assumes
    neither happens.
    """
    index_of = {timestamp: index for index, timestamp in enumerate(timestamps)}
    spans = []
    for start, end in windows:
        for limit in (start, end):
            if limit not in index_of:
                raise ValueError(
                    f"anomaly window limit {limit} is not a timestamp of the file; "
                    "check that the windows belong to this file"
                )
        spans.append((index_of[start], index_of[end]))
    for left, right in spans:
        if left > right:
            raise ValueError(
                f"anomaly window at rows {left}-{right} ends before it starts"
            )
    for (_, right), (next_left, _) in pairwise(spans):
        if right >= next_left:
            raise ValueError(
                f"anomaly windows ending at row {right} and starting at row "
                f"{next_left} overlap or are out of order"
            )
    return spans


def false_positive_cost(
    row: int, previous_span: tuple[int, int] | None, cost: CostMatrix
) -> float:
    """Return the (negative) score of a detection at `row` outside every window."""
    if previous_span is None:
        return cost.fp_weight * scaled_sigmoid(FAR_PAST_WINDOW)
    left, right = previous_span
    # NAB divides by (width - 1) and so raises ZeroDivisionError after a one-row
    # window. NOTE: the denominator of 1 for that case is this module's choice.
    denominator = max(right - left, 1)
    return cost.fp_weight * scaled_sigmoid((row - right) / denominator)


@dataclass
class _WindowResult:
    """The scoring of one window: its first scored row and first detection."""

    first_scored_row: int
    first_detection: int | None = None


def score_file(
    timestamps: Sequence[datetime],
    detections: Sequence[bool],
    windows: Sequence[Window],
    cost: CostMatrix,
) -> FileScore:
    """Score one file's detections (one flag per row) against its anomaly windows.

    A window with no row after the probationary period is neither earned nor
    missed, as in NAB.
    """
    if len(timestamps) != len(detections):
        raise ValueError(
            f"{len(timestamps)} timestamps but {len(detections)} detections; "
            "pass one detection flag per row"
        )
    rows = len(timestamps)
    spans = window_spans(timestamps, windows)
    first_scored = probationary_length(rows)
    row_scores = [0.0] * rows
    tp = tn = fp = fn = 0
    results: dict[int, _WindowResult] = {}

    span_index = 0
    previous_span: tuple[int, int] | None = None
    for row in range(first_scored, rows):
        while span_index < len(spans) and spans[span_index][1] < row:
            previous_span = spans[span_index]
            span_index += 1
        in_window = span_index < len(spans) and spans[span_index][0] <= row
        detected = detections[row]
        if in_window:
            result = results.setdefault(span_index, _WindowResult(row))
            if detected:
                tp += 1
                if result.first_detection is None:
                    result.first_detection = row
            else:
                fn += 1
        elif detected:
            fp += 1
            row_scores[row] = false_positive_cost(row, previous_span, cost)
        else:
            tn += 1

    for span_index, result in results.items():
        row_scores[result.first_scored_row] = window_score(
            spans[span_index], result.first_detection, cost
        )
    return FileScore(
        score=math.fsum(row_scores), tp=tp, tn=tn, fp=fp, fn=fn, row_scores=row_scores
    )


def window_score(
    span: tuple[int, int], first_detection: int | None, cost: CostMatrix
) -> float:
    """Return what a window earns for its first detection, or costs if it has none."""
    if first_detection is None:
        return -cost.fn_weight
    left, right = span
    position = -(right - first_detection + 1) / (right - left + 1)
    return cost.tp_weight * scaled_sigmoid(position) / MAX_TP


def null_detections(rows: int) -> list[bool]:
    """Return the detections of NAB's null detector, which never detects."""
    return [False] * rows


def normalised_score(raw: float, null: float, perfect: float) -> float:
    """Scale a raw total so that the null detector scores 0 and a perfect one 100."""
    if perfect == null:
        raise ValueError(
            f"perfect and null totals are both {perfect}, so the score cannot be "
            "normalised; score a set of files with at least one anomaly window"
        )
    return 100.0 * (raw - null) / (perfect - null)


def score_corpus(
    files: Mapping[str, tuple[Sequence[datetime], Sequence[bool]]],
    windows: Mapping[str, Sequence[Window]],
    cost: CostMatrix,
) -> CorpusScore:
    """Score a detector on a set of files: file name -> (timestamps, detections).

    The null total is the null detector's score on the same files, and the
    perfect total is `tpWeight` times their number of windows, as in NAB.
    Raises KeyError if a file has no entry in `windows`.
    """
    raw = null = 0.0
    window_count = 0
    for name, (timestamps, detections) in files.items():
        if name not in windows:
            raise KeyError(f"no anomaly windows listed for {name}")
        file_windows = windows[name]
        raw += score_file(timestamps, detections, file_windows, cost).score
        null += score_file(
            timestamps, null_detections(len(timestamps)), file_windows, cost
        ).score
        window_count += len(file_windows)
    return CorpusScore(raw=raw, null=null, perfect=cost.tp_weight * window_count)
