"""The journal: append-only JSON Lines, fsynced per event, tolerant of a torn last line."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from discover.journal import SCHEMA, Journal, read_journal


def test_appended_events_are_fsynced_and_read_back_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each append is fsynced before it returns; the events read back in order, with their
    fields, the schema version and a timestamp."""
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    journal = Journal(tmp_path / "state" / "journal.jsonl")
    journal.append("started", role_arn="arn:aws:iam::111122223333:role/sandbox")
    journal.append("run_finished", iteration=1, returncode=0)

    assert len(synced) == 2
    records = list(read_journal(journal.path))
    assert [r["event"] for r in records] == ["started", "run_finished"]
    assert records[0]["role_arn"] == "arn:aws:iam::111122223333:role/sandbox"
    assert records[1]["iteration"] == 1
    assert all(r["schema"] == SCHEMA for r in records)
    assert all(datetime.fromisoformat(r["time"]).tzinfo is not None for r in records)
    assert journal.path.read_text(encoding="utf-8").endswith("\n")


def test_values_json_cannot_hold_are_written_as_text(tmp_path: Path) -> None:
    """A field that is not JSON (a path, a datetime) is written as its text, not an error."""
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append("run_finished", log=tmp_path / "01.log", at=datetime(2024, 1, 1, tzinfo=UTC))
    (record,) = read_journal(journal.path)
    assert record["log"] == str(tmp_path / "01.log")
    assert record["at"] == "2024-01-01 00:00:00+00:00"


def test_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    """No journal file: no events, no error."""
    assert list(read_journal(tmp_path / "nothing.jsonl")) == []


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    """A run killed mid-write leaves half a line; reading skips it and keeps the rest."""
    path = tmp_path / "journal.jsonl"
    Journal(path).append("started")
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"event": "granted", "iteration": 1, "pol')
    assert [r["event"] for r in read_journal(path)] == ["started"]


def test_append_after_a_torn_line_starts_a_fresh_line(tmp_path: Path) -> None:
    """The next append does not glue its record to the torn one: it is read back whole."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append("started")
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"event": "granted", "itera')
    journal.append("stopped", reason="interrupted")

    assert [r["event"] for r in read_journal(path)] == ["started", "stopped"]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-1])["event"] == "stopped"


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("a JSON list", "[1, 2, 3]"),
        ("a JSON string", '"started"'),
        ("a JSON number", "42"),
        ("null", "null"),
        ("an object without an event", '{"iteration": 3}'),
        ("a blank line", "   "),
        ("not JSON at all", "Traceback (most recent call last):"),
    ],
)
def test_lines_that_are_not_events_are_ignored(tmp_path: Path, name: str, line: str) -> None:
    """Only JSON objects with an ``event`` are events; anything else in the file is skipped."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append("started")
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    journal.append("stopped")
    assert [r["event"] for r in read_journal(path)] == ["started", "stopped"], name


def test_invalid_utf8_in_the_file_does_not_stop_reading(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 (a disk error, a foreign write) spoil their line only."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append("started")
    with path.open("ab") as handle:
        handle.write(b'{"event": "\xff\xfe", "x": 1}\n\x80\x81garbage\n')
    journal.append("stopped")
    events = [r["event"] for r in read_journal(path)]
    assert events[0] == "started"
    assert events[-1] == "stopped"
    assert len(events) == 3  # the undecodable event name is replaced, the line still parses


def test_journal_creates_its_folder(tmp_path: Path) -> None:
    """The state folder need not exist yet."""
    path = tmp_path / "a" / "b" / "journal.jsonl"
    Journal(path).append("started")
    assert path.exists()
