"""Approvals and proposals, unit by unit: escaping, what holds a grant, the asking strategy."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from discover.approval import (
    ApprovalError,
    ApproveMode,
    Approver,
    check_terminal,
    describe,
    printable,
)
from discover.denials import Denial, Reason
from discover.iamdb import Action
from discover.policy import Grant
from discover.proposal import allows_of, holder
from discover.run_events import Approved, Event, Evidence, Refused

DENIAL = Denial("s3:GetObject", "arn:aws:s3:::b/k", None, Reason.NO_IDENTITY_POLICY, "output", "")


def evidence(action: str, resource: str, note: str = "", message: str = "") -> Evidence:
    denial = Denial(action, resource, None, Reason.NO_IDENTITY_POLICY, "output", message)
    return Evidence(Grant(Action(action), resource), denial, 1, note)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text", "plain text"),
        ("\x1b[2J\x1b[Hgrant it? y", "\\x1b[2J\\x1b[Hgrant it? y"),
        ("line\nbreak\r", "line\\x0abreak\\x0d"),
        ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
        ("unicode é ✓", "unicode é ✓"),
    ],
)
def test_printable_escapes_every_control_character(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_describe_shows_no_raw_control_character_of_the_deploy_output() -> None:
    item = evidence(
        "s3:PutObject", "arn:aws:s3:::b/\x1b]0;pwned\x07", "note\x1b[1A", "denied\x1b[31m"
    )
    text = "\n".join(describe(item))
    assert not any(ord(c) < 0x20 and c != "\n" for c in text)
    assert "\\x1b]0;pwned\\x07" in text
    assert "scoping:   note\\x1b[1A" in text


ROLE = {
    "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket/*"},
        {"Effect": "Allow", "Action": ["logs:Describe*"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        },
        {"Effect": "Deny", "Action": "sqs:*", "Resource": "*"},
        {"Effect": "Allow", "NotAction": "sqs:*", "Resource": "*"},
    ]
}


@pytest.mark.parametrize(
    ("action", "resource", "held"),
    [
        ("s3:PutObject", "arn:aws:s3:::bucket/key", True),  # action and resource patterns
        ("s3:PutObject", "arn:aws:s3:::other/key", False),
        ("logs:DescribeLogGroups", "*", True),
        ("logs:CreateLogGroup", "*", False),
        ("iam:PassRole", "arn:aws:iam::1:role/r", False),  # conditioned: not for this grant
        ("sqs:CreateQueue", "arn:aws:sqs:us-east-1:1:q", False),  # a Deny grants nothing
        ("lambda:CreateFunction", "*", False),  # NotAction is not read as an allow
    ],
)
def test_what_holds_a_proposed_grant(action: str, resource: str, held: bool) -> None:
    allows = allows_of(ROLE, "inline policy deploy")
    assert (holder(Grant(Action(action), resource), allows) is not None) is held


@pytest.mark.parametrize(
    ("mode", "interactive", "fails"),
    [
        (ApproveMode.EACH, False, True),
        (ApproveMode.BATCH, False, True),
        (ApproveMode.NEVER, False, False),
        (ApproveMode.EACH, True, False),
    ],
)
def test_approve_needs_a_terminal(mode: ApproveMode, interactive: bool, fails: bool) -> None:
    if fails:
        with pytest.raises(ApprovalError, match="needs a terminal") as raised:
            check_terminal(mode, interactive=interactive)
        assert "--propose" in str(raised.value)
    else:
        check_terminal(mode, interactive=interactive)


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)


def approver(mode: ApproveMode, answers: list[str]) -> tuple[Approver, Sink, list[str]]:
    asked: list[str] = []
    replies: Iterator[str] = iter(answers)

    def ask(question: str) -> str:
        asked.append(question)
        return next(replies)

    sink = Sink()
    return Approver(mode, ask, io.StringIO(), "alice").bind(sink), sink, asked


A = evidence("s3:PutObject", "arn:aws:s3:::b/1")
B = evidence("s3:PutObject", "arn:aws:s3:::b/2")
C = evidence("sqs:CreateQueue", "arn:aws:sqs:us-east-1:1:q")


@pytest.mark.parametrize(
    ("name", "mode", "answers", "chosen", "stopping", "decisions"),
    [
        ("yes to each", ApproveMode.EACH, ["y", "y", "y"], [A, B, C], [], ["+", "+", "+"]),
        ("always skips the same action", ApproveMode.EACH, ["a", "y"], [A, B, C], [], ["+"] * 3),
        ("no, go on", ApproveMode.EACH, ["n", "y", "y", "y"], [B, C], [], ["-", "+", "+"]),
        ("no, stop", ApproveMode.EACH, ["n", "n"], [A], [A], ["-"]),
        ("quit", ApproveMode.EACH, ["q"], [A], [A], ["-"]),
        (
            "nonsense asks again",
            ApproveMode.EACH,
            ["maybe", "y", "y", "y"],
            [A, B, C],
            [],
            ["+"] * 3,
        ),
        ("batch yes", ApproveMode.BATCH, ["y"], [A, B, C], [], ["+"]),
        ("batch quit", ApproveMode.BATCH, ["q"], [A, B, C], [A, B, C], ["-"]),
        ("never asks nothing", ApproveMode.NEVER, [], [A, B, C], [], []),
    ],
)
def test_the_approver_keeps_what_was_approved(
    name: str,
    *,
    mode: ApproveMode,
    answers: list[str],
    chosen: list[Evidence],
    stopping: list[Evidence],
    decisions: list[str],
) -> None:
    strategy, sink, asked = approver(mode, answers)
    kept = strategy.choose([A, B, C], [DENIAL])
    assert kept == chosen
    assert strategy.refuse(kept) == stopping
    assert len(asked) == len(answers)
    signs = ["+" if isinstance(e, Approved) else "-" for e in sink.events]
    assert signs == decisions
    assert all(e.by == "alice" for e in sink.events if isinstance(e, Approved | Refused))
