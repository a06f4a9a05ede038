"""Score Tocsin's streaming anomaly detector on NAB beside NAB's scoreboard.

Run `python -m bench.nab.offline` from the repository root. It feeds every
series of the NAB copy under <repo>/../shared/data/NAB through one
`AnomalyDetector` each, turns scores at or above one threshold into
detections, and scores them on the three NAB profiles.

This NAB copy contains 49 of NAB's 58 series, so the table also rescores the
published detectors on the same 49 files, from the per-file scores NAB ships
in results/<detector>/<detector>_<profile>_scores.csv. Their raw anomaly
scores are not in this copy (only numenta's for realKnownCause are), so those
rows use NAB's own per-file scores at NAB's per-profile thresholds.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.nab import NAB_DIR
from bench.nab.scorer import (
    CorpusScore,
    CostMatrix,
    Window,
    detections_at,
    load_profiles,
    load_windows,
    parse_timestamp,
    score_corpus,
)
from streams.detect.anomaly import ALERT_SCORE, AnomalyDetector

PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
OURS = "tocsin"


@dataclass(frozen=True)
class Series:
    """One NAB data file: its name relative to data/, timestamps and values."""

    name: str
    timestamps: list[datetime]
    values: list[float]


@dataclass(frozen=True)
class Row:
    """One line of the results table: normalised scores per profile."""

    detector: str
    scores: dict[str, float]
    note: str = ""


def load_series(nab_dir: Path, name: str) -> Series:
    """Read one `timestamp,value` file of the NAB corpus."""
    timestamps = []
    values = []
    with (nab_dir / "data" / name).open(newline="") as handle:
        for row in csv.DictReader(handle):
            timestamps.append(parse_timestamp(row["timestamp"]))
            values.append(float(row["value"]))
    return Series(name=name, timestamps=timestamps, values=values)


def detector_scores(series: Series) -> list[float]:
    """Feed a series through a new detector and return its score per sample."""
    detector = AnomalyDetector()
    return [
        detector.update(timestamp.replace(tzinfo=UTC).timestamp(), value)
        for timestamp, value in zip(series.timestamps, series.values, strict=True)
    ]


def run_detector(all_series: Sequence[Series], jobs: int) -> dict[str, list[float]]:
    """Score every series, in `jobs` worker processes when `jobs` > 1."""
    if jobs <= 1:
        return {series.name: detector_scores(series) for series in all_series}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = pool.map(detector_scores, all_series, chunksize=1)
        return {
            series.name: scores
            for series, scores in zip(all_series, results, strict=True)
        }


def score_ours(
    all_series: Sequence[Series],
    scores: dict[str, list[float]],
    windows: dict[str, list[Window]],
    profiles: dict[str, CostMatrix],
    threshold: float,
) -> dict[str, CorpusScore]:
    files = {
        series.name: (series.timestamps, detections_at(scores[series.name], threshold))
        for series in all_series
    }
    return {
        profile: score_corpus(files, windows, profiles[profile])
        for profile in PROFILE_NAMES
    }


def published_file_scores(
    nab_dir: Path, detector: str, profile: str
) -> dict[str, float]:
    """Read a published per-file scores CSV: file name -> raw score."""
    path = nab_dir / "results" / detector / f"{detector}_{profile}_scores.csv"
    with path.open(newline="") as handle:
        return {
            row["File"]: float(row["Score"])
            for row in csv.DictReader(handle)
            if row["File"]
        }


def published_rows(
    nab_dir: Path, names: Sequence[str], ours: dict[str, CorpusScore]
) -> list[Row]:
    """Normalise each published detector's raw total on the files in `names`.

    The null and perfect totals are those of the same files, taken from
    `ours`. A detector whose scores file lacks some of the files is marked.
    """
    rows = []
    for folder in sorted((nab_dir / "results").iterdir()):
        detector = folder.name
        if not (folder / f"{detector}_standard_scores.csv").is_file():
            continue
        scores = {}
        missing = 0
        for profile in PROFILE_NAMES:
            per_file = published_file_scores(nab_dir, detector, profile)
            present = [name for name in names if name in per_file]
            missing = len(names) - len(present)
            raw = sum(per_file[name] for name in present)
            reference = ours[profile]
            scores[profile] = CorpusScore(
                raw=raw, null=reference.null, perfect=reference.perfect
            ).normalised
        note = f"only {len(names) - missing} of {len(names)} files" if missing else ""
        rows.append(Row(detector=detector, scores=scores, note=note))
    return rows


def format_table(
    title: str, rows: Sequence[Row], full_corpus: dict[str, dict[str, float]]
) -> str:
    header = ["detector", *PROFILE_NAMES, "| 58 files: standard", "note"]
    lines = [title, "", "  ".join(f"{cell:>18}" for cell in header)]
    for row in sorted(rows, key=lambda row: -row.scores["standard"]):
        published = full_corpus.get(row.detector, {}).get("standard")
        cells = [
            row.detector,
            *(f"{row.scores[profile]:.1f}" for profile in PROFILE_NAMES),
            "-" if published is None else f"{published:.1f}",
            row.note,
        ]
        lines.append("  ".join(f"{cell:>18}" for cell in cells))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nab-dir",
        type=Path,
        default=NAB_DIR,
        help="NAB repository folder (default: <repo>/../shared/data/NAB)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=ALERT_SCORE,
        help=f"detector score at or above which a sample is a detection "
        f"(default: {ALERT_SCORE}, the detector's alert score)",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="worker processes (default: 2)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    nab_dir: Path = args.nab_dir
    labels = nab_dir / "labels" / "combined_windows.json"
    if not labels.is_file():
        print(
            f"NAB data not found: {labels} is missing; pass --nab-dir or put the "
            "NAB repository under <repo>/../shared/data/NAB",
            file=sys.stderr,
        )
        return 1

    windows = load_windows(labels)
    profiles = load_profiles(nab_dir / "config" / "profiles.json")
    names = sorted(windows)
    started = time.perf_counter()
    all_series = [load_series(nab_dir, name) for name in names]
    scores = run_detector(all_series, args.jobs)
    elapsed = time.perf_counter() - started
    ours = score_ours(all_series, scores, windows, profiles, args.threshold)

    rows = [
        Row(
            detector=OURS,
            scores={profile: ours[profile].normalised for profile in PROFILE_NAMES},
            note=f"threshold {args.threshold}",
        ),
        *published_rows(nab_dir, names, ours),
    ]
    full_corpus = json.loads((nab_dir / "results" / "final_results.json").read_text())
    samples = sum(len(series.values) for series in all_series)
    print(
        format_table(
            f"NAB scores on this copy ({len(names)} files, "
            f"{sum(len(windows[name]) for name in names)} windows); the last "
            "column is NAB's published standard score on all 58 files",
            rows,
            full_corpus,
        )
    )
    print(
        f"\n{OURS}: {samples} samples in {elapsed:.1f} s with {args.jobs} "
        "worker processes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
