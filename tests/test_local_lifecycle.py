"""CloudFormation's whole lifecycle as the caller: stack tags, rollbacks that the caller may not
make, replacement, retried deletes, ContinueUpdateRollback, types outside the overrides.

Each refusal is read back from the stack events with ``discover.stack_events.denials_from_events``,
the parser that reads AWS's events.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from discover.local.process import LocalSandbox, LocalSandboxInfo
from discover.stack_events import denials_from_events
from tests.conftest import admin_session, role_session
from tests.test_local_stacks import (
    ACCOUNT,
    REGION,
    SINCE,
    allow,
    cfn,
    events_of,
    log_group,
    put_policy,
    status_of,
    statuses,
    template,
)

pytestmark = pytest.mark.sandbox

LOGS_ALL = ("logs:CreateLogGroup", "logs:DescribeLogGroups", "logs:DeleteLogGroup")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandboxInfo]:
    path = tmp_path_factory.mktemp("lifecycle") / "authorization.jsonl"
    with LocalSandbox(authorization_log=path) as info:
        yield info


def queue(name: str, **props: Any) -> dict[str, Any]:
    return {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name, **props}}


def denied(info: LocalSandboxInfo, stack: str) -> set[tuple[str | None, str | None]]:
    return {(d.action, d.resource) for d in denials_from_events(events_of(info, stack), SINCE)}


def reasons(info: LocalSandboxInfo, stack: str, status: str) -> dict[str, str]:
    return {
        e["LogicalResourceId"]: e.get("ResourceStatusReason", "")
        for e in events_of(info, stack)
        if e["ResourceStatus"] == status
    }


QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:demo-tags-jobs"


@pytest.mark.parametrize(
    ("case", "tags", "granted", "denial", "code"),
    [
        (
            "stack tag, no TagQueue",
            [{"Key": "STAGE", "Value": "dev"}],
            ("sqs:CreateQueue", "sqs:GetQueueAttributes"),
            ("sqs:TagQueue", QUEUE_ARN),
            "UnauthorizedTaggingOperation",
        ),
        (
            "stack tag, TagQueue granted",
            [{"Key": "STAGE", "Value": "dev"}],
            ("sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:TagQueue"),
            None,
            None,
        ),
        (
            "no stack tags",
            [],
            ("sqs:CreateQueue", "sqs:GetQueueAttributes"),
            None,
            None,
        ),
    ],
)
def test_stack_tags_are_propagated_with_the_callers_permissions(  # noqa: PLR0917 - one column each
    sandbox: LocalSandboxInfo,
    case: str,
    tags: list[dict[str, str]],
    granted: tuple[str, ...],
    denial: tuple[str, str] | None,
    code: str | None,
) -> None:
    """A stack's own tags reach every resource that takes tags: tagging it is the caller's
    call, refused as an unauthorized tagging operation; without user tags nothing is asked
    (CloudFormation's aws:cloudformation:* tags need no permission)."""
    put_policy(sandbox, allow(*granted, "sqs:DeleteQueue"))
    stack = f"demo-tags-{abs(hash(case)) % 10_000}"
    client = cfn(role_session(sandbox, "tags"), sandbox)
    client.create_stack(
        StackName=stack, TemplateBody=template(Queue=queue("demo-tags-jobs")), Tags=tags
    )
    if denial is None:
        assert status_of(sandbox, stack) == "CREATE_COMPLETE"
        client.delete_stack(StackName=stack)
        return
    assert status_of(sandbox, stack) == "ROLLBACK_COMPLETE"
    assert denied(sandbox, stack) == {denial}
    assert f"HandlerErrorCode: {code})" in reasons(sandbox, stack, "CREATE_FAILED")["Queue"]


def test_a_rollback_the_caller_may_not_make_fails(sandbox: LocalSandboxInfo) -> None:
    """A failed create rolls back as the caller: a log group it may not delete stays, the stack
    ends ROLLBACK_FAILED with DELETE_FAILED naming logs:DeleteLogGroup; once granted, a
    retried DeleteStack removes it."""
    put_policy(sandbox, allow("logs:CreateLogGroup", "logs:DescribeLogGroups"))
    stack = "demo-rollback-refused"
    client = cfn(role_session(sandbox, "rollback"), sandbox)
    body = template(Logs=log_group("/demo/rollback-refused"), Queue=queue("demo-rollback-jobs"))
    client.create_stack(StackName=stack, TemplateBody=body)
    assert status_of(sandbox, stack) == "ROLLBACK_FAILED"
    assert statuses(events_of(sandbox, stack), stack)[-2:] == [
        "ROLLBACK_IN_PROGRESS",
        "ROLLBACK_FAILED",
    ]
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/demo/rollback-refused:log-stream:"
    assert ("logs:DeleteLogGroup", group) in denied(sandbox, stack)
    assert "Logs" in reasons(sandbox, stack, "DELETE_FAILED")
    put_policy(sandbox, allow(*LOGS_ALL))
    client.delete_stack(StackName=stack)
    with pytest.raises(botocore.exceptions.ClientError, match="does not exist"):
        status_of(sandbox, stack)
    logs = admin_session(sandbox).client("logs", endpoint_url=sandbox.endpoint)
    assert not logs.describe_log_groups(logGroupNamePrefix="/demo/rollback-refused")["logGroups"]


def test_delete_failed_then_retried(sandbox: LocalSandboxInfo) -> None:
    """DeleteStack without the delete permission: DELETE_FAILED, the resource kept; retried
    with RetainResources, the stack goes and the resource stays."""
    put_policy(sandbox, allow("logs:CreateLogGroup", "logs:DescribeLogGroups"))
    stack = "demo-delete-failed"
    client = cfn(role_session(sandbox, "delete"), sandbox)
    client.create_stack(StackName=stack, TemplateBody=template(Logs=log_group("/demo/keep")))
    assert status_of(sandbox, stack) == "CREATE_COMPLETE"
    client.delete_stack(StackName=stack)
    assert status_of(sandbox, stack) == "DELETE_FAILED"
    assert {a for a, _ in denied(sandbox, stack)} == {"logs:DeleteLogGroup"}
    client.delete_stack(StackName=stack, RetainResources=["Logs"])
    with pytest.raises(botocore.exceptions.ClientError, match="does not exist"):
        status_of(sandbox, stack)
    logs = admin_session(sandbox).client("logs", endpoint_url=sandbox.endpoint)
    assert logs.describe_log_groups(logGroupNamePrefix="/demo/keep")["logGroups"]


def test_update_rollback_failed_and_continued(sandbox: LocalSandboxInfo) -> None:
    """An update sets a retention and adds a queue the caller may not create; the rollback must
    take the retention away (logs:DeleteRetentionPolicy), which it may not either:
    UPDATE_ROLLBACK_FAILED. ContinueUpdateRollback, once granted, finishes it; on a stack that
    is not stuck it is refused."""
    forward = allow(*LOGS_ALL, "logs:PutRetentionPolicy")
    put_policy(sandbox, forward)
    stack = "demo-continue"
    client = cfn(role_session(sandbox, "continue"), sandbox)
    client.create_stack(StackName=stack, TemplateBody=template(Logs=log_group("/demo/continue")))
    assert status_of(sandbox, stack) == "CREATE_COMPLETE"
    with pytest.raises(botocore.exceptions.ClientError, match="can not continue"):
        client.continue_update_rollback(StackName=stack)
    second = template(
        Logs=log_group("/demo/continue", RetentionInDays=7), Queue=queue("demo-continue-q")
    )
    client.update_stack(StackName=stack, TemplateBody=second)
    assert status_of(sandbox, stack) == "UPDATE_ROLLBACK_FAILED"
    events = events_of(sandbox, stack)
    failed = next(e for e in reversed(events) if e["ResourceStatus"] == "UPDATE_ROLLBACK_FAILED")
    assert failed["ResourceStatusReason"] == "The following resource(s) failed to update: [Logs]. "
    assert {a for a, _ in denied(sandbox, stack)} >= {
        "sqs:CreateQueue",
        "logs:DeleteRetentionPolicy",
    }
    put_policy(sandbox, allow(*LOGS_ALL, "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy"))
    client.continue_update_rollback(StackName=stack)
    assert status_of(sandbox, stack) == "UPDATE_ROLLBACK_COMPLETE"
    assert statuses(events_of(sandbox, stack), stack)[-3:] == [
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE",
    ]


def test_replacement_creates_then_deletes_as_the_caller(sandbox: LocalSandboxInfo) -> None:
    """A new name for a log group (a create-only property) replaces it: the new group's create
    is checked, then the old one's delete at cleanup; a refused delete there leaves the old
    group (DELETE_FAILED) and the update still completes."""
    put_policy(sandbox, allow("logs:CreateLogGroup", "logs:DescribeLogGroups"))
    stack = "demo-replace"
    client = cfn(role_session(sandbox, "replace"), sandbox)
    client.create_stack(StackName=stack, TemplateBody=template(Logs=log_group("/demo/old")))
    assert status_of(sandbox, stack) == "CREATE_COMPLETE"
    client.update_stack(StackName=stack, TemplateBody=template(Logs=log_group("/demo/new")))
    assert status_of(sandbox, stack) == "UPDATE_COMPLETE"
    events = events_of(sandbox, stack)
    logs_events = [
        (e["ResourceStatus"], e.get("ResourceStatusReason") or "")
        for e in events
        if e["LogicalResourceId"] == "Logs"
    ]
    assert (
        "UPDATE_IN_PROGRESS",
        "Requested update requires the creation of a new physical resource; hence creating one.",
    ) in logs_events
    old = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/demo/old:log-stream:"
    assert ("logs:DeleteLogGroup", old) in denied(sandbox, stack)
    assert logs_events[-1][0] == "DELETE_FAILED"


def test_a_type_outside_the_overrides_is_checked(sandbox: LocalSandboxInfo) -> None:
    """An HTTP API and a queue policy (no moto model, no hand table of old) are created only
    when the caller may: apigateway:POST on /apis, sqs:SetQueueAttributes on the queue."""
    put_policy(sandbox, allow("sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:DeleteQueue"))
    stack = "demo-generic"
    client = cfn(role_session(sandbox, "generic"), sandbox)
    body = template(
        Api={
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {"Name": "demo", "ProtocolType": "HTTP"},
        },
        Queue=queue("demo-generic-q"),
        QueuePolicy={
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {"Queues": [{"Ref": "Queue"}], "PolicyDocument": {"Statement": []}},
        },
    )
    client.create_stack(StackName=stack, TemplateBody=body)
    assert status_of(sandbox, stack) == "ROLLBACK_COMPLETE"
    found = denied(sandbox, stack)
    assert ("apigateway:POST", f"arn:aws:apigateway:{REGION}::/apis") in found
    put_policy(
        sandbox,
        allow("sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:DeleteQueue"),
        allow("apigateway:POST", "apigateway:GET", "apigateway:DELETE"),
    )
    client.delete_stack(StackName=stack)
    client.create_stack(StackName=stack, TemplateBody=body)
    assert status_of(sandbox, stack) == "ROLLBACK_COMPLETE"
    assert ("sqs:SetQueueAttributes", f"arn:aws:sqs:{REGION}:{ACCOUNT}:demo-generic-q") in denied(
        sandbox, stack
    )


def test_excluded_actions_of_a_stack(sandbox: LocalSandboxInfo, tmp_path: Path) -> None:
    """The control endpoint lists, for the types of a stack's template, what was not checked."""
    put_policy(sandbox, allow(*LOGS_ALL))
    stack = "demo-excluded"
    cfn(role_session(sandbox, "excluded"), sandbox).create_stack(
        StackName=stack, TemplateBody=template(Logs=log_group("/demo/excluded"))
    )
    url = f"{sandbox.endpoint}/_discover/excluded?stack={stack}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback only
        answer = json.load(response)
    assert answer["types"] == ["AWS::Logs::LogGroup"]
    reasons_seen = {e["reason"] for e in answer["excluded"]}
    assert {"not_iam", "read_handler", "list_handler"} <= reasons_seen
    assert any(e["permission"] == "s3:REST.PUT.OBJECT" for e in answer["excluded"])


def test_resources_a_stuck_rollback_kept_are_created_again(sandbox: LocalSandboxInfo) -> None:
    """An update creates a queue, then a topic the caller may not create; the rollback may not
    delete the queue (UPDATE_ROLLBACK_FAILED). Once continued with the delete allowed, the
    stack is as before the update, so the same update creates the queue again (and the topic
    that reads it), rather than taking it for a resource the stack still has."""
    queue_calls = ("sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")
    put_policy(sandbox, allow(*LOGS_ALL, *queue_calls, "sqs:ListQueueTags"))
    stack = "demo-redo"
    client = cfn(role_session(sandbox, "redo"), sandbox)
    client.create_stack(StackName=stack, TemplateBody=template(Logs=log_group("/demo/redo")))
    assert status_of(sandbox, stack) == "CREATE_COMPLETE"
    topic = {
        "Type": "AWS::SNS::Topic",
        "DependsOn": "Queue",
        "Properties": {"DisplayName": {"Fn::GetAtt": ["Queue", "QueueName"]}},
    }
    second = template(Logs=log_group("/demo/redo"), Queue=queue("demo-redo-q"), Topic=topic)
    client.update_stack(StackName=stack, TemplateBody=second)
    assert status_of(sandbox, stack) == "UPDATE_ROLLBACK_FAILED"
    put_policy(sandbox, allow(*LOGS_ALL, "sqs:*"))
    client.continue_update_rollback(StackName=stack)
    assert status_of(sandbox, stack) == "UPDATE_ROLLBACK_COMPLETE"
    sqs = admin_session(sandbox).client("sqs", endpoint_url=sandbox.endpoint)
    assert not sqs.list_queues(QueueNamePrefix="demo-redo-q").get("QueueUrls")
    put_policy(sandbox, allow(*LOGS_ALL, "sqs:*", "sns:*"))
    client.update_stack(StackName=stack, TemplateBody=second)
    assert status_of(sandbox, stack) == "UPDATE_COMPLETE"
    assert sqs.list_queues(QueueNamePrefix="demo-redo-q").get("QueueUrls")
