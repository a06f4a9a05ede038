"""The NAB scorer, against NAB's published scores for its numenta detector."""

from __future__ import annotations

import csv
import json
import math
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

# bench/ is not an installed package, so import it from the repository root.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.nab import NAB_DIR  # noqa: E402
from bench.nab.scorer import (  # noqa: E402
    MAX_TP,
    CostMatrix,
    FileScore,
    detections_at,
    load_profiles,
    load_windows,
    normalised_score,
    parse_timestamp,
    probationary_length,
    scaled_sigmoid,
    score_corpus,
    score_file,
)

RAW_RESULTS = NAB_DIR / "results" / "numenta" / "realKnownCause"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
STANDARD = CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
T0 = datetime(2014, 1, 1)


def require_nab() -> None:
    if not RAW_RESULTS.is_dir():
        pytest.skip(
            f"NAB data not found at {NAB_DIR}; the golden test needs the NAB "
            "repository under <repo>/../shared/data/NAB"
        )


def raw_result_files() -> list[Path]:
    require_nab()
    return sorted(RAW_RESULTS.glob("numenta_*.csv"))


def published_rows(detector: str, profile: str) -> list[dict[str, str]]:
    path = NAB_DIR / "results" / detector / f"{detector}_{profile}_scores.csv"
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def published_file_rows(profile: str) -> dict[str, dict[str, str]]:
    return {row["File"]: row for row in published_rows("numenta", profile)}


def published_total(detector: str, profile: str) -> float:
    """Return the Totals row of a published scores file."""
    rows = published_rows(detector, profile)
    return next(float(row["Score"]) for row in rows if row["Detector"] == "Totals")


def corpus_name(path: Path) -> str:
    return f"realKnownCause/{path.name.removeprefix('numenta_')}"


def minutes(count: int) -> list[datetime]:
    return [T0 + timedelta(minutes=index) for index in range(count)]


# A 1,000-row file: rows 0-149 are probationary, one window spans rows 400-499.
ROWS = 1000
TIMES = minutes(ROWS)
WINDOW = [(TIMES[400], TIMES[499])]


def detect_at(*rows: int) -> list[bool]:
    detections = [False] * ROWS
    for row in rows:
        detections[row] = True
    return detections


def score(*rows: int) -> FileScore:
    return score_file(TIMES, detect_at(*rows), WINDOW, STANDARD)


def test_scaled_sigmoid_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(2.999) > -1.0
    assert scaled_sigmoid(3.0) == -1.0


def test_probationary_length_caps_at_750() -> None:
    assert probationary_length(1882) == 282
    assert probationary_length(5000) == 750
    assert probationary_length(18050) == 750


def test_null_detector_costs_fn_weight() -> None:
    result = score()

    assert result.score == -STANDARD.fn_weight
    assert result.fn == 100
    assert result.tn == ROWS - 150 - 100


def test_first_window_row_earns_tp_weight() -> None:
    assert score(400).score == pytest.approx(STANDARD.tp_weight)


def test_earliest_detection_in_window_counts() -> None:
    early = score(420)
    both = score(420, 480)

    assert both.score == early.score
    assert both.tp == 2
    assert early.score > score(480).score > 0


def test_last_window_row_earns_little() -> None:
    expected = scaled_sigmoid(-1 / 100) / MAX_TP

    assert score(499).score == pytest.approx(expected)


def test_false_positive_before_windows_costs_fp_weight() -> None:
    assert score(300).score == pytest.approx(-STANDARD.fn_weight - STANDARD.fp_weight)


def test_false_positive_after_window_follows_sigmoid() -> None:
    just_after = score(500)
    far_after = score(499 + 3 * 99)

    assert just_after.score == pytest.approx(
        -STANDARD.fn_weight + STANDARD.fp_weight * scaled_sigmoid(1 / 99)
    )
    assert far_after.score == pytest.approx(-STANDARD.fn_weight - STANDARD.fp_weight)
    assert just_after.fp == 1


def test_probationary_detections_are_ignored() -> None:
    assert score(10, 149).score == -STANDARD.fn_weight


def test_window_limit_not_in_file_is_rejected() -> None:
    windows = [(T0 - timedelta(days=1), TIMES[10])]

    with pytest.raises(ValueError, match="not a timestamp of the file"):
        score_file(TIMES, detect_at(), windows, STANDARD)


def test_corpus_normalisation_null_and_perfect() -> None:
    windows = {"a.csv": WINDOW, "b.csv": WINDOW}
    null = {name: (TIMES, detect_at()) for name in windows}
    perfect = {name: (TIMES, detect_at(400)) for name in windows}

    assert score_corpus(null, windows, STANDARD).normalised == 0.0
    assert score_corpus(perfect, windows, STANDARD).normalised == pytest.approx(100)


def test_normalisation_matches_published_scoreboard() -> None:
    require_nab()
    board = json.loads((NAB_DIR / "results" / "final_results.json").read_text())
    profiles = load_profiles(NAB_DIR / "config" / "profiles.json")
    for profile in PROFILES:
        # The Totals rows cover NAB's full corpus of 116 windows, not this copy.
        numenta_total = published_total("numenta", profile)
        null_total = published_total("null", profile)
        perfect = 116 * profiles[profile].tp_weight

        assert null_total == -116 * profiles[profile].fn_weight
        assert normalised_score(numenta_total, null_total, perfect) == pytest.approx(
            board["numenta"][profile], abs=1e-6
        )


@pytest.mark.parametrize("profile", PROFILES)
def test_numenta_golden_scores(profile: str) -> None:
    files = raw_result_files()
    windows = load_windows(NAB_DIR / "labels" / "combined_windows.json")
    cost = load_profiles(NAB_DIR / "config" / "profiles.json")[profile]
    thresholds = json.loads((NAB_DIR / "config" / "thresholds.json").read_text())
    threshold = thresholds["numenta"][profile]["threshold"]
    published = published_file_rows(profile)

    assert len(files) == 5
    for path in files:
        name = corpus_name(path)
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        timestamps = [parse_timestamp(row["timestamp"]) for row in rows]
        anomaly_scores = [float(row["anomaly_score"]) for row in rows]
        detections = detections_at(anomaly_scores, threshold)

        result = score_file(timestamps, detections, windows[name], cost)

        expected = published[name]
        assert abs(result.score - float(expected["Score"])) < 0.01, name
        assert result.tp == int(expected["TP"]), name
        assert result.tn == int(expected["TN"]), name
        assert result.fp == int(expected["FP"]), name
        assert result.fn == int(expected["FN"]), name
        assert result.total == int(expected["Total_Count"]) - probationary_length(
            len(rows)
        ), name
        worst_row = max(
            abs(ours - float(row[f"S(t)_{profile}"]))
            for ours, row in zip(result.row_scores, rows, strict=True)
        )
        assert worst_row < 1e-9, name
        assert math.isclose(sum(result.row_scores), result.score), name
