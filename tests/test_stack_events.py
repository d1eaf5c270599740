"""CloudFormation stack events -> the denials of this run's failed resources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from discover.stack_events import denials_from_events, failed_events

SINCE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SESSION = "arn:aws:sts::111122223333:assumed-role/sandbox/discover-1"
ROLE_DENIED = (
    f'Resource handler returned message: "User: {SESSION} is not authorized to perform: '
    "iam:CreateRole on resource: arn:aws:iam::111122223333:role/demo-dev-us-east-1-lambdaRole "
    "because no identity-based policy allows the iam:CreateRole action (Service: Iam, Status "
    'Code: 403, Request ID: 0f1e2d3c)" (RequestToken: abc, HandlerErrorCode: AccessDenied)'
)
LOGS_DENIED = (
    f"User: {SESSION} is not authorized to perform: logs:CreateLogGroup on resource: "
    "arn:aws:logs:us-east-1:111122223333:log-group:/aws/lambda/demo-dev-hello:log-stream: "
    "because no identity-based policy allows the logs:CreateLogGroup action"
)


def event(
    status: str,
    reason: str | None,
    *,
    after_s: float = 30,
    logical_id: str = "IamRoleLambdaExecution",
    resource_type: str = "AWS::IAM::Role",
    timestamp: Any = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceStatus": status,
        "Timestamp": timestamp if timestamp is not None else SINCE + timedelta(seconds=after_s),
    }
    if reason is not None:
        record["ResourceStatusReason"] = reason
    return record


@pytest.mark.parametrize(
    ("name", "events", "expected_actions"),
    [
        ("a failed create in this run", [event("CREATE_FAILED", ROLE_DENIED)], ["iam:CreateRole"]),
        (
            "a failed update in this run",
            [event("UPDATE_FAILED", LOGS_DENIED, logical_id="HelloLogGroup")],
            ["logs:CreateLogGroup"],
        ),
        ("a failure before the run started", [event("CREATE_FAILED", ROLE_DENIED, after_s=-5)], []),
        (
            "a failure at the run's first second",
            [event("CREATE_FAILED", ROLE_DENIED, after_s=0)],
            ["iam:CreateRole"],
        ),
        ("a resource that succeeded", [event("CREATE_COMPLETE", ROLE_DENIED)], []),
        ("a failure without a reason", [event("CREATE_FAILED", None)], []),
        ("a failure that is not a denial", [event("CREATE_FAILED", "Bucket already exists")], []),
        (
            "the stack-level summary",
            [
                event(
                    "ROLLBACK_IN_PROGRESS",
                    "The following resource(s) failed to create: [IamRoleLambdaExecution].",
                    logical_id="demo-dev",
                    resource_type="AWS::CloudFormation::Stack",
                )
            ],
            [],
        ),
        (
            "the same denial in two events",
            [event("CREATE_FAILED", ROLE_DENIED), event("CREATE_FAILED", ROLE_DENIED, after_s=40)],
            ["iam:CreateRole"],
        ),
        (
            "an ISO timestamp string with Z",
            [event("CREATE_FAILED", ROLE_DENIED, timestamp="2024-05-01T12:00:30Z")],
            ["iam:CreateRole"],
        ),
        (
            "two failures, oldest first",
            [
                event("CREATE_FAILED", LOGS_DENIED, after_s=50, logical_id="HelloLogGroup"),
                event("CREATE_FAILED", ROLE_DENIED, after_s=20),
            ],
            ["iam:CreateRole", "logs:CreateLogGroup"],
        ),
    ],
)
def test_denials_from_events(
    name: str, events: list[dict[str, Any]], expected_actions: list[str]
) -> None:
    """Only ``*_FAILED`` events of this run with a denial in their reason give denials."""
    denials = denials_from_events(events, SINCE)
    assert [d.action for d in denials] == expected_actions, name
    assert all(d.source == "stack-event" for d in denials)


def test_event_denial_keeps_the_message_with_the_resource_it_failed() -> None:
    """The denial says which logical resource failed and quotes the event's reason."""
    (denial,) = denials_from_events([event("CREATE_FAILED", ROLE_DENIED)], SINCE)
    assert denial.principal == SESSION
    assert denial.resource == "arn:aws:iam::111122223333:role/demo-dev-us-east-1-lambdaRole"
    assert denial.message.startswith("IamRoleLambdaExecution (AWS::IAM::Role) CREATE_FAILED: ")
    assert "iam:CreateRole" in denial.message


def test_failed_events_are_sorted_by_time() -> None:
    """``failed_events`` returns this run's failures oldest first, whatever the API order."""
    late = event("CREATE_FAILED", "late", after_s=90)
    early = event("UPDATE_FAILED", "early", after_s=10)
    done = event("CREATE_COMPLETE", "fine", after_s=20)
    assert failed_events([late, done, early], SINCE) == [early, late]
