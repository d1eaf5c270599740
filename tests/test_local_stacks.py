"""Behaviour 4: CloudFormation acts as its caller, fails refused resources, and rolls back.

The stack events it writes are read with ``discover.stack_events.denials_from_events``, which
parses ``*_FAILED`` reasons with the parser that reads AWS.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from discover.denials import Reason
from discover.local.authorize import read_authorization_log
from discover.local.process import LocalSandbox, LocalSandboxInfo
from discover.stack_events import denials_from_events
from tests.conftest import admin_session, role_session

pytestmark = pytest.mark.sandbox

ACCOUNT = "123456789012"
REGION = "us-east-1"
CODE_BUCKET = "demo-code-bucket"
CODE_KEY = "demo/code.zip"
EXISTING_ROLE = "demo-existing-lambdaRole"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{EXISTING_ROLE}"
STACKS = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/demo-*"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
SINCE = datetime.now(UTC) - timedelta(days=1)


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stacks") / "authorization.jsonl"


@pytest.fixture(scope="module")
def sandbox(log_path: Path) -> Iterator[LocalSandboxInfo]:
    with LocalSandbox(authorization_log=log_path) as info:
        admin = admin_session(info)
        s3 = admin.client("s3", endpoint_url=info.endpoint)
        s3.create_bucket(Bucket=CODE_BUCKET)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("index.js", "exports.handler = async () => 'ok';\n")
        s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=archive.getvalue())
        admin.client("iam", endpoint_url=info.endpoint).create_role(
            RoleName=EXISTING_ROLE, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
        )
        yield info


def put_policy(info: LocalSandboxInfo, *statements: dict[str, Any]) -> None:
    """Set the sandbox role's policy: CloudFormation on demo-* stacks, plus ``statements``."""
    base = {"Effect": "Allow", "Action": "cloudformation:*", "Resource": STACKS}
    document = {"Version": "2012-10-17", "Statement": [base, *statements]}
    admin_session(info).client("iam", endpoint_url=info.endpoint).put_role_policy(
        RoleName="discover-sandbox", PolicyName="tests", PolicyDocument=json.dumps(document)
    )


def allow(*actions: str, resource: str = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": list(actions), "Resource": resource, **extra}


def template(**resources: dict[str, Any]) -> str:
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources})


def log_group(name: str, **props: Any) -> dict[str, Any]:
    return {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": name, **props}}


def function(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "FunctionName": name,
            "Runtime": "nodejs22.x",
            "Handler": "index.handler",
            "Role": ROLE_ARN,
            "Code": {"S3Bucket": CODE_BUCKET, "S3Key": CODE_KEY},
        },
    }


def cfn(session: boto3.Session, info: LocalSandboxInfo) -> Any:
    return session.client("cloudformation", endpoint_url=info.endpoint)


def events_of(info: LocalSandboxInfo, stack: str) -> list[dict[str, Any]]:
    """The stack's events, oldest first (as the admin reads them)."""
    admin = cfn(admin_session(info), info)
    events: list[dict[str, Any]] = admin.describe_stack_events(StackName=stack)["StackEvents"]
    return list(reversed(events))


def status_of(info: LocalSandboxInfo, stack: str) -> str:
    stacks = cfn(admin_session(info), info).describe_stacks(StackName=stack)["Stacks"]
    return str(stacks[0]["StackStatus"])


def statuses(events: list[dict[str, Any]], logical_id: str) -> list[str]:
    return [e["ResourceStatus"] for e in events if e["LogicalResourceId"] == logical_id]


def session_arn(session: boto3.Session, info: LocalSandboxInfo) -> str:
    return str(session.client("sts", endpoint_url=info.endpoint).get_caller_identity()["Arn"])


def test_refused_create_fails_the_resource_and_rolls_back(
    sandbox: LocalSandboxInfo, log_path: Path
) -> None:
    """No iam:CreateRole: the role fails with IAM's message as the handler returns it, what was
    created is deleted, the stack ends ROLLBACK_COMPLETE; the log says cloudformation."""
    # The rollback deletes the log group as the caller, so it may.
    put_policy(
        sandbox, allow("logs:CreateLogGroup", "logs:DescribeLogGroups", "logs:DeleteLogGroup")
    )
    session = role_session(sandbox, "create-refused")
    body = template(
        Logs=log_group("/demo/create-refused"),
        Role={
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": "demo-create-refused-role",
                "AssumeRolePolicyDocument": LAMBDA_TRUST,
                "Policies": [{"PolicyName": "inline", "PolicyDocument": {"Statement": []}}],
            },
        },
    )
    cfn(session, sandbox).create_stack(StackName="demo-create-refused", TemplateBody=body)
    assert status_of(sandbox, "demo-create-refused") == "ROLLBACK_COMPLETE"
    events = events_of(sandbox, "demo-create-refused")
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/demo-create-refused-role"
    (failed,) = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    reason = failed["ResourceStatusReason"]
    assert failed["LogicalResourceId"] == "Role"
    assert reason.startswith(
        f'Resource handler returned message: "User: {session_arn(session, sandbox)} is not '
        f"authorized to perform: iam:CreateRole on resource: {role_arn} because no "
        "identity-based policy allows the iam:CreateRole action (Service: Iam, Status Code: "
        "403, Request ID: "
    )
    assert reason.endswith(", HandlerErrorCode: AccessDenied)")
    assert "(RequestToken: " in reason
    assert statuses(events, "Logs") == [
        "CREATE_IN_PROGRESS",
        "CREATE_IN_PROGRESS",
        "CREATE_COMPLETE",
        "DELETE_IN_PROGRESS",
        "DELETE_COMPLETE",
    ]
    stack_events = [e for e in events if e["ResourceType"] == "AWS::CloudFormation::Stack"]
    assert [e["ResourceStatus"] for e in stack_events] == [
        "CREATE_IN_PROGRESS",
        "ROLLBACK_IN_PROGRESS",
        "ROLLBACK_COMPLETE",
    ]
    assert stack_events[1]["ResourceStatusReason"] == (
        "The following resource(s) failed to create: [Role]. Rollback requested by user."
    )
    (denial,) = denials_from_events(events, SINCE)
    assert (denial.action, denial.resource, denial.reason) == (
        "iam:CreateRole",
        role_arn,
        Reason.NO_IDENTITY_POLICY,
    )
    assert denial.source == "stack-event"
    logs = admin_session(sandbox).client("logs", endpoint_url=sandbox.endpoint)
    assert not logs.describe_log_groups(logGroupNamePrefix="/demo/create-refused")["logGroups"]
    from_stack = [r for r in read_authorization_log(log_path) if r["source"] == "cloudformation"]
    assert {
        "action": "iam:CreateRole",
        "resource": role_arn,
        "decision": "implicit-deny",
    }.items() <= next(r for r in from_stack if r["action"] == "iam:CreateRole").items()


def test_wave_reports_each_refusal_and_cancels_the_rest(sandbox: LocalSandboxInfo) -> None:
    """Resources created side by side each make their own first call: both refusals are in the
    events; the one that would have gone ahead is cancelled."""
    put_policy(
        sandbox, allow("logs:CreateLogGroup", "logs:DescribeLogGroups", "logs:DeleteLogGroup")
    )
    session = role_session(sandbox, "wave")
    body = template(
        Queue={"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "demo-wave-jobs"}},
        Logs=log_group("/demo/wave"),
        Topic={"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "demo-wave-notes"}},
    )
    cfn(session, sandbox).create_stack(StackName="demo-wave", TemplateBody=body)
    events = events_of(sandbox, "demo-wave")
    failed = {
        e["LogicalResourceId"]: e["ResourceStatusReason"]
        for e in events
        if e["ResourceStatus"] == "CREATE_FAILED"
    }
    assert failed["Logs"] == "Resource creation cancelled"
    denials = {(d.action, d.resource) for d in denials_from_events(events, SINCE)}
    assert denials == {
        ("sqs:CreateQueue", f"arn:aws:sqs:{REGION}:{ACCOUNT}:demo-wave-jobs"),
        ("sns:CreateTopic", f"arn:aws:sns:{REGION}:{ACCOUNT}:demo-wave-notes"),
    }
    assert status_of(sandbox, "demo-wave") == "ROLLBACK_COMPLETE"


def test_refused_update_rolls_back_to_what_was(sandbox: LocalSandboxInfo) -> None:
    """An update that adds a queue the caller may not create: UPDATE_ROLLBACK_COMPLETE, the
    log group from before still there, no queue."""
    put_policy(sandbox, allow("logs:CreateLogGroup", "logs:DescribeLogGroups"))
    session = role_session(sandbox, "update-refused")
    client = cfn(session, sandbox)
    first = template(Logs=log_group("/demo/update-refused"))
    client.create_stack(StackName="demo-update-refused", TemplateBody=first)
    assert status_of(sandbox, "demo-update-refused") == "CREATE_COMPLETE"
    with pytest.raises(botocore.exceptions.ClientError, match="No updates are to be performed"):
        client.update_stack(StackName="demo-update-refused", TemplateBody=first)
    second = template(
        Logs=log_group("/demo/update-refused"),
        Queue={"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "demo-update-jobs"}},
    )
    client.update_stack(StackName="demo-update-refused", TemplateBody=second)
    assert status_of(sandbox, "demo-update-refused") == "UPDATE_ROLLBACK_COMPLETE"
    events = events_of(sandbox, "demo-update-refused")
    stack_statuses = statuses(events, "demo-update-refused")
    assert stack_statuses[-4:] == [
        "UPDATE_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE",
    ]
    assert statuses(events, "Queue") == ["CREATE_IN_PROGRESS", "CREATE_FAILED", "DELETE_COMPLETE"]
    rollback = next(e for e in events if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS")
    assert rollback["ResourceStatusReason"] == (
        "The following resource(s) failed to create: [Queue]. "
    )
    (denial,) = denials_from_events(events, SINCE)
    assert denial.action == "sqs:CreateQueue"
    admin = admin_session(sandbox)
    logs = admin.client("logs", endpoint_url=sandbox.endpoint)
    assert logs.describe_log_groups(logGroupNamePrefix="/demo/update-refused")["logGroups"]
    sqs = admin.client("sqs", endpoint_url=sandbox.endpoint)
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="demo-update-jobs")
    resources = cfn(admin, sandbox).list_stack_resources(StackName="demo-update-refused")
    assert [r["LogicalResourceId"] for r in resources["StackResourceSummaries"]] == ["Logs"]


def test_change_set_executes_as_its_caller(sandbox: LocalSandboxInfo) -> None:
    """ExecuteChangeSet (how the Serverless CLI deploys) checks the executing principal."""
    put_policy(sandbox, allow("logs:DescribeLogGroups"))
    session = role_session(sandbox, "change-set")
    client = cfn(session, sandbox)
    client.create_change_set(
        StackName="demo-change-set",
        ChangeSetName="first",
        ChangeSetType="CREATE",
        TemplateBody=template(Logs=log_group("/demo/change-set")),
    )
    client.execute_change_set(StackName="demo-change-set", ChangeSetName="first")
    assert status_of(sandbox, "demo-change-set") == "ROLLBACK_COMPLETE"
    (denial,) = denials_from_events(events_of(sandbox, "demo-change-set"), SINCE)
    assert (denial.action, denial.resource) == (
        "logs:CreateLogGroup",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/demo/change-set:log-stream:",
    )
    described = client.describe_change_set(StackName="demo-change-set", ChangeSetName="first")
    assert described["ExecutionStatus"] == "EXECUTE_FAILED"


LAMBDA_CALLS = ("lambda:CreateFunction", "lambda:GetFunction")
CODE_OBJECT = f"arn:aws:s3:::{CODE_BUCKET}/{CODE_KEY}"


@pytest.mark.parametrize(
    ("name", "passed_to", "allowed"),
    [
        ("passed to Lambda", "lambda.amazonaws.com", True),
        ("only to ECS", "ecs-tasks.amazonaws.com", False),
    ],
)
def test_pass_role_is_checked_with_the_service_it_goes_to(
    sandbox: LocalSandboxInfo, name: str, passed_to: str, allowed: bool
) -> None:
    """iam:PassRole for a function's role carries iam:PassedToService=lambda.amazonaws.com, so a
    condition on it holds for Lambda and refuses otherwise."""
    put_policy(
        sandbox,
        allow(*LAMBDA_CALLS),
        allow("s3:GetObject", resource=CODE_OBJECT),
        allow(
            "iam:PassRole",
            resource=ROLE_ARN,
            Condition={"StringEquals": {"iam:PassedToService": passed_to}},
        ),
    )
    session = role_session(sandbox, "pass-role")
    stack = f"demo-pass-role-{'ok' if allowed else 'refused'}"
    fn_name = f"{stack}-fn"
    cfn(session, sandbox).create_stack(StackName=stack, TemplateBody=template(Fn=function(fn_name)))
    if allowed:
        assert status_of(sandbox, stack) == "CREATE_COMPLETE"
        return
    assert status_of(sandbox, stack) == "ROLLBACK_COMPLETE"
    events = events_of(sandbox, stack)
    (failed,) = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    assert "(Service: Lambda, Status Code: 403" in failed["ResourceStatusReason"]
    (denial,) = denials_from_events(events, SINCE)
    assert (denial.action, denial.resource) == ("iam:PassRole", ROLE_ARN)


def test_function_code_is_read_with_the_callers_permissions(sandbox: LocalSandboxInfo) -> None:
    """Without s3:GetObject on the code, Lambda relays S3's refusal; the S3 detail names it."""
    put_policy(sandbox, allow(*LAMBDA_CALLS), allow("iam:PassRole", resource=ROLE_ARN))
    session = role_session(sandbox, "code")
    cfn(session, sandbox).create_stack(
        StackName="demo-code", TemplateBody=template(Fn=function("demo-code-fn"))
    )
    events = events_of(sandbox, "demo-code")
    (failed,) = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    assert failed["ResourceStatusReason"].startswith(
        'Resource handler returned message: "Your access has been denied by S3, please make sure '
        f"your request credentials have permission to GetObject for {CODE_BUCKET}/{CODE_KEY}. "
        "S3 Error Code: AccessDenied. S3 Error Message: User: "
    )
    (denial,) = denials_from_events(events, SINCE)
    assert (denial.action, denial.resource) == ("s3:GetObject", CODE_OBJECT)


@pytest.mark.parametrize(
    ("name", "properties", "refused"),
    [
        ("no retention: one call", {}, None),
        ("a retention adds its call", {"RetentionInDays": 14}, "logs:PutRetentionPolicy"),
    ],
)
def test_calls_follow_the_properties(
    sandbox: LocalSandboxInfo, name: str, properties: dict[str, Any], refused: str | None
) -> None:
    """A property the template sets makes the handler call more (and need more)."""
    put_policy(sandbox, allow("logs:CreateLogGroup", "logs:DescribeLogGroups"))
    stack = f"demo-props-{len(properties)}"
    cfn(role_session(sandbox, "props"), sandbox).create_stack(
        StackName=stack, TemplateBody=template(Logs=log_group(f"/demo/{stack}", **properties))
    )
    denials = denials_from_events(events_of(sandbox, stack), SINCE)
    if refused is None:
        assert status_of(sandbox, stack) == "CREATE_COMPLETE"
        assert not denials
    else:
        assert [d.action for d in denials] == [refused]


def test_delete_as_the_caller(sandbox: LocalSandboxInfo) -> None:
    """Deleting needs the delete calls: refused, the resource stays and the stack is
    DELETE_FAILED; the admin can delete it."""
    put_policy(sandbox, allow("logs:CreateLogGroup", "logs:DescribeLogGroups"))
    client = cfn(role_session(sandbox, "delete"), sandbox)
    client.create_stack(
        StackName="demo-delete", TemplateBody=template(Logs=log_group("/demo/delete"))
    )
    client.delete_stack(StackName="demo-delete")
    assert status_of(sandbox, "demo-delete") == "DELETE_FAILED"
    events = events_of(sandbox, "demo-delete")
    (denial,) = denials_from_events(events, SINCE)
    assert denial.action == "logs:DeleteLogGroup"
    assert statuses(events, "Logs")[-2:] == ["DELETE_IN_PROGRESS", "DELETE_FAILED"]
    admin = cfn(admin_session(sandbox), sandbox)
    admin.delete_stack(StackName="demo-delete")
    assert not [
        s
        for s in admin.list_stacks()["StackSummaries"]
        if s["StackName"] == "demo-delete" and s["StackStatus"] != "DELETE_COMPLETE"
    ]


def test_a_stack_a_delete_left_half_done_lists_what_it_still_has(
    sandbox: LocalSandboxInfo,
) -> None:
    """DELETE_FAILED after one of two resources went: the stack's resources are read without a
    server error (the admin's recovery reads them first), the one left is there, the other not."""
    put_policy(
        sandbox,
        allow("logs:CreateLogGroup", "logs:DescribeLogGroups"),
        allow(
            "logs:DeleteLogGroup",
            resource=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/demo/half-a*",
        ),
    )
    client = cfn(role_session(sandbox, "half"), sandbox)
    body = template(A=log_group("/demo/half-a"), B=log_group("/demo/half-b"))
    client.create_stack(StackName="demo-half", TemplateBody=body)
    client.delete_stack(StackName="demo-half")
    assert status_of(sandbox, "demo-half") == "DELETE_FAILED"
    admin = cfn(admin_session(sandbox), sandbox)
    listed = admin.describe_stack_resources(StackName="demo-half")["StackResources"]
    assert [r["LogicalResourceId"] for r in listed] == ["B"]
    detail = admin.describe_stack_resource(StackName="demo-half", LogicalResourceId="B")
    assert detail["StackResourceDetail"]["PhysicalResourceId"] == "/demo/half-b"
    with pytest.raises(botocore.exceptions.ClientError, match="Resource A does not exist"):
        admin.describe_stack_resource(StackName="demo-half", LogicalResourceId="A")
    admin.delete_stack(StackName="demo-half")


def test_calls_on_the_callers_behalf_say_so(sandbox: LocalSandboxInfo) -> None:
    """A policy that allows log groups only through CloudFormation (aws:CalledVia) lets the
    stack create one and refuses the same call made directly."""
    via_cloudformation = {
        "ForAnyValue:StringEquals": {"aws:CalledVia": "cloudformation.amazonaws.com"}
    }
    put_policy(
        sandbox,
        allow("logs:CreateLogGroup", "logs:DescribeLogGroups", Condition=via_cloudformation),
    )
    session = role_session(sandbox, "called-via")
    cfn(session, sandbox).create_stack(
        StackName="demo-called-via", TemplateBody=template(Logs=log_group("/demo/called-via"))
    )
    assert status_of(sandbox, "demo-called-via") == "CREATE_COMPLETE"
    logs = session.client("logs", endpoint_url=sandbox.endpoint)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        logs.create_log_group(logGroupName="/demo/called-directly")
    assert "logs:CreateLogGroup" in caught.value.response["Error"]["Message"]
