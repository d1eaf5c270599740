"""The journal: the run's typed events as append-only JSON Lines, fsynced per event.

It is one sink of the event stream (``run_events``): the evidence behind the report (which
denial led to which grant) and what ``--resume`` and ``--restore`` read. ``read_events`` gives
back the same typed events that were written. A truncated or corrupt line (a run killed
mid-write) is skipped when reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discover.run_events import Backup, Event, decode, encode

SCHEMA = 1


class Journal:
    """The journal sink: appends each event to ``path``, flushed and fsynced before returning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: Event) -> None:
        record = {**encode(event), "time": datetime.now(UTC).isoformat(), "schema": SCHEMA}
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        # A previous run killed mid-line leaves no newline; start ours on a fresh line.
        prefix = "\n" if _ends_without_newline(self.path) else ""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(prefix + line)
            handle.flush()
            os.fsync(handle.fileno())

    def events(self) -> tuple[Event, ...]:
        return read_events(self.path)


def _ends_without_newline(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except (FileNotFoundError, OSError):
        return False


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """The journal's raw records in order; lines that do not parse (a torn write) are skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "event" in record:
                yield record


def read_events(path: Path) -> tuple[Event, ...]:
    """The journal's typed events in order (unknown kinds and malformed records skipped)."""
    found: list[Event] = []
    for record in read_journal(path):
        try:
            event = decode(record)
        except (ValueError, KeyError, TypeError):
            continue
        if event is not None:
            found.append(event)
    return tuple(found)


def first_backup(state_dir: Path) -> dict[str, Any] | None:
    """The role as it was before discover first ran here: the oldest journal's backup."""
    journals = [*sorted(state_dir.glob("journal-*.jsonl")), state_dir / "journal.jsonl"]
    for path in journals:
        backups = [e for e in read_events(path) if isinstance(e, Backup)]
        if backups:
            return dict(backups[0].backup)
    return None
