"""Whose denial: this run's session token-exact, a trusted channel, nobody named, or another."""

from __future__ import annotations

import pytest

from discover.denials import Denial, Reason, parse_denials
from discover.ownership import Owner, attribute, session_arn

ROLE = "arn:aws:iam::123456789012:role/discover-sandbox"
SESSION = session_arn(ROLE, "discover-20260101T000000-ab12")


def denial(principal: str | None, source: str = "output") -> Denial:
    return Denial("sqs:CreateQueue", None, principal, Reason.UNSPECIFIED, source, "m")


def test_session_arn() -> None:
    """STS's assumed-role ARN of a session of the role (path dropped, as STS does)."""
    assert session_arn("arn:aws:iam::1:role/path/to/R", "s") == "arn:aws:sts::1:assumed-role/R/s"


@pytest.mark.parametrize(
    ("name", "principal", "source", "owner"),
    [
        ("this run's session", SESSION, "output", Owner.SESSION),
        ("a session with a longer name", SESSION + ":x/ops", "output", Owner.FOREIGN),
        ("a session name that extends ours", SESSION + "x", "output", Owner.FOREIGN),
        (
            "another session of the role",
            ROLE.replace(":iam:", ":sts:").replace("role/", "assumed-role/") + "/other",
            "output",
            Owner.FOREIGN,
        ),
        ("the role itself", ROLE, "output", Owner.FOREIGN),
        ("another role", "arn:aws:sts::123456789012:assumed-role/Ops/ci", "output", Owner.FOREIGN),
        ("no principal, the deploy's output", None, "output", Owner.UNATTRIBUTED),
        ("no principal, this stack's events", None, "stack-event", Owner.TRUSTED),
        ("no principal, a known CLI message", None, "cli-message (S3 HeadBucket)", Owner.TRUSTED),
        ("no principal, decoded by discover", None, "output (decoded)", Owner.TRUSTED),
        (
            "another principal in a stack event",
            "arn:aws:sts::1:assumed-role/X/y",
            "stack-event",
            Owner.FOREIGN,
        ),
    ],
)
def test_attribution(name: str, principal: str | None, source: str, owner: Owner) -> None:
    """Only the exact session is the run's; no prefix match; channels decide principal-less."""
    assert attribute(denial(principal, source), SESSION) is owner, name


def test_a_quoted_denial_with_a_suffix_is_not_ours() -> None:
    """The parser's principal for ``User: <session>:x/ops`` is not this run's session."""
    text = (
        f"User: {SESSION}:x/ops is not authorized to perform: dynamodb:Scan on resource: "
        "arn:aws:dynamodb:us-east-1:123456789012:table/prod because no identity-based policy "
        "allows the dynamodb:Scan action"
    )
    (found,) = parse_denials(text)
    assert attribute(found, SESSION) is Owner.FOREIGN


def test_unknown_session_matches_no_principal() -> None:
    """Without a session ARN, a named principal is never the run's."""
    assert attribute(denial(SESSION), None) is Owner.FOREIGN
