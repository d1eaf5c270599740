"""Journal authentication: only a journal discover wrote here, for this role, is trusted.

A journal in the service folder may come with the repository. ``--restore`` and ``--resume``
act on the role from what a journal says, so each line discover writes carries an HMAC-SHA256
(``mac``) under a key kept in the user's state folder (``$XDG_STATE_HOME/discover/
journal.key``, by default ``~/.local/state/discover/``, created 0600 on first use). The MAC
covers the line, the role ARN and account the run is for, and the previous line's MAC, so a
line cannot be edited, moved to another journal, reordered, or replayed for another role.

A torn last line (a run killed mid-write) is skipped, as the journal reader does; any other
line that does not verify makes the whole journal untrusted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from discover.errors import DiscoverError
from discover.run_events import Event, decode

KEY_FILE = "journal.key"
MAC_FIELD = "mac"
_KEY_BYTES = 32


class JournalTrustError(DiscoverError):
    """A journal discover cannot authenticate for this role and account."""

    exit_code = 2


def state_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/discover``, by default ``~/.local/state/discover``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(
        Path(env.get("HOME") or Path.home()) / ".local" / "state"
    )
    return Path(base) / "discover"


def load_key(folder: Path | None = None) -> bytes:
    """The journal key (created on first use, readable by the user only)."""
    folder = state_home() if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(_KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    key = path.read_bytes()
    if len(key) < _KEY_BYTES:
        msg = f"the journal key {path} is damaged ({len(key)} bytes)"
        raise JournalTrustError(
            msg, tip="Remove it; discover makes a new one (old journals then no longer verify)."
        )
    return key


@dataclass(frozen=True, slots=True)
class Signer:
    """Seals and checks journal lines for one role in one account."""

    key: bytes
    role_arn: str
    account: str

    def mac(self, body: str, previous: str) -> str:
        scope = f"discover-journal\0{self.account}\0{self.role_arn}\0{previous}\0"
        return hmac.new(self.key, (scope + body).encode(), hashlib.sha256).hexdigest()

    def seal(self, record: Mapping[str, Any], previous: str) -> tuple[str, str]:
        """The line to write for ``record`` (with its MAC), and the MAC."""
        body = canonical(record)
        mac = self.mac(body, previous)
        return canonical({**json.loads(body), MAC_FIELD: mac}), mac


def canonical(record: Mapping[str, Any]) -> str:
    """The one text of ``record`` the MAC covers (sorted keys; non-JSON values as text)."""
    return json.dumps(record, sort_keys=True, default=str)


def last_mac(path: Path) -> str:
    """The MAC of the journal's last whole line ("" for none): where the chain goes on."""
    previous = ""
    for record in _records(path):
        if record is not None and isinstance(record.get(MAC_FIELD), str):
            previous = str(record[MAC_FIELD])
    return previous


def _records(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each line as a dict, or None for a line that is not a JSON object."""
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
                yield None
                continue
            yield record if isinstance(record, dict) else None


def authenticated_records(path: Path, signer: Signer) -> list[dict[str, Any]]:
    """The journal's records, each verified; refuse a journal that is not wholly ours.

    Only the last line may be torn (skipped). The records come back without their MAC.
    """
    lines = list(_records(path))
    if lines and lines[-1] is None:
        lines.pop()  # a torn last write
    previous = ""
    records: list[dict[str, Any]] = []
    for number, record in enumerate(lines, start=1):
        mac = record.pop(MAC_FIELD, None) if record is not None else None
        if record is None or not isinstance(mac, str):
            _untrusted(path, signer, f"line {number} carries no MAC")
        expected = signer.mac(canonical(record), previous)
        if not hmac.compare_digest(mac, expected):
            _untrusted(path, signer, f"line {number} does not verify")
        records.append(record)
        previous = mac
    return records


def authenticated_events(path: Path, signer: Signer) -> tuple[Event, ...]:
    """The journal's typed events, after every line verified (``authenticated_records``)."""
    found: list[Event] = []
    for record in authenticated_records(path, signer):
        try:
            event = decode(record)
        except (ValueError, KeyError, TypeError):
            continue
        if event is not None:
            found.append(event)
    return tuple(found)


def _untrusted(path: Path, signer: Signer, why: str) -> NoReturn:
    msg = (
        f"{path} was not written by discover on this machine for {signer.role_arn} "
        f"({why}): refusing to act on it"
    )
    raise JournalTrustError(
        msg,
        tip="Run without --resume/--restore; a journal that came with the repository is never "
        "used to write the role.",
    )


def trusted_backup(state_dir: Path, signer: Signer) -> dict[str, Any]:
    """The role's backup from the oldest journal here that verifies for this role.

    Journals that do not verify (shipped with the repository, another role's, another
    machine's) are passed over; if none verifies, refuse.
    """
    journals = [*sorted(state_dir.glob("journal-*.jsonl")), state_dir / "journal.jsonl"]
    for path in journals:
        if not path.exists():
            continue
        try:
            records = authenticated_records(path, signer)
        except JournalTrustError:
            continue
        for record in records:
            if record.get("event") == "backup" and record.get("role_arn") == signer.role_arn:
                backup: dict[str, Any] = record["backup"]
                return backup
    msg = f"no journal in {state_dir} that discover wrote here holds a backup of {signer.role_arn}"
    raise JournalTrustError(
        msg, tip="--restore needs the journal of an earlier run of discover on this machine."
    )
