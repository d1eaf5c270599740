"""The fence: what a service owns, from its stack name, its template and its CLI's names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from discover.fence import (
    build_fence,
    deployment_bucket_of,
    read_packaged_template,
    resolve,
    template_resources,
)
from discover.iamdb import Action
from tests.conftest import FIXTURES

ACCOUNT = "123456789012"
PSEUDO = {"AWS::StackName": "s-dev", "AWS::Region": "eu-west-1", "AWS::AccountId": ACCOUNT}
TEMPLATE = json.loads((FIXTURES / "templates" / "hello-dev.json").read_text())


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("a string", "items-dev", "items-dev"),
        ("Ref of a pseudo parameter", {"Ref": "AWS::Region"}, "eu-west-1"),
        ("Ref of a resource: unknown", {"Ref": "Other"}, None),
        ("Fn::Join", {"Fn::Join": ["-", ["a", {"Ref": "AWS::StackName"}]]}, "a-s-dev"),
        ("Fn::Sub", {"Fn::Sub": "${AWS::StackName}-q-${AWS::AccountId}"}, f"s-dev-q-{ACCOUNT}"),
        ("Fn::Sub with variables", {"Fn::Sub": ["${X}-t", {"X": "y"}]}, "y-t"),
        ("Fn::Sub of a parameter: unknown", {"Fn::Sub": "${Stage}-t"}, None),
        ("Fn::GetAtt: unknown", {"Fn::GetAtt": ["F", "Arn"]}, None),
        ("a list: unknown", ["a"], None),
    ],
)
def test_resolve(name: str, value: Any, expected: str | None) -> None:
    """Template values resolve over pseudo parameters only; anything else is unknown."""
    assert resolve(value, PSEUDO) == expected, name


def test_template_resources_name_what_the_template_names() -> None:
    """The sample template's physical names: function, role (Fn::Join), log group, API."""
    found = {
        r.logical_id: r.name
        for r in template_resources(
            TEMPLATE, stack_name="hello-dev", region="us-east-1", account=ACCOUNT
        )
    }
    assert found["HelloLambdaFunction"] == "hello-dev-hello"
    assert found["IamRoleLambdaExecution"] == "hello-dev-us-east-1-lambdaRole"
    assert found["HelloLogGroup"] == "/aws/lambda/hello-dev-hello"
    assert found["ServerlessDeploymentBucket"] is None  # CloudFormation generates it


FENCE = build_fence(
    stack_name="hello-dev",
    service="hello",
    stage="dev",
    region="us-east-1",
    account=ACCOUNT,
    template=TEMPLATE,
    deployment_bucket="my-artifacts",
)


@pytest.mark.parametrize(
    ("name", "action", "resource", "inside"),
    [
        (
            "the stack",
            "cloudformation:DescribeStacks",
            f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/hello-dev/*",
            True,
        ),
        (
            "another stack",
            "cloudformation:DeleteStack",
            f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/prod/*",
            False,
        ),
        (
            "a prefix that is only the stack name",
            "cloudformation:DeleteStack",
            f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/hello-dev*/*",
            False,
        ),
        ("the configured deployment bucket", "s3:PutObject", "arn:aws:s3:::my-artifacts/x", True),
        (
            "a generated bucket name, lower case",
            "s3:ListBucket",
            "arn:aws:s3:::hello-dev-serverlessdeploymentbucket-1a2b",
            True,
        ),
        ("another bucket", "s3:ListBucket", "arn:aws:s3:::prod-data", False),
        ("the prefix alone", "s3:ListBucket", "arn:aws:s3:::hello-dev-", False),
        (
            "the account must be ours",
            "lambda:GetFunction",
            "arn:aws:lambda:us-east-1:999999999999:function:hello-dev-hello",
            False,
        ),
        ("no resource type", "logs:DescribeLogGroups", "*", True),
        ("* for a scopable action", "lambda:GetFunction", "*", False),
        ("not an ARN of the action's types", "lambda:GetFunction", "arn:aws:s3:::x", False),
        (
            "a queue of the service",
            "sqs:CreateQueue",
            f"arn:aws:sqs:us-east-1:{ACCOUNT}:hello-dev-jobs",
            True,
        ),
        (
            "REST APIs: the template makes them",
            "apigateway:POST",
            "arn:aws:apigateway:us-east-1::/restapis",
            True,
        ),
        (
            "DynamoDB ids: no such resources in the template",
            "dynamodb:DescribeStream",
            f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/prod/stream/2020",
            False,
        ),
    ],
)
def test_fence_membership(name: str, action: str, resource: str, inside: bool) -> None:
    """Inside: the stack, the template's names, the derived prefix, the bucket; else not."""
    assert FENCE.contains(Action(action), resource) is inside, (
        name,
        FENCE.outside(Action(action), resource),
    )


def test_fence_without_a_template_is_stack_prefix_and_bucket() -> None:
    """With no template yet, the stack, ``SERVICE-STAGE-*`` and the bucket are the fence."""
    bare = build_fence(
        stack_name="custom", service="svc", stage="dev", region="us-east-1", account=ACCOUNT
    )
    assert bare.prefixes == ("custom-", "svc-dev-")
    assert bare.contains(Action("sqs:CreateQueue"), f"arn:aws:sqs:us-east-1:{ACCOUNT}:svc-dev-q")
    assert not bare.contains(Action("apigateway:GET"), "arn:aws:apigateway:us-east-1::/restapis/*")
    assert "no template read" in " ".join(bare.describe())


def test_packaged_template_is_read_when_present(tmp_path: Path) -> None:
    """``.serverless/cloudformation-template-update-stack.json``; None when absent or broken."""
    assert read_packaged_template(tmp_path) is None
    target = tmp_path / ".serverless" / "cloudformation-template-update-stack.json"
    target.parent.mkdir()
    target.write_text("{not json")
    assert read_packaged_template(tmp_path) is None
    target.write_text(json.dumps(TEMPLATE))
    assert read_packaged_template(tmp_path) == TEMPLATE


@pytest.mark.parametrize(
    ("name", "definition", "expected"),
    [
        ("a name", {"provider": {"deploymentBucket": "b1"}}, "b1"),
        ("a mapping", {"provider": {"deploymentBucket": {"name": "b2"}}}, "b2"),
        ("a variable", {"provider": {"deploymentBucket": "${env:B}"}}, None),
        ("none", {"provider": {}}, None),
    ],
)
def test_deployment_bucket_of(name: str, definition: dict[str, Any], expected: str | None) -> None:
    """serverless.yml's ``provider.deploymentBucket``, when it is a plain name."""
    assert deployment_bucket_of(definition) == expected, name


AUDIT = {
    "Resources": {
        "Audit": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": "/orders/dev/audit"},
        }
    }
}


@pytest.mark.parametrize(
    ("name", "resource", "inside"),
    [
        ("a log group the template names by path", "log-group:/orders/dev/audit", True),
        ("its streams", "log-group:/orders/dev/audit:log-stream:", True),
        ("its streams, a pattern", "log-group:/orders/dev/audit:log-stream:*", True),
        ("another path ending alike", "log-group:/prod/audit", False),
        ("a longer name sharing the path", "log-group:/orders/dev/audit-x:log-stream:", False),
    ],
)
def test_a_name_with_a_path_or_a_sub_resource(name: str, resource: str, inside: bool) -> None:
    """A log group named by path is the service's, and so are its streams; not its lookalikes."""
    fence = build_fence(
        stack_name="orders-dev",
        service="orders",
        stage="dev",
        region="us-east-1",
        account=ACCOUNT,
        template=AUDIT,
    )
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:{resource}"
    assert fence.contains(Action("logs:PutRetentionPolicy"), arn) is inside, (
        name,
        fence.outside(Action("logs:PutRetentionPolicy"), arn),
    )


def test_the_stacks_a_cli_keeps_for_itself_are_the_deploys() -> None:
    """SAM's artifact stack, and the bucket CloudFormation names in it, are inside; others not."""
    fence = build_fence(
        stack_name="orders",
        service=None,
        stage="dev",
        region="us-east-1",
        account=ACCOUNT,
        managed_stacks=("aws-sam-cli-managed-default",),
    )
    stack = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/aws-sam-cli-managed-default/*"
    assert fence.contains(Action("cloudformation:CreateChangeSet"), stack)
    bucket = "arn:aws:s3:::aws-sam-cli-managed-default-samclisourcebucket-1x2y"
    assert fence.contains(Action("s3:PutObject"), bucket + "/orders/abc")
    other = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/aws-sam-cli-other/*"
    assert not fence.contains(Action("cloudformation:CreateChangeSet"), other)
    bare = build_fence(
        stack_name="orders", service=None, stage="dev", region="us-east-1", account=ACCOUNT
    )
    assert not bare.contains(Action("cloudformation:CreateChangeSet"), stack)


RESOURCES = {
    "Layer": {"Type": "AWS::Lambda::LayerVersion", "Properties": {"LayerName": "shared"}},
    "Filter": {
        "Type": "AWS::Logs::SubscriptionFilter",
        "Properties": {"FilterName": "audit-filter", "LogGroupName": "/elsewhere/prod"},
    },
    "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"Name": "orders-dev"}},
}


@pytest.mark.parametrize(
    ("name", "action", "resource", "inside"),
    [
        (
            "a layer named by LayerName",
            "lambda:PublishLayerVersion",
            "arn:aws:lambda:us-east-1:ACCT:layer:shared",
            True,
        ),
        (
            "another layer",
            "lambda:PublishLayerVersion",
            "arn:aws:lambda:us-east-1:ACCT:layer:other",
            False,
        ),
        (
            "a log group a filter only points at",
            "logs:DeleteLogGroup",
            "arn:aws:logs:us-east-1:ACCT:log-group:/elsewhere/prod",
            False,
        ),
        (
            "HTTP APIs: a type the IAM data gives POST not",
            "apigateway:POST",
            "arn:aws:apigateway:us-east-1::/apis",
            True,
        ),
        (
            "an AWS-hosted transform",
            "cloudformation:CreateChangeSet",
            "arn:aws:cloudformation:us-east-1:aws:transform/Serverless-2016-10-31",
            True,
        ),
        (
            "a transform in another account",
            "cloudformation:CreateChangeSet",
            "arn:aws:cloudformation:us-east-1:999999999999:transform/Serverless-2016-10-31",
            False,
        ),
    ],
)
def test_names_and_types_the_iam_data_or_the_type_name_do_not_spell(
    name: str, action: str, resource: str, inside: bool
) -> None:
    """Names from ``XName`` where X is part of the type's name, types found by the service."""
    fence = build_fence(
        stack_name="orders-dev",
        service="orders",
        stage="dev",
        region="us-east-1",
        account=ACCOUNT,
        template={"Resources": RESOURCES},
    )
    arn = resource.replace("ACCT", ACCOUNT)
    assert fence.contains(Action(action), arn) is inside, (name, fence.outside(Action(action), arn))
