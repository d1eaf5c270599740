"""Behaviour 1: the sandbox refuses in AWS's words and in each protocol's own error shape.

Every refusal is read back by ``discover.denials.parse_denials``, the parser that reads AWS.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import botocore.exceptions
import pytest

from discover.denials import Reason, parse_denials
from discover.local.process import LocalSandbox, LocalSandboxInfo
from tests.conftest import admin_session, role_session

pytestmark = pytest.mark.sandbox

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "demo-messages-bucket"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandboxInfo]:
    log = tmp_path_factory.mktemp("messages") / "authorization.jsonl"
    with LocalSandbox(authorization_log=log) as info:
        admin_session(info).client("s3", endpoint_url=info.endpoint).create_bucket(Bucket=BUCKET)
        yield info


@pytest.fixture(scope="module")
def session(sandbox: LocalSandboxInfo) -> boto3.Session:
    return role_session(sandbox, "messages")


def session_arn(session: boto3.Session, info: LocalSandboxInfo) -> str:
    sts = session.client("sts", endpoint_url=info.endpoint)
    return str(sts.get_caller_identity()["Arn"])


Call = Callable[[Any], Any]

# (name, service, call, IAM action, resource, status, error code, body: "xml" | "json")
CASES: list[tuple[str, str, Call, str, str, int, str, str]] = [
    (
        "cloudformation (query)",
        "cloudformation",
        lambda c: c.describe_stacks(StackName="demo-dev"),
        "cloudformation:DescribeStacks",
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/demo-dev/*",
        403,
        "AccessDenied",
        "xml",
    ),
    (
        "iam (query)",
        "iam",
        lambda c: c.create_role(RoleName="demo-role", AssumeRolePolicyDocument="{}"),
        "iam:CreateRole",
        f"arn:aws:iam::{ACCOUNT}:role/demo-role",
        403,
        "AccessDenied",
        "xml",
    ),
    (
        "sns (query, SNS: in capitals)",
        "sns",
        lambda c: c.create_topic(Name="demo-topic"),
        "sns:CreateTopic",
        f"arn:aws:sns:{REGION}:{ACCOUNT}:demo-topic",
        403,
        "AuthorizationError",
        "xml",
    ),
    (
        "s3 object (rest-xml, quoted)",
        "s3",
        lambda c: c.put_object(Bucket=BUCKET, Key="a/b.zip", Body=b"x"),
        "s3:PutObject",
        f"arn:aws:s3:::{BUCKET}/a/b.zip",
        403,
        "AccessDenied",
        "xml",
    ),
    (
        "s3 listing is s3:ListBucket",
        "s3",
        lambda c: c.list_objects_v2(Bucket=BUCKET),
        "s3:ListBucket",
        f"arn:aws:s3:::{BUCKET}",
        403,
        "AccessDenied",
        "xml",
    ),
    (
        "lambda (rest-json)",
        "lambda",
        lambda c: c.get_function(FunctionName="demo-fn"),
        "lambda:GetFunction",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:demo-fn",
        403,
        "AccessDeniedException",
        "json",
    ),
    (
        "logs (json, on the group's streams)",
        "logs",
        lambda c: c.create_log_group(logGroupName="/aws/lambda/demo"),
        "logs:CreateLogGroup",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/demo:log-stream:",
        400,
        "AccessDeniedException",
        "json",
    ),
    (
        "dynamodb (json)",
        "dynamodb",
        lambda c: c.describe_table(TableName="demo-table"),
        "dynamodb:DescribeTable",
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/demo-table",
        400,
        "AccessDeniedException",
        "json",
    ),
    (
        "sqs (json)",
        "sqs",
        lambda c: c.create_queue(QueueName="demo-queue"),
        "sqs:CreateQueue",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:demo-queue",
        403,
        "AccessDenied",
        "json",
    ),
    (
        "events (json)",
        "events",
        lambda c: c.put_rule(Name="demo-rule", ScheduleExpression="rate(1 hour)"),
        "events:PutRule",
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/demo-rule",
        400,
        "AccessDeniedException",
        "json",
    ),
    (
        "apigateway (rest-json, by HTTP method on a path)",
        "apigateway",
        lambda c: c.get_rest_apis(),
        "apigateway:GET",
        f"arn:aws:apigateway:{REGION}::/restapis",
        403,
        "AccessDeniedException",
        "json",
    ),
]


@pytest.mark.parametrize(
    ("name", "service", "call", "action", "resource", "status", "code", "body_shape"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_refusal_reads_as_aws(  # noqa: PLR0917 - one argument per column of the table
    sandbox: LocalSandboxInfo,
    session: boto3.Session,
    name: str,
    service: str,
    call: Call,
    action: str,
    resource: str,
    status: int,
    code: str,
    body_shape: str,
) -> None:
    """An empty role is refused with AWS's message, in the protocol's shape; the parser reads
    back the principal, the IAM action, the resource and the reason."""
    client = session.client(cast(Any, service), endpoint_url=sandbox.endpoint)
    raw: dict[str, Any] = {}

    def keep(response_dict: dict[str, Any], **_: Any) -> None:
        raw.update(response_dict)

    client.meta.events.register("before-parse", keep)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(client)
    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    body = raw["body"].decode() if isinstance(raw["body"], bytes) else str(raw["body"])
    if body_shape == "json":
        decoded = json.loads(body)
        assert "__type" in decoded
        assert "message" in decoded
    else:
        assert body.lstrip().startswith("<")
        assert "<Message>" in body
    principal = session_arn(session, sandbox)
    message = error["Error"]["Message"]
    (denial,) = parse_denials(message)
    assert denial.principal == principal
    assert denial.action == action
    assert denial.resource == resource
    assert denial.reason is Reason.NO_IDENTITY_POLICY
    if service == "s3":
        assert f'on resource: "{resource}"' in message


def test_sdk_message_with_operation_reads_back(
    sandbox: LocalSandboxInfo, session: boto3.Session
) -> None:
    """The SDK's full error line ("An error occurred (...) when calling ...") parses too."""
    iam = session.client("iam", endpoint_url=sandbox.endpoint)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        iam.create_role(RoleName="other-role", AssumeRolePolicyDocument="{}")
    (denial,) = parse_denials(str(caught.value))
    assert denial.action == "iam:CreateRole"
    assert denial.resource == f"arn:aws:iam::{ACCOUNT}:role/other-role"


def test_authorization_log_records_every_decision(tmp_path: Path) -> None:
    """Each decision is a JSON line: time, principal, action, resource, decision, source."""
    with LocalSandbox(authorization_log=tmp_path / "log.jsonl") as info:
        role = role_session(info, "logged")
        with pytest.raises(botocore.exceptions.ClientError):
            role.client("sqs", endpoint_url=info.endpoint).create_queue(QueueName="logged")
        lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    refused = [r for r in lines if r["action"] == "sqs:CreateQueue"]
    assert len(refused) == 1
    record = refused[0]
    assert {"time", "principal", "action", "resource", "decision", "source"} <= set(record)
    assert record["decision"] == "implicit-deny"
    assert record["source"] == "direct"
    assert record["resource"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:logged"
    assert record["principal"].endswith(":assumed-role/discover-sandbox/logged")
