"""The journal: an append-only JSON Lines record of a run, fsynced per event.

It is the evidence behind the report (which denial led to which grant) and what ``--resume``
reads. A truncated or corrupt last line (a run killed mid-write) is skipped when reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from discover.journal_auth import Signer

SCHEMA = 1


class Journal:
    """Appends events to ``path``; each write is flushed and fsynced before it returns."""

    def __init__(self, path: Path, *, signer: Signer | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # With a signer, each line carries a MAC chained to the one before (journal_auth).
        self._signer = signer
        self._previous = ""
        if signer is not None:
            from discover.journal_auth import last_mac

            self._previous = last_mac(path)

    def append(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": datetime.now(UTC).isoformat(), "schema": SCHEMA, **fields}
        if self._signer is not None:
            text, self._previous = self._signer.seal(record, self._previous)
            line = text + "\n"
        else:
            line = json.dumps(record, sort_keys=True, default=str) + "\n"
        # A previous run killed mid-line leaves no newline; start ours on a fresh line.
        prefix = "\n" if _ends_without_newline(self.path) else ""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(prefix + line)
            handle.flush()
            os.fsync(handle.fileno())


def _ends_without_newline(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except (FileNotFoundError, OSError):
        return False


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """The journal's events in order; lines that do not parse (a torn write) are skipped."""
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


def first_backup(state_dir: Path) -> dict[str, Any] | None:
    """The role as it was before discover first ran here: the oldest journal's backup."""
    journals = [*sorted(state_dir.glob("journal-*.jsonl")), state_dir / "journal.jsonl"]
    for path in journals:
        backups = [r for r in read_journal(path) if r["event"] == "backup"]
        if backups:
            backup: dict[str, Any] = backups[0]["backup"]
            return backup
    return None
