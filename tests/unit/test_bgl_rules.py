"""The shipped BGL example rules: validity, score on the Loghub sample, generality.

The sample tests read the Loghub BGL sample in place and skip when it is
missing. The other tests use messages written here, with values that differ
from the sample's.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.config import load_config
from schemas.patterns import PatternSet
from schemas.records import LogLine
from schemas.rules import PatternRule
from streams.detect.rules import match_line

REPO = Path(__file__).resolve().parents[2]
RULES_PATH = REPO / "tocsin" / "examples" / "bgl_rules.yaml"
SAMPLE_PATH = (
    REPO.parent / "shared" / "data" / "loghub" / "BGL" / "BGL_2k.log_structured.csv"
)
MIN_F1 = 0.9
AT = datetime(2006, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass(frozen=True)
class SampleLine:
    label: str
    line: LogLine

    @property
    def is_alert(self) -> bool:
        return self.label != "-"


def load_pattern_rules() -> list[PatternRule]:
    rules = load_config(RULES_PATH).rules.logs
    return [rule for rule in rules if isinstance(rule, PatternRule)]


RULES = load_pattern_rules()


def matching_rules(message: str, level: str = "fatal") -> list[str]:
    line = LogLine(at=AT, message=message, level=level)
    return [rule.name for rule in RULES if match_line(rule, line)]


@pytest.fixture(scope="module")
def sample() -> list[SampleLine]:
    if not SAMPLE_PATH.is_file():
        pytest.skip(
            f"Loghub BGL sample not found at {SAMPLE_PATH}; put the Loghub "
            "repository under <repo>/../shared/data/loghub to run this test"
        )
    with SAMPLE_PATH.open(newline="", encoding="utf-8") as handle:
        return [
            SampleLine(
                label=row["Label"],
                line=LogLine(
                    at=datetime.fromtimestamp(int(row["Timestamp"]), UTC),
                    message=row["Content"],
                    level=row["Level"].lower(),
                    fields={
                        "component": row["Component"],
                        "node": row["Node"],
                        "type": row["Type"],
                    },
                ),
            )
            for row in csv.DictReader(handle)
        ]


# Validity


def test_bgl_rules_file_validates() -> None:
    config = load_config(RULES_PATH)

    assert config.rules.logs, "the BGL example has no log rules"
    assert config.rules.metrics == []


def test_bgl_rules_are_all_pattern_rules() -> None:
    config = load_config(RULES_PATH)

    assert len(RULES) == len(config.rules.logs)


def test_bgl_rules_have_summaries() -> None:
    missing = [rule.name for rule in RULES if not rule.summary]

    assert missing == []


# Score on the sample


def test_bgl_rules_f1_on_sample(sample: list[SampleLine]) -> None:
    # Keys are (predicted alert, labelled alert).
    outcomes: Counter[tuple[bool, bool]] = Counter()
    for s in sample:
        predicted = any(match_line(rule, s.line) for rule in RULES)
        outcomes[predicted, s.is_alert] += 1
    true_positives = outcomes[True, True]
    false_positives = outcomes[True, False]
    false_negatives = outcomes[False, True]
    precision = true_positives / max(true_positives + false_positives, 1)
    recall = true_positives / max(true_positives + false_negatives, 1)
    f1 = 2 * precision * recall / (precision + recall) if true_positives else 0.0

    assert f1 >= MIN_F1, (
        f"F1 {f1:.3f} below {MIN_F1} (precision {precision:.3f}, recall {recall:.3f})"
    )


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_bgl_rule_matches_an_alert(rule: PatternRule, sample: list[SampleLine]) -> None:
    alert_matches = sum(s.is_alert and match_line(rule, s.line) for s in sample)

    assert alert_matches > 0, f"{rule.name} matches no labelled alert line"


# Generality


# A literal number of 10 or more digits would pin a rule to a Unix timestamp.
TIMESTAMP_LIKE = re.compile(r"\d{10,}")
# Escapes such as \d, classes such as [0-9a-f] and counted quantifiers such as
# {1,3} are not literals.
NOT_LITERAL = re.compile(r"\\.|\[(?:\\.|[^\]\\])*\]|\{\d+(?:,\d*)?\}")


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_bgl_rule_regex_has_no_timestamp(rule: PatternRule) -> None:
    assert rule.regex is not None
    literal = NOT_LITERAL.sub("", rule.regex)

    assert TIMESTAMP_LIKE.search(literal) is None


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_bgl_rule_regex_has_no_literal_number(rule: PatternRule) -> None:
    # Every LineId of the sample is a number, so no literal number may appear.
    assert rule.regex is not None
    literal = NOT_LITERAL.sub("", rule.regex)

    assert re.findall(r"\d+", literal) == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("data TLB error interrupt", "bgl_kernel_data_tlb_error"),
        ("data storage interrupt", "bgl_kernel_data_storage_interrupt"),
        ("rts panic! - stopping execution", "bgl_kernel_rts_panic"),
        ("rts: kernel terminated for reason 1002", "bgl_kernel_terminated"),
        (
            "rts: kernel terminated for reason 1002rts: bad message header: "
            "too many packets, type=7, cpu=3, index=12, total=40",
            "bgl_kernel_terminated",
        ),
        (
            "Error receiving packet on tree network, expecting type 12 instead "
            "of type 4 (softheader=0012ab34 0000ff01 00000001 00000000) "
            "PSR0=00000f01 PSR1=00000000 PRXF=00000001 PIXF=00000003",
            "bgl_tree_network_receive_error",
        ),
        ("Lustre mount FAILED : bglio42 : point /p/gb2", "bgl_lustre_mount_failed"),
        (
            "Lustre mount FAILED : bglio7 : block_id : location",
            "bgl_lustre_mount_failed",
        ),
        (
            "ciod: LOGIN chdir(/p/gb2/someone/run7) failed: Input/output error",
            "bgl_ciod_chdir_io_error",
        ),
        (
            "ciod: Error reading message prefix on CioStream socket to "
            "10.1.2.3:40001, Link has been severed",
            "bgl_ciod_stream_link_severed",
        ),
        (
            "ciod: Error reading message prefix after LOAD_MESSAGE on CioStream "
            "socket to 10.1.2.3:40001: Link has been severed",
            "bgl_ciod_stream_link_severed",
        ),
        (
            "ciod: Error reading message prefix on CioStream socket to "
            "10.1.2.3:40002, Connection reset by peer",
            "bgl_ciod_stream_connection_reset",
        ),
        (
            "ciod: Error reading message prefix on CioStream socket to "
            "10.1.2.3:40003, Connection timed out",
            "bgl_ciod_stream_timed_out",
        ),
        (
            "ciod: failed to read message prefix on control stream "
            "(CioStream socket to 10.1.2.3:40004",
            "bgl_ciod_control_stream_read_failed",
        ),
        (
            "ciod: Error creating node map from file /p/gb2/maps/1k.map: "
            "No child processes",
            "bgl_ciod_node_map_no_child_processes",
        ),
    ],
)
def test_bgl_rule_matches_new_values(message: str, expected: str) -> None:
    assert expected in {rule.name for rule in RULES}

    assert matching_rules(message) == [expected]


@pytest.mark.parametrize(
    "message",
    [
        "ciod: LOGIN chdir(/home/someone/missing) failed: No such file or directory",
        "ciod: Error creating node map from file /p/gb2/maps/1k.map: Permission denied",
        "ciod: Error loading /p/gb2/someone/a.out: invalid or missing program "
        "image, Exec format error",
        "data store interrupt caused by dcbf.........1",
        "rts: bad message header: expecting type 12 instead of type 4 "
        "(softheader=0012ab34 0000ff01 00000001 00000000) PSR0=00000f01 "
        "PSR1=00000000 PRXF=00000001 PIXF=00000003",
        "NFS Mount failed on bglio42, slept 15 seconds, retrying (1)",
        "instruction cache parity error corrected",
        "generating core.4021",
    ],
)
def test_bgl_rules_ignore_normal_message(message: str) -> None:
    assert matching_rules(message) == []


def test_pattern_set_agrees_with_each_rule(sample: list[SampleLine]) -> None:
    patterns = PatternSet(rule.regex for rule in RULES if rule.regex is not None)

    for item in sample:
        found = patterns.search(item.line.message)
        for rule in RULES:
            expected = match_line(rule, item.line)
            assert match_line(rule, item.line, found) is expected, rule.name
