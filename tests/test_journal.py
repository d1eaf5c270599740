"""The journal: typed events as append-only JSON Lines, fsynced per event, read back as the
same types, tolerant of a torn last line; and the one rule for the last policy."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from discover.denials import Denial, Reason
from discover.iamdb import Action
from discover.journal import SCHEMA, Journal, first_backup, read_events, read_journal
from discover.policy import Grant, PolicyDocument
from discover.run_events import (
    EVENT_TYPES,
    AppliedOutOfBand,
    Approved,
    Backup,
    DenialsFound,
    Event,
    Evidence,
    FenceDrawn,
    Granted,
    GrantPlanned,
    GrantsDecided,
    PhaseStarted,
    PolicyApplied,
    Predicted,
    PredictionsDropped,
    PropagationWait,
    ProposalMissing,
    Proposed,
    Refused,
    RemovalTest,
    Resumed,
    RunFinished,
    RunStarted,
    ServiceRoleGranted,
    SessionRenewed,
    Started,
    Stopped,
    StopReason,
    TrailRead,
    decode,
    encode,
    evidence_of,
    last_policy,
)

ROLE = "arn:aws:iam::111122223333:role/sandbox"
FUNCTION_ROLE = "arn:aws:iam::111122223333:role/demo-dev-us-east-1-lambdaRole"
DENIAL = Denial(
    action="iam:PassRole",
    resource=FUNCTION_ROLE,
    principal="arn:aws:sts::111122223333:assumed-role/sandbox/s",
    reason=Reason.NO_IDENTITY_POLICY,
    source="stack-event",
    message="HelloLambdaFunction (AWS::Lambda::Function) CREATE_FAILED: denied",
    logical_id="HelloLambdaFunction",
    resource_type="AWS::Lambda::Function",
    physical_id="demo-dev-hello",
)
GRANT = Grant(
    Action("iam:PassRole"),
    FUNCTION_ROLE,
    (("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),),
)
EVIDENCE = Evidence(GRANT, DENIAL, 2, "exact role ARN")
POLICY = PolicyDocument().with_grants([GRANT])
BIGGER = POLICY.with_grants([Grant(Action("iam:GetRole"), FUNCTION_ROLE)])
STARTED = Started(ROLE, "discover", "demo-dev", "us-east-1", "dev", ("sls", "deploy"), True, 5)

EXAMPLES: list[tuple[str, Event]] = [
    ("started", STARTED),
    ("backup", Backup(ROLE, {"inline": {"x": {"Version": "2012-10-17"}}, "attached": []})),
    ("resumed", Resumed(4)),
    ("phase started", PhaseStarted("update", "no-op update", 7)),
    ("policy applied", PolicyApplied(0, POLICY)),
    ("run started", RunStarted(1, 5)),
    ("run finished", RunFinished(1, 1, 2.5, False, "/tmp/01.log", "Error: denied")),  # noqa: S108
    ("denials found", DenialsFound(2, (DENIAL,))),
    ("grant planned", GrantPlanned(2, POLICY, (EVIDENCE,))),
    ("granted", Granted(2, (EVIDENCE,), POLICY)),
    (
        "service role granted",
        ServiceRoleGranted(2, "arn:aws:iam::123456789012:role/cfn", (EVIDENCE,), POLICY),
    ),
    ("propagation wait", PropagationWait(3, 5.0)),
    ("session renewed", SessionRenewed(3)),
    ("stopped", Stopped(StopReason.UNFIXABLE, "a deny", (DENIAL,))),
    ("approved", Approved(2, (EVIDENCE,), "alice", "always")),
    ("refused", Refused(2, (EVIDENCE,), "alice", go_on=True)),
    ("proposed", Proposed(2, POLICY, (EVIDENCE,), ".discover/proposed.json")),
    ("applied out of band", AppliedOutOfBand(2, "inline policy deploy")),
    ("proposal missing", ProposalMissing(2, ("s3:GetObject on *",), 3)),
    ("predicted", Predicted((EVIDENCE,), (EVIDENCE,))),
    ("trail read", TrailRead(1, "discover-x-r01", 30, 28, True, 2.5)),
    ("predictions dropped", PredictionsDropped((EVIDENCE,))),
    ("removal test", RemovalTest(3, EVIDENCE)),
    ("fence drawn", FenceDrawn(("stack s-dev in us-east-1", "names starting with s-dev-"))),
    (
        "grants decided",
        GrantsDecided(({"action": "iam:CreateUser", "verdict": "confirm", "reasons": ["x"]},)),
    ),
]


def test_every_event_type_has_an_example() -> None:
    """The round-trip table below covers each event type (a new one needs a row)."""
    assert {type(e) for _, e in EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize(("name", "event"), EXAMPLES)
def test_each_event_reads_back_as_written(tmp_path: Path, name: str, event: Event) -> None:
    """Written to the journal and read back, an event is equal to itself (the same type)."""
    journal = Journal(tmp_path / "journal.jsonl")
    journal.emit(event)
    assert read_events(journal.path) == (event,), name
    assert decode(json.loads(json.dumps(encode(event)))) == event, name


def test_events_are_fsynced_and_stamped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each event is fsynced before ``emit`` returns, with the schema version and a time."""
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    journal = Journal(tmp_path / "state" / "journal.jsonl")
    journal.emit(STARTED)
    journal.emit(RunFinished(1, 0, 1.0, False))

    assert len(synced) == 2
    records = list(read_journal(journal.path))
    assert [r["event"] for r in records] == ["started", "run_finished"]
    assert records[0]["role_arn"] == ROLE
    assert all(r["schema"] == SCHEMA for r in records)
    assert all(datetime.fromisoformat(r["time"]).tzinfo is not None for r in records)
    assert journal.path.read_text(encoding="utf-8").endswith("\n")


@pytest.mark.parametrize(
    ("name", "events", "expected"),
    [
        ("nothing yet", [], PolicyDocument()),
        ("the starting policy", [PolicyApplied(0, POLICY)], POLICY),
        (
            "planned, then killed during the apply",
            [PolicyApplied(0, POLICY), GrantPlanned(1, BIGGER, ())],
            BIGGER,
        ),
        (
            "planned and granted",
            [PolicyApplied(0, PolicyDocument()), GrantPlanned(1, POLICY), Granted(1, (), POLICY)],
            POLICY,
        ),
        (
            "a later start of the same run",
            [Granted(1, (), BIGGER), PolicyApplied(1, POLICY)],
            POLICY,
        ),
    ],
)
def test_the_last_policy_is_one_rule(
    name: str, events: list[Event], expected: PolicyDocument
) -> None:
    """The report, --resume and the partial outputs all read the same last policy."""
    assert last_policy(events) == expected, name


def test_evidence_is_read_once_from_planned_and_granted() -> None:
    """A grant planned and then made counts once; one only planned still has its evidence."""
    other = Evidence(Grant(Action("iam:GetRole"), FUNCTION_ROLE), DENIAL, 3, "exact")
    events: list[Event] = [
        GrantPlanned(2, POLICY, (EVIDENCE,)),
        Granted(2, (EVIDENCE,), POLICY),
        GrantPlanned(3, BIGGER, (other,)),
    ]
    assert evidence_of(events) == (EVIDENCE, other)


def test_an_older_journal_reads_without_the_newer_fields(tmp_path: Path) -> None:
    """Records written before a field existed read with its default; unknown kinds skip."""
    path = tmp_path / "journal.jsonl"
    lines = [
        {"event": "run_started", "iteration": 1},
        {"event": "phase_of_the_future", "iteration": 1},
        {"event": "grant_planned", "iteration": 1, "policy": POLICY.to_dict()},
        {"event": "stopped", "reason": "error", "detail": "AWS down"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    assert read_events(path) == (
        RunStarted(1, 0),
        GrantPlanned(1, POLICY, ()),
        Stopped(StopReason.ERROR, "AWS down"),
    )


def test_a_malformed_record_of_a_known_kind_is_skipped(tmp_path: Path) -> None:
    """A record that lacks a required field or has a bad value spoils its line only."""
    path = tmp_path / "journal.jsonl"
    lines = [
        {"event": "run_started"},
        {"event": "stopped", "reason": "not-a-reason"},
        {"event": "resumed", "iteration": 2},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    assert read_events(path) == (Resumed(2),)


def test_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    """No journal file: no events, no error."""
    assert read_events(tmp_path / "nothing.jsonl") == ()


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    """A run killed mid-write leaves half a line; reading skips it and keeps the rest."""
    path = tmp_path / "journal.jsonl"
    Journal(path).emit(STARTED)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"event": "granted", "iteration": 1, "pol')
    assert read_events(path) == (STARTED,)


def test_append_after_a_torn_line_starts_a_fresh_line(tmp_path: Path) -> None:
    """The next event does not glue its record to the torn one: it is read back whole."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.emit(STARTED)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"event": "granted", "itera')
    journal.emit(Stopped(StopReason.INTERRUPTED))

    assert read_events(path) == (STARTED, Stopped(StopReason.INTERRUPTED))
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
    journal.emit(STARTED)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    journal.emit(Resumed(2))
    assert read_events(path) == (STARTED, Resumed(2)), name


def test_invalid_utf8_in_the_file_does_not_stop_reading(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 (a disk error, a foreign write) spoil their line only."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.emit(STARTED)
    with path.open("ab") as handle:
        handle.write(b'{"event": "\xff\xfe", "x": 1}\n\x80\x81garbage\n')
    journal.emit(Resumed(2))
    records = [r["event"] for r in read_journal(path)]
    assert len(records) == 3  # the undecodable event name is replaced, the line still parses
    assert read_events(path) == (STARTED, Resumed(2))


def test_journal_creates_its_folder(tmp_path: Path) -> None:
    """The state folder need not exist yet."""
    path = tmp_path / "a" / "b" / "journal.jsonl"
    Journal(path).emit(STARTED)
    assert path.exists()


def test_first_backup_is_the_oldest_journals(tmp_path: Path) -> None:
    """``--restore`` puts back the role as it was before discover first ran in the folder."""
    old = {"inline": {"discover": {"Version": "2012-10-17", "Statement": []}}, "attached": []}
    Journal(tmp_path / "journal-20240101T000000.jsonl").emit(Backup(ROLE, old))
    Journal(tmp_path / "journal.jsonl").emit(Backup(ROLE, {"inline": {}, "attached": []}))
    assert first_backup(tmp_path) == old
    assert first_backup(tmp_path / "nowhere") is None
