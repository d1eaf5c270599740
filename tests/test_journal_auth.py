"""Journal authentication: lines MAC'd with the user's key, for one role, chained."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from discover.journal import Journal, read_journal
from discover.journal_auth import (
    JournalTrustError,
    Signer,
    authenticated_events,
    authenticated_records,
    load_key,
    state_home,
    trusted_backup,
)
from discover.policy import PolicyDocument
from discover.run_events import Backup, Granted, Resumed, Started

ROLE = "arn:aws:iam::111122223333:role/sandbox"
BACKUP = {"inline": {}, "attached": []}


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer(load_key(tmp_path / "state"), ROLE, "111122223333")


def write_run(path: Path, signer: Signer | None) -> None:
    journal = Journal(path, signer=signer)
    journal.emit(Started(ROLE, "discover", "s-dev", "us-east-1", "dev", ("sls",), False, 20))
    journal.emit(Backup(ROLE, BACKUP))
    journal.emit(Granted(1, (), PolicyDocument()))


def test_key_is_created_once_readable_by_the_user_only(tmp_path: Path) -> None:
    """The key is made on first use (0600, in a 0700 folder) and read back the same after."""
    folder = tmp_path / "state"
    first = load_key(folder)
    assert load_key(folder) == first
    assert len(first) == 32
    assert stat.S_IMODE((folder / "journal.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("name", "environ", "expected"),
    [
        ("XDG_STATE_HOME", {"XDG_STATE_HOME": "/x/state", "HOME": "/h"}, "/x/state/discover"),
        ("default", {"HOME": "/h"}, "/h/.local/state/discover"),
    ],
)
def test_state_home(name: str, environ: dict[str, str], expected: str) -> None:
    """The key lives in the user's state folder, as the XDG base directory spec says."""
    assert str(state_home(environ)) == expected, name


def test_own_journal_verifies_and_reads_as_before(tmp_path: Path, signer: Signer) -> None:
    """A journal written with the signer verifies, and the plain reader still reads it."""
    path = tmp_path / "journal.jsonl"
    write_run(path, signer)
    records = authenticated_records(path, signer)
    assert [r["event"] for r in records] == ["started", "backup", "granted"]
    events = authenticated_events(path, signer)
    assert [type(e) for e in events] == [Started, Backup, Granted]
    assert [r["event"] for r in read_journal(path)] == ["started", "backup", "granted"]


def test_chain_goes_on_after_reopening(tmp_path: Path, signer: Signer) -> None:
    """A journal reopened (--resume) continues the chain; it still verifies whole."""
    path = tmp_path / "journal.jsonl"
    write_run(path, signer)
    Journal(path, signer=signer).emit(Resumed(2))
    assert authenticated_records(path, signer)[-1]["event"] == "resumed"


def test_torn_last_line_is_skipped(tmp_path: Path, signer: Signer) -> None:
    """A run killed mid-write: the torn last line is skipped, the rest verifies."""
    path = tmp_path / "journal.jsonl"
    write_run(path, signer)
    with path.open("a") as handle:
        handle.write('{"event": "gran')
    assert len(authenticated_records(path, signer)) == 3


def _edit_policy(lines: list[str]) -> list[str]:
    record = json.loads(lines[2])
    record["policy"] = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    return [*lines[:2], json.dumps(record, sort_keys=True)]


TAMPERING: list[tuple[str, Callable[[list[str]], list[str]]]] = [
    ("a line edited (Action *)", _edit_policy),
    ("lines reordered", lambda lines: [lines[1], lines[0], lines[2]]),
    ("a line dropped in the middle", lambda lines: [lines[0], lines[2]]),
    ("a line without a MAC added", lambda lines: [*lines, '{"event": "granted"}']),
]


@pytest.mark.parametrize(("name", "tamper"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampered_journal_is_refused(
    tmp_path: Path, signer: Signer, name: str, tamper: Callable[[list[str]], list[str]]
) -> None:
    """Any change to the lines discover wrote makes the journal untrusted, with a clear error."""
    path = tmp_path / "journal.jsonl"
    write_run(path, signer)
    path.write_text("\n".join(tamper(path.read_text().splitlines())) + "\n")
    with pytest.raises(JournalTrustError) as caught:
        authenticated_records(path, signer)
    assert "was not written by discover on this machine" in caught.value.msg, name
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("name", "other"),
    [
        ("another role", lambda s: Signer(s.key, "arn:aws:iam::111122223333:role/x", s.account)),
        ("another account", lambda s: Signer(s.key, s.role_arn, "444455556666")),
        ("another machine's key", lambda s: Signer(b"k" * 32, s.role_arn, s.account)),
    ],
)
def test_journal_for_another_role_account_or_key_is_refused(
    tmp_path: Path, signer: Signer, name: str, other: Callable[[Signer], Signer]
) -> None:
    """A journal verifies only for the role, the account and the key it was written with."""
    path = tmp_path / "journal.jsonl"
    write_run(path, signer)
    with pytest.raises(JournalTrustError):
        authenticated_records(path, other(signer))


def test_unsigned_journal_is_refused(tmp_path: Path, signer: Signer) -> None:
    """A journal that came with the repository (no MACs) is refused."""
    path = tmp_path / "journal.jsonl"
    write_run(path, None)
    with pytest.raises(JournalTrustError):
        authenticated_records(path, signer)


def test_restore_takes_the_oldest_authenticated_backup(tmp_path: Path, signer: Signer) -> None:
    """A shipped ``journal-0.jsonl`` sorts first but does not verify: it is passed over."""
    state = tmp_path / ".discover"
    state.mkdir()
    shipped = state / "journal-0.jsonl"
    Journal(shipped).emit(Backup(ROLE, {"inline": {"discover": {"Statement": []}}}))
    write_run(state / "journal-20260101T000000.jsonl", signer)
    assert trusted_backup(state, signer) == BACKUP


def test_restore_without_an_authenticated_journal_is_refused(
    tmp_path: Path, signer: Signer
) -> None:
    """Only unauthenticated journals: refuse, naming the role."""
    state = tmp_path / ".discover"
    write_run(state / "journal.jsonl", None)
    with pytest.raises(JournalTrustError) as caught:
        trusted_backup(state, signer)
    assert ROLE in caught.value.msg
