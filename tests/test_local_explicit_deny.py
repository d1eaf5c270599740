"""Behaviour 5: an explicit Deny wins over any Allow, and says so as AWS does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
import pytest

from discover.denials import Reason, parse_denials
from discover.local.process import LocalSandbox, LocalSandboxInfo
from discover.stack_events import denials_from_events
from tests.conftest import admin_session, role_session

pytestmark = pytest.mark.sandbox

ACCOUNT = "123456789012"
ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}
TRUST = json.dumps({"Version": "2012-10-17", "Statement": []})


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandboxInfo]:
    with LocalSandbox(authorization_log=tmp_path_factory.mktemp("deny") / "log.jsonl") as info:
        yield info


def set_policies(info: LocalSandboxInfo, **documents: list[dict[str, Any]]) -> None:
    iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
    for name in iam.list_role_policies(RoleName="discover-sandbox")["PolicyNames"]:
        iam.delete_role_policy(RoleName="discover-sandbox", PolicyName=name)
    for name, statements in documents.items():
        iam.put_role_policy(
            RoleName="discover-sandbox",
            PolicyName=name,
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )


def test_inline_deny_beats_allow_all(sandbox: LocalSandboxInfo) -> None:
    """Allow */* and a Deny on demo-* roles: demo-* is refused with an explicit deny, the
    parser classifies it as unfixable, and other roles go through."""
    set_policies(
        sandbox,
        allow_all=[ALLOW_ALL],
        guard=[
            {
                "Effect": "Deny",
                "Action": "iam:CreateRole",
                "Resource": f"arn:aws:iam::{ACCOUNT}:role/demo-*",
            }
        ],
    )
    iam = role_session(sandbox, "deny").client("iam", endpoint_url=sandbox.endpoint)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        iam.create_role(RoleName="demo-denied", AssumeRolePolicyDocument=TRUST)
    message = caught.value.response["Error"]["Message"]
    assert message.endswith("with an explicit deny in an identity-based policy")
    (denial,) = parse_denials(message)
    assert denial.reason is Reason.EXPLICIT_DENY_IDENTITY
    assert not denial.reason.fixable
    assert denial.resource == f"arn:aws:iam::{ACCOUNT}:role/demo-denied"
    iam.create_role(RoleName="other-allowed", AssumeRolePolicyDocument=TRUST)


def test_attached_managed_deny_beats_inline_allow(sandbox: LocalSandboxInfo) -> None:
    """A Deny in an attached managed policy counts as much as an inline one."""
    set_policies(sandbox, allow_all=[ALLOW_ALL])
    admin_iam = admin_session(sandbox).client("iam", endpoint_url=sandbox.endpoint)
    arn = admin_iam.create_policy(
        PolicyName="no-queues",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Action": "sqs:*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    admin_iam.attach_role_policy(RoleName="discover-sandbox", PolicyArn=arn)
    try:
        sqs = role_session(sandbox, "managed").client("sqs", endpoint_url=sandbox.endpoint)
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            sqs.create_queue(QueueName="denied-queue")
        (denial,) = parse_denials(caught.value.response["Error"]["Message"])
        assert denial.reason is Reason.EXPLICIT_DENY_IDENTITY
        assert denial.action == "sqs:CreateQueue"
    finally:
        admin_iam.detach_role_policy(RoleName="discover-sandbox", PolicyArn=arn)


def test_deny_applies_to_what_cloudformation_does_for_the_caller(
    sandbox: LocalSandboxInfo,
) -> None:
    """Allow */* with a Deny on logs:CreateLogGroup: the stack's log group fails with the
    explicit-deny message, read from the stack events as unfixable."""
    set_policies(
        sandbox,
        allow_all=[ALLOW_ALL],
        guard=[{"Effect": "Deny", "Action": "logs:CreateLogGroup", "Resource": "*"}],
    )
    cfn = role_session(sandbox, "deny-stack").client(
        "cloudformation", endpoint_url=sandbox.endpoint
    )
    body = {
        "Resources": {
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/demo/deny"}}
        }
    }
    cfn.create_stack(StackName="demo-deny", TemplateBody=json.dumps(body))
    events = cfn.describe_stack_events(StackName="demo-deny")["StackEvents"]
    (denial,) = denials_from_events(events, datetime.now(UTC) - timedelta(days=1))
    assert denial.action == "logs:CreateLogGroup"
    assert denial.reason is Reason.EXPLICIT_DENY_IDENTITY
    assert cfn.describe_stacks(StackName="demo-deny")["Stacks"][0]["StackStatus"] == (
        "ROLLBACK_COMPLETE"
    )
