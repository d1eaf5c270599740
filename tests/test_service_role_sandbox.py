"""The local sandbox deploys with a CloudFormation service role as AWS does.

A real sandbox server process: it bootstraps an empty service role trusted by
``cloudformation.amazonaws.com``; a stack operation given it checks ``iam:PassRole`` of it for
the caller (to CloudFormation), refuses a role CloudFormation cannot assume, and makes every
resource handler call as ``assumed-role/ROLE/AWSCloudFormation`` with the role's permissions
only, so the stack events name that session.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.exceptions
import pytest

from discover.local.process import LocalSandboxInfo
from tests.conftest import admin_session, role_session

pytestmark = pytest.mark.sandbox

QUEUE_TEMPLATE = json.dumps(
    {"Resources": {"Jobs": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs"}}}}
)
CALLER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "cloudformation:CreateStack",
                "cloudformation:DeleteStack",
                "cloudformation:DescribeStacks",
                "cloudformation:DescribeStackEvents",
            ],
            "Resource": "*",
        }
    ],
}


def pass_role(role_arn: str, service: str) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": role_arn,
        "Condition": {"StringEquals": {"iam:PassedToService": service}},
    }


def put(info: LocalSandboxInfo, role_name: str, *statements: dict[str, Any]) -> None:
    iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    iam.put_role_policy(RoleName=role_name, PolicyName="test", PolicyDocument=json.dumps(document))


def failures(cloudformation: Any, stack: str) -> list[str]:
    events = cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
    return [
        str(e.get("ResourceStatusReason", ""))
        for e in events
        if e["ResourceStatus"].endswith("_FAILED") and e["LogicalResourceId"] != stack
    ]


def test_the_sandbox_bootstraps_an_empty_service_role(sandbox: LocalSandboxInfo) -> None:
    assert sandbox.service_role_arn is not None
    iam = admin_session(sandbox).client("iam", endpoint_url=sandbox.endpoint)
    role = iam.get_role(RoleName=sandbox.service_role_arn.rsplit("/", 1)[-1])["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == []
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []


def test_cloudformation_acts_as_the_service_role(sandbox: LocalSandboxInfo) -> None:
    """PassRole first (to CloudFormation only), then the handlers run as the role's session:
    denied what the role lacks (the caller's permissions do not count), then created with
    what the role has while the caller still has no sqs permission at all."""
    service_role = sandbox.service_role_arn
    assert service_role is not None
    role_name = service_role.rsplit("/", 1)[-1]
    cloudformation = role_session(sandbox).client("cloudformation", endpoint_url=sandbox.endpoint)
    put(sandbox, "discover-sandbox", *CALLER_POLICY["Statement"])
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        cloudformation.create_stack(
            StackName="queue-a", TemplateBody=QUEUE_TEMPLATE, RoleARN=service_role
        )
    message = str(refused.value)
    assert "not authorized to perform: iam:PassRole" in message
    assert service_role in message

    # PassRole to another service does not let CloudFormation have it.
    put(
        sandbox,
        "discover-sandbox",
        *CALLER_POLICY["Statement"],
        pass_role(service_role, "lambda.amazonaws.com"),
    )
    with pytest.raises(botocore.exceptions.ClientError, match="iam:PassRole"):
        cloudformation.create_stack(
            StackName="queue-a", TemplateBody=QUEUE_TEMPLATE, RoleARN=service_role
        )

    # The caller may do everything with SQS: CloudFormation still acts as the empty role.
    put(
        sandbox,
        "discover-sandbox",
        *CALLER_POLICY["Statement"],
        pass_role(service_role, "cloudformation.amazonaws.com"),
        {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
    )
    cloudformation.create_stack(
        StackName="queue-a", TemplateBody=QUEUE_TEMPLATE, RoleARN=service_role
    )
    stack = cloudformation.describe_stacks(StackName="queue-a")["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert stack.get("RoleARN") == service_role
    (reason,) = failures(cloudformation, "queue-a")
    session = f"arn:aws:sts::{sandbox.account}:assumed-role/{role_name}/AWSCloudFormation"
    assert f"User: {session} is not authorized to perform: sqs:CreateQueue" in reason

    # The role gets SQS; the caller loses it: the stack is created all the same.
    put(sandbox, role_name, {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"})
    put(
        sandbox,
        "discover-sandbox",
        *CALLER_POLICY["Statement"],
        pass_role(service_role, "cloudformation.amazonaws.com"),
    )
    cloudformation.create_stack(
        StackName="queue-b", TemplateBody=QUEUE_TEMPLATE, RoleARN=service_role
    )
    stack = cloudformation.describe_stacks(StackName="queue-b")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", failures(cloudformation, "queue-b")


def test_a_role_cloudformation_cannot_assume_is_refused(sandbox: LocalSandboxInfo) -> None:
    """The sandbox role trusts the admin, not CloudFormation: AWS's ValidationError, at the
    call, and no stack is left behind."""
    cloudformation = admin_session(sandbox).client("cloudformation", endpoint_url=sandbox.endpoint)
    for role in (sandbox.role_arn, f"arn:aws:iam::{sandbox.account}:role/missing"):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            cloudformation.create_stack(StackName="q", TemplateBody=QUEUE_TEMPLATE, RoleARN=role)
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert f"Role {role} is invalid or cannot be assumed" in str(refused.value)
        with pytest.raises(botocore.exceptions.ClientError) as change_set:
            cloudformation.create_change_set(
                StackName="q",
                ChangeSetName="c",
                ChangeSetType="CREATE",
                TemplateBody=QUEUE_TEMPLATE,
                RoleARN=role,
            )
        assert "is invalid or cannot be assumed" in str(change_set.value)
    names = [s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]]
    assert "q" not in names
