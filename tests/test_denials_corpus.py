"""The parser against the labelled corpus of real denial messages (fixtures/corpus).

Every record must parse to exactly its ``expected`` list (action compared case-insensitively,
principal, resource and reason exactly, as many denials as labelled), and every negative
record to nothing. Records the parser still misses are listed in ``KNOWN_MISSES`` with the
reason, as strict xfails: one that starts passing must be taken off the list.

The corpus is project data (``fixtures/corpus``); ``DISCOVER_CORPUS`` names
another folder. A missing corpus fails the run: skipping would hide that nothing was checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from discover import iamdb
from discover.denials import Denial, Reason, ResourceKind, iter_denials, parse_denials

CORPUS_FILE = "denials-dev.jsonl"
RECORD_FIELDS = {
    "id": str,
    "source": str,
    "tool": str,
    "text": str,
    "expected": list,
    "negative": bool,
}
EXPECTED_FIELDS = {"principal", "action", "resource", "reason"}
OPTIONAL_EXPECTED_FIELDS = {"resource_kind"}
TOOLS = {"serverless", "cdk", "sam", "terraform", "awscli", "boto3", "cloudformation", "other"}
MIN_EXACT_RATE = 0.98

# id -> why the parser does not read it as labelled yet.
KNOWN_MISSES: dict[str, str] = {}

Row = tuple[str | None, str | None, str | None, str]


def corpus_dir() -> Path:
    override = os.environ.get("DISCOVER_CORPUS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "fixtures" / "corpus"


def load_records() -> list[dict[str, Any]]:
    path = corpus_dir() / CORPUS_FILE
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


RECORDS = load_records()


def as_rows(denials: tuple[Denial, ...] | list[Denial]) -> list[Row]:
    return sorted(
        (d.principal, d.action.lower() if d.action else None, d.resource, d.reason.value)
        for d in denials
    )


def expected_rows(record: dict[str, Any]) -> list[Row]:
    return sorted(
        (e["principal"], e["action"].lower() if e["action"] else None, e["resource"], e["reason"])
        for e in record["expected"]
    )


def record_params() -> list[Any]:
    if not RECORDS:
        # Fail each parametrised test too, rather than let pytest skip an empty table.
        return [pytest.param(None, id="corpus-missing")]
    return [
        pytest.param(
            record,
            id=record["id"],
            marks=(
                [pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[record["id"]])]
                if record["id"] in KNOWN_MISSES
                else []
            ),
        )
        for record in RECORDS
    ]


def test_corpus_is_present() -> None:
    """The corpus file is there and not empty: without it this module checks nothing."""
    path = corpus_dir() / CORPUS_FILE
    assert path.is_file(), f"corpus not found at {path}; set DISCOVER_CORPUS to its folder"
    assert RECORDS, f"{path} holds no records"


def test_known_misses_name_real_records() -> None:
    """Every id listed as a known miss is a record of the corpus (no stale entries)."""
    ids = {record["id"] for record in RECORDS}
    assert set(KNOWN_MISSES) <= ids


@pytest.mark.parametrize("record", record_params())
def test_record_parses_as_labelled(record: dict[str, Any] | None) -> None:
    """The record's text yields exactly the labelled denials, and a negative yields none."""
    assert record is not None, f"corpus not found in {corpus_dir()}"
    got = parse_denials(record["text"])
    if record["negative"]:
        assert got == ()
    assert as_rows(got) == expected_rows(record)


@pytest.mark.parametrize("record", record_params())
def test_streaming_agrees_with_parse(record: dict[str, Any] | None) -> None:
    """iter_denials over the record's lines finds what parse_denials finds in its text."""
    assert record is not None, f"corpus not found in {corpus_dir()}"
    streamed = list(iter_denials(record["text"].splitlines()))
    assert as_rows(streamed) == as_rows(parse_denials(record["text"]))


def test_negatives_yield_nothing() -> None:
    """Every negative record (expired token, throttling, "already exists") yields no denial."""
    negatives = [record for record in RECORDS if record["negative"]]
    assert negatives
    leaking = {r["id"]: parse_denials(r["text"]) for r in negatives if parse_denials(r["text"])}
    assert leaking == {}


def test_exact_match_rate() -> None:
    """At least 98% of the records parse exactly as labelled."""
    assert RECORDS
    exact = sum(as_rows(parse_denials(r["text"])) == expected_rows(r) for r in RECORDS)
    rate = exact / len(RECORDS)
    assert rate >= MIN_EXACT_RATE, f"{exact}/{len(RECORDS)} exact ({rate:.1%})"


def test_ids_are_unique() -> None:
    """No two records share an id (a test id names one record)."""
    ids = [record["id"] for record in RECORDS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("record", record_params())
def test_record_matches_its_schema(record: dict[str, Any] | None) -> None:
    """Fields, types and classes as the corpus README says, so a typo cannot pass unseen."""
    assert record is not None, f"corpus not found in {corpus_dir()}"
    assert set(record) == set(RECORD_FIELDS)
    for name, kind in RECORD_FIELDS.items():
        assert isinstance(record[name], kind), name
    assert record["source"].startswith("https://github.com/")
    assert record["tool"] in TOOLS
    assert record["text"].strip()
    assert (record["expected"] == []) is record["negative"]
    for expected in record["expected"]:
        assert isinstance(expected, dict)
        assert EXPECTED_FIELDS <= set(expected) <= EXPECTED_FIELDS | OPTIONAL_EXPECTED_FIELDS
        for name in ("principal", "action", "resource"):
            assert expected[name] is None or isinstance(expected[name], str), name
        assert expected["reason"] in {reason.value for reason in Reason}
        action = expected["action"]
        assert action is None or (iamdb.is_action_shaped(action) and "*" not in action)
        if "resource_kind" in expected:
            assert expected["resource"] is not None
            assert expected["resource_kind"] in {kind.value for kind in ResourceKind}


@pytest.mark.parametrize("record", record_params())
def test_resource_kinds_as_labelled(record: dict[str, Any] | None) -> None:
    """Where a record labels what its resource is, the parser says the same."""
    assert record is not None, f"corpus not found in {corpus_dir()}"
    kinds = {
        (d.principal, d.action.lower() if d.action else None, d.resource): d.resource_kind
        for d in parse_denials(record["text"])
    }
    for expected in record["expected"]:
        if "resource_kind" not in expected:
            continue
        action = expected["action"].lower() if expected["action"] else None
        found = kinds.get((expected["principal"], action, expected["resource"]))
        assert found is not None
        assert found.value == expected["resource_kind"]
