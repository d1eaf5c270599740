"""Deploy CLI sentences that mean a refused call without naming the IAM action."""

from __future__ import annotations

import pytest

from discover import iamdb
from discover.known_messages import KNOWN_MESSAGES, KnownMessage, Target, find_known_messages

SUFFIX = ". Make sure you have sufficient permissions to access it."


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "head bucket refused",
            "Error:\nCould not access the deployment bucket" + SUFFIX,
            [("s3:ListBucket", Target.DEPLOYMENT_BUCKET)],
        ),
        (
            "list objects refused",
            "Could not list objects in the deployment bucket" + SUFFIX,
            [("s3:ListBucket", Target.DEPLOYMENT_BUCKET)],
        ),
        (
            "head object refused",
            "Could not access objects in the deployment bucket" + SUFFIX,
            [("s3:GetObject", Target.DEPLOYMENT_OBJECTS)],
        ),
        (
            "two sentences, table order",
            "Could not access objects in the deployment bucket" + SUFFIX + "\n"
            "Could not access the deployment bucket" + SUFFIX,
            [
                ("s3:ListBucket", Target.DEPLOYMENT_BUCKET),
                ("s3:GetObject", Target.DEPLOYMENT_OBJECTS),
            ],
        ),
        ("nothing known", "Error: Stack demo-dev is in ROLLBACK_COMPLETE state", []),
        ("matched verbatim, not case-folded", "could not access the deployment bucket", []),
        ("a different bucket sentence", "Could not locate deployment bucket", []),
    ],
)
def test_find_known_messages(name: str, text: str, expected: list[tuple[str, Target]]) -> None:
    """Each known sentence in the text maps to its action and the resource kind it hit."""
    found = find_known_messages(text)
    assert [(m.action, m.target) for m in found] == expected, name


@pytest.mark.parametrize(("name", "message"), [(m.call, m) for m in KNOWN_MESSAGES])
def test_every_known_message_names_a_real_action(name: str, message: KnownMessage) -> None:
    """The table's actions are real IAM actions in canonical case (so they can be granted)."""
    assert iamdb.is_known_action(message.action), name
