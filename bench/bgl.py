"""Score the example BGL log rules against the labelled Loghub BGL sample.

Run `python -m bench.bgl`. Every line of the sample goes through
streams.detect.rules.match_line with each rule of tocsin/examples/bgl_rules.yaml.
A line is a predicted alert when any rule matches it, and an actual alert when
its Label column is not `-`. The Loghub data is read in place at run time and
never copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from schemas.config import ConfigError, load_config
from schemas.records import LogLine
from schemas.rules import PatternRule
from streams.detect.rules import match_line

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data"
BGL_SAMPLE = DATA_DIR / "loghub" / "BGL" / "BGL_2k.log_structured.csv"
BGL_RULES = REPO / "tocsin" / "examples" / "bgl_rules.yaml"

# The Label value of a line that carries no alert category.
NORMAL_LABEL = "-"


class SampleNotFoundError(FileNotFoundError):
    """The structured BGL sample is missing."""


@dataclass(frozen=True)
class LabelledLine:
    """One sample line as a LogLine, with its alert category and template.

    `label` is the alert category, or `-` for a normal line. `event_id` names
    the line's message template and is used only to group false positives in
    the report, never for matching.
    """

    line_id: str
    label: str
    event_id: str
    line: LogLine

    @property
    def is_alert(self) -> bool:
        return self.label != NORMAL_LABEL


@dataclass
class RuleScore:
    name: str
    severity: str
    matches: int = 0
    true_positives: int = 0


@dataclass
class Score:
    """The confusion counts of a rule set on the sample, overall and per rule."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    true_negatives: int = 0
    rules: list[RuleScore] = field(default_factory=list)
    alerts_by_category: Counter[str] = field(default_factory=Counter)
    missed_by_category: Counter[str] = field(default_factory=Counter)
    false_positives_by_event: Counter[str] = field(default_factory=Counter)

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 0.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def event_time(row: dict[str, str]) -> datetime:
    """Return a row's event time from its Unix seconds and microseconds.

    Timestamp is Unix seconds. Time is local wall-clock time (UTC-7 in the
    sample), so only its microsecond fraction is used.
    """
    at = datetime.fromtimestamp(int(row["Timestamp"]), UTC)
    fraction = row["Time"].rpartition(".")[2]
    if len(fraction) == 6 and fraction.isdigit():
        at = at.replace(microsecond=int(fraction))
    return at


def to_labelled_line(row: dict[str, str]) -> LabelledLine:
    line = LogLine(
        at=event_time(row),
        message=row["Content"],
        level=row["Level"].lower(),
        fields={
            "component": row["Component"],
            "node": row["Node"],
            "type": row["Type"],
        },
    )
    return LabelledLine(
        line_id=row["LineId"], label=row["Label"], event_id=row["EventId"], line=line
    )


def read_sample(path: Path = BGL_SAMPLE) -> list[LabelledLine]:
    """Read the structured BGL CSV at `path`, raising SampleNotFoundError if missing."""
    if not path.is_file():
        raise SampleNotFoundError(
            f"BGL sample not found at {path}; expected the Loghub repository "
            "under <repo>/../shared/data/loghub"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        return [to_labelled_line(row) for row in csv.DictReader(handle)]


class UnsupportedRuleError(ValueError):
    """The configuration has a log rule that cannot be scored line by line."""


def load_rules(path: Path = BGL_RULES) -> list[PatternRule]:
    """Read the pattern rules of the configuration file at `path`.

    Raises UnsupportedRuleError on any other log rule type, because those fire
    on counts or state over many lines, and this benchmark scores each line
    on its own.
    """
    rules = load_config(path).rules.logs
    pattern_rules = [rule for rule in rules if isinstance(rule, PatternRule)]
    others = [rule.name for rule in rules if not isinstance(rule, PatternRule)]
    if others:
        raise UnsupportedRuleError(
            f"{path}: log rules {others} are not pattern rules; "
            "this benchmark scores only pattern rules, so remove the others"
        )
    return pattern_rules


def score_rules(rules: Sequence[PatternRule], sample: Sequence[LabelledLine]) -> Score:
    """Apply every rule to every line and count hits against the labels."""
    score = Score(rules=[RuleScore(rule.name, rule.severity.value) for rule in rules])
    for labelled in sample:
        predicted = False
        for rule, rule_score in zip(rules, score.rules, strict=True):
            if not match_line(rule, labelled.line):
                continue
            predicted = True
            rule_score.matches += 1
            if labelled.is_alert:
                rule_score.true_positives += 1

        if labelled.is_alert:
            score.alerts_by_category[labelled.label] += 1
        if predicted and labelled.is_alert:
            score.true_positives += 1
        elif predicted:
            score.false_positives += 1
            score.false_positives_by_event[labelled.event_id] += 1
        elif labelled.is_alert:
            score.false_negatives += 1
            score.missed_by_category[labelled.label] += 1
        else:
            score.true_negatives += 1
    return score


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Format rows as a Markdown table, right-aligning every column after the first."""
    widths = [
        max(len(header), *(len(row[i]) for row in rows)) if rows else len(header)
        for i, header in enumerate(headers)
    ]

    def format_line(values: Sequence[str]) -> str:
        padded = [
            value.ljust(widths[i]) if i == 0 else value.rjust(widths[i])
            for i, value in enumerate(values)
        ]
        return "| " + " | ".join(padded) + " |"

    separator = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
    lines = [format_line(headers), format_line(separator)]
    lines.extend(format_line(row) for row in rows)
    return "\n".join(lines)


def format_report(score: Score, sample_size: int) -> str:
    alerts = score.true_positives + score.false_negatives
    lines = [
        f"lines: {sample_size}, alert lines: {alerts}, rules: {len(score.rules)}",
        f"true positives: {score.true_positives}, "
        f"false positives: {score.false_positives}, "
        f"false negatives: {score.false_negatives}, "
        f"true negatives: {score.true_negatives}",
        f"precision: {score.precision:.4f}",
        f"recall:    {score.recall:.4f}",
        f"F1:        {score.f1:.4f}",
        "",
        format_table(
            ("rule", "severity", "matches", "true positives"),
            [
                (r.name, r.severity, str(r.matches), str(r.true_positives))
                for r in score.rules
            ],
        ),
        "",
        format_table(
            ("alert category", "alert lines", "missed"),
            [
                (category, str(count), str(score.missed_by_category[category]))
                for category, count in sorted(score.alerts_by_category.items())
            ],
        ),
        "",
    ]
    missed = ", ".join(
        f"{category} ({count})"
        for category, count in sorted(score.missed_by_category.items())
    )
    lines.append(f"missed alert categories: {missed or 'none'}")
    false_alarms = ", ".join(
        f"{event_id} ({count})"
        for event_id, count in score.false_positives_by_event.most_common()
    )
    lines.append(f"false positives by template: {false_alarms or 'none'}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bgl",
        description="Score log rules against the labelled Loghub BGL sample: "
        "precision, recall and F1 of 'any rule matches' against 'Label is not -'.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=BGL_SAMPLE,
        help=f"structured BGL CSV to read (default {BGL_SAMPLE})",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        default=BGL_RULES,
        help="Tocsin configuration file whose log rules to score "
        f"(default {BGL_RULES})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rules = load_rules(args.rules)
        sample = read_sample(args.data)
    except (ConfigError, SampleNotFoundError, UnsupportedRuleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    score = score_rules(rules, sample)
    print(f"rules: {args.rules}")
    print(f"data: {args.data}")
    print(format_report(score, len(sample)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
