"""Behaviour 3: the resource a request acts on is matched against the policy's Resource.

For each kind of resource the sample services use, a policy scoped to one pattern lets the
request through on a matching resource and refuses it, naming the ARN, on another.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, cast

import botocore.exceptions
import pytest

from discover.denials import parse_denials
from discover.local.process import LocalSandbox, LocalSandboxInfo
from tests.conftest import admin_session, role_session

pytestmark = pytest.mark.sandbox

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "demo-resources-bucket"
ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "AuthorizationError"}
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandboxInfo]:
    log = tmp_path_factory.mktemp("resources") / "authorization.jsonl"
    with LocalSandbox(authorization_log=log) as info:
        admin_session(info).client("s3", endpoint_url=info.endpoint).create_bucket(Bucket=BUCKET)
        yield info


Call = Callable[[Any], Any]

# (name, service, action, allowed pattern, call on a matching resource, call on another,
#  the other's ARN)
CASES: list[tuple[str, str, str, str, Call, Call, str]] = [
    (
        "stack",
        "cloudformation",
        "cloudformation:DescribeStacks",
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/demo-dev/*",
        lambda c: c.describe_stacks(StackName="demo-dev"),
        lambda c: c.describe_stacks(StackName="other-dev"),
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/other-dev/*",
    ),
    (
        "function",
        "lambda",
        "lambda:GetFunction",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:demo-dev-*",
        lambda c: c.get_function(FunctionName="demo-dev-hello"),
        lambda c: c.get_function(FunctionName="other-dev-hello"),
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other-dev-hello",
    ),
    (
        "log group",
        "logs",
        "logs:CreateLogGroup",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/demo-dev-*",
        lambda c: c.create_log_group(logGroupName="/aws/lambda/demo-dev-hello"),
        lambda c: c.create_log_group(logGroupName="/aws/lambda/other-dev-hello"),
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/other-dev-hello:log-stream:",
    ),
    (
        "table",
        "dynamodb",
        "dynamodb:DescribeTable",
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/demo-dev-*",
        lambda c: c.describe_table(TableName="demo-dev-items"),
        lambda c: c.describe_table(TableName="other-dev-items"),
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/other-dev-items",
    ),
    (
        "queue",
        "sqs",
        "sqs:CreateQueue",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:demo-dev-*",
        lambda c: c.create_queue(QueueName="demo-dev-jobs"),
        lambda c: c.create_queue(QueueName="other-dev-jobs"),
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:other-dev-jobs",
    ),
    (
        "topic",
        "sns",
        "sns:CreateTopic",
        f"arn:aws:sns:{REGION}:{ACCOUNT}:demo-dev-*",
        lambda c: c.create_topic(Name="demo-dev-notes"),
        lambda c: c.create_topic(Name="other-dev-notes"),
        f"arn:aws:sns:{REGION}:{ACCOUNT}:other-dev-notes",
    ),
    (
        "events rule",
        "events",
        "events:PutRule",
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/demo-dev-*",
        lambda c: c.put_rule(Name="demo-dev-sweep", ScheduleExpression="rate(1 hour)"),
        lambda c: c.put_rule(Name="other-dev-sweep", ScheduleExpression="rate(1 hour)"),
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/other-dev-sweep",
    ),
    (
        "bucket",
        "s3",
        "s3:ListBucket",
        f"arn:aws:s3:::{BUCKET}",
        lambda c: c.list_objects_v2(Bucket=BUCKET),
        lambda c: c.list_objects_v2(Bucket="other-bucket"),
        "arn:aws:s3:::other-bucket",
    ),
    (
        "object",
        "s3",
        "s3:PutObject",
        f"arn:aws:s3:::{BUCKET}/serverless/demo/dev/*",
        lambda c: c.put_object(Bucket=BUCKET, Key="serverless/demo/dev/1/a.zip", Body=b"x"),
        lambda c: c.put_object(Bucket=BUCKET, Key="serverless/other/dev/1/a.zip", Body=b"x"),
        f"arn:aws:s3:::{BUCKET}/serverless/other/dev/1/a.zip",
    ),
    (
        "role",
        "iam",
        "iam:CreateRole",
        f"arn:aws:iam::{ACCOUNT}:role/demo-dev-*",
        lambda c: c.create_role(RoleName="demo-dev-lambdaRole", AssumeRolePolicyDocument=TRUST),
        lambda c: c.create_role(RoleName="other-dev-lambdaRole", AssumeRolePolicyDocument=TRUST),
        f"arn:aws:iam::{ACCOUNT}:role/other-dev-lambdaRole",
    ),
]


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response["Error"]["Code"])


def _outcome(call: Call, client: Any) -> str:
    """The error code a call ends in ("" when it succeeds)."""
    try:
        call(client)
    except botocore.exceptions.ClientError as error:
        return _code(error)
    return ""


@pytest.mark.parametrize(
    ("name", "service", "action", "pattern", "matching", "other", "other_arn"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_scoped_policy(  # noqa: PLR0917 - one argument per column of the table
    sandbox: LocalSandboxInfo,
    name: str,
    service: str,
    action: str,
    pattern: str,
    matching: Call,
    other: Call,
    other_arn: str,
) -> None:
    """Allowed on a resource the pattern matches; refused, naming the ARN, on another."""
    iam = admin_session(sandbox).client("iam", endpoint_url=sandbox.endpoint)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": pattern}],
    }
    iam.put_role_policy(
        RoleName="discover-sandbox", PolicyName="tests", PolicyDocument=json.dumps(policy)
    )
    client = role_session(sandbox, f"scoped-{service}").client(
        cast(Any, service), endpoint_url=sandbox.endpoint
    )
    # Allowed through: whatever the service answers next (not found, ...) is not a denial.
    assert _outcome(matching, client) not in ACCESS_DENIED
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        other(client)
    assert _code(caught.value) in ACCESS_DENIED
    (denial,) = parse_denials(caught.value.response["Error"]["Message"])
    assert (denial.action, denial.resource) == (action, other_arn)
