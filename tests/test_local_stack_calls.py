"""The table of calls CloudFormation makes as the caller: sourced, valid, property-aware."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint  # type: ignore[import-untyped]
import pytest

from discover import iamdb
from discover.iamdb import Action
from discover.local.stack_calls import COLLECTION_KEYS, OVERRIDES, Phase
from discover.local.stack_engine import dependencies, planned_checks, references, waves

SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-dev-us-east-1-lambdaRole"
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-hello"

# A property set per type that switches every conditional call on.
SAMPLE_PROPERTIES: dict[str, dict[str, Any]] = {
    "AWS::IAM::Role": {
        "RoleName": "demo-dev-us-east-1-lambdaRole",
        "Path": "/",
        "AssumeRolePolicyDocument": {"Statement": []},
        "Policies": [{"PolicyName": "inline", "PolicyDocument": {"Statement": []}}],
        "ManagedPolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        "PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/boundary",
        "MaxSessionDuration": 3600,
        "Description": "d",
        "Tags": [{"Key": "team", "Value": "a"}],
    },
    "AWS::Lambda::Function": {
        "FunctionName": "demo-dev-hello",
        "Role": ROLE,
        "Handler": "handler.hello",
        "Runtime": "nodejs22.x",
        "Code": {"S3Bucket": "deploys", "S3Key": "demo/hello.zip", "S3ObjectVersion": "3"},
        "Layers": [f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:shared:4"],
        "VpcConfig": {"SubnetIds": ["subnet-1"]},
        "ReservedConcurrentExecutions": 2,
        "Tags": [{"Key": "team", "Value": "a"}],
        "MemorySize": 1024,
    },
    "AWS::Lambda::Permission": {
        "FunctionName": FUNCTION,
        "Action": "lambda:InvokeFunction",
        "Principal": "apigateway.amazonaws.com",
    },
    "AWS::Lambda::Version": {"FunctionName": "demo-dev-hello"},
    "AWS::Lambda::EventSourceMapping": {
        "FunctionName": FUNCTION,
        "EventSourceArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs",
        "Tags": [{"Key": "team", "Value": "a"}],
    },
    "AWS::Logs::LogGroup": {
        "LogGroupName": "/aws/lambda/demo-dev-hello",
        "RetentionInDays": 14,
        "DataProtectionPolicy": {"Name": "p"},
        "Tags": [{"Key": "team", "Value": "a"}],
    },
    "AWS::S3::Bucket": {
        "BucketName": "demo-dev-deploys",
        "Tags": [{"Key": "team", "Value": "a"}],
        "BucketEncryption": {"ServerSideEncryptionConfiguration": []},
        "VersioningConfiguration": {"Status": "Enabled"},
        "LifecycleConfiguration": {"Rules": []},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True},
        "OwnershipControls": {"Rules": []},
        "CorsConfiguration": {"CorsRules": []},
        "WebsiteConfiguration": {"IndexDocument": "index.html"},
        "LoggingConfiguration": {"DestinationBucketName": "logs"},
        "NotificationConfiguration": {"QueueConfigurations": []},
        "AccelerateConfiguration": {"AccelerationStatus": "Enabled"},
    },
    "AWS::S3::BucketPolicy": {"Bucket": "demo-dev-deploys", "PolicyDocument": {}},
    "AWS::ApiGateway::RestApi": {
        "Name": "dev-demo",
        "Body": {"openapi": "3.0.1"},
        "BodyS3Location": {"Bucket": "specs", "Key": "api.json"},
        "Policy": {"Statement": []},
    },
    "AWS::ApiGateway::Resource": {
        "RestApiId": "a1b2c3d4e5",
        "ParentId": "root123",
        "PathPart": "x",
    },
    "AWS::ApiGateway::Method": {
        "RestApiId": "a1b2c3d4e5",
        "ResourceId": "res456",
        "HttpMethod": "GET",
        "Integration": {"Type": "AWS_PROXY", "Credentials": ROLE},
        "MethodResponses": [{"StatusCode": "200"}],
    },
    "AWS::ApiGateway::Deployment": {"RestApiId": "a1b2c3d4e5", "StageName": "dev"},
    "AWS::DynamoDB::Table": {
        "TableName": "demo-dev-items",
        "Tags": [{"Key": "team", "Value": "a"}],
        "TimeToLiveSpecification": {"Enabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "ContributorInsightsSpecification": {"Enabled": True},
        "BillingMode": "PAY_PER_REQUEST",
    },
    "AWS::SQS::Queue": {
        "QueueName": "demo-dev-jobs",
        "Tags": [{"Key": "team", "Value": "a"}],
        "VisibilityTimeout": 60,
    },
    "AWS::SNS::Topic": {
        "TopicName": "demo-dev-notes",
        "Tags": [{"Key": "team", "Value": "a"}],
        "Subscription": [{"Endpoint": FUNCTION, "Protocol": "lambda"}],
        "DisplayName": "notes",
    },
    "AWS::SNS::Subscription": {
        "TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:demo-dev-notes",
        "Endpoint": FUNCTION,
        "Protocol": "lambda",
        "SubscriptionRoleArn": ROLE,
    },
    "AWS::Events::Rule": {
        "Name": "demo-dev-sweep",
        "ScheduleExpression": "rate(1 hour)",
        "RoleArn": ROLE,
        "Targets": [{"Arn": FUNCTION, "Id": "sweep"}],
        "Tags": [{"Key": "team", "Value": "a"}],
    },
}
PHYSICAL_IDS = {
    "AWS::Lambda::Version": f"{FUNCTION}:1",
    "AWS::Lambda::EventSourceMapping": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
    "AWS::ApiGateway::RestApi": "a1b2c3d4e5",
    "AWS::ApiGateway::Resource": "res456",
    "AWS::ApiGateway::Deployment": "dep789",
}


@cache
def schema(resource_type: str) -> dict[str, Any]:
    providers = json.loads((SCHEMAS / "providers" / "us-east-1.json").read_text())
    loaded: dict[str, Any] = json.loads(
        (SCHEMAS / "resources" / f"{providers[resource_type]}.json").read_text()
    )
    return loaded


def _older(props: dict[str, Any]) -> dict[str, Any]:
    """The same properties before an update: every value different, every list element gone."""
    old: dict[str, Any] = {}
    for key, value in props.items():
        if isinstance(value, list):
            field_name = COLLECTION_KEYS.get(key)
            items: list[Any] = []
            for item in value:
                if isinstance(item, dict) and field_name:
                    items.append({**item, field_name: f"{item[field_name]}-old"})
                else:
                    items.append(f"{item}-old")
            old[key] = items
        elif isinstance(value, str):
            old[key] = f"{value}-old"
        else:
            old[key] = copy.deepcopy(value) if isinstance(value, dict) and not value else "old"
    return old


def _checks(resource_type: str, operation: str) -> list[tuple[str, str]]:
    table = OVERRIDES[resource_type]
    props = SAMPLE_PROPERTIES[resource_type]
    values = {
        "partition": "aws",
        "region": "us-east-1",
        "account": ACCOUNT,
        "name": str(next((v for k, v in props.items() if k.endswith("Name")), "demo-dev-x")),
        "ref": PHYSICAL_IDS.get(resource_type, "demo-dev-Logical-1A2B3C4D5E6F"),
    }
    values["arn"] = table.arn(values, props)
    calls = getattr(table, operation)
    old = _older(props) if operation == "update" else None
    return [(c.action, c.resource) for c in planned_checks(calls, None, values, props, old)]


CASES = [(t, op) for t in sorted(OVERRIDES) for op in ("create", "update", "delete")]
SAMPLED = [(t, op) for t in sorted(SAMPLE_PROPERTIES) for op in ("create", "update", "delete")]


@pytest.mark.parametrize(("resource_type", "operation"), CASES)
def test_every_call_is_in_the_registry_schema(resource_type: str, operation: str) -> None:
    """Each action is one the type's registry schema lists for that handler (cfn-lint's copy)."""
    table = OVERRIDES[resource_type]
    calls = getattr(table, operation)
    handler = schema(resource_type)["handlers"].get(operation)
    if handler is None:
        assert not calls, f"{resource_type} has no {operation} handler"
        return
    listed = set(handler["permissions"])
    for call in calls:
        assert call.action in listed, f"{call.action} not in {resource_type} {operation}"


@pytest.mark.parametrize(("resource_type", "operation"), SAMPLED)
def test_every_check_names_a_resource_iam_knows(resource_type: str, operation: str) -> None:
    """Every action exists; its resource fits one of IAM's ARN formats for it, or is '*'."""
    checks = _checks(resource_type, operation)
    assert checks or operation == "update", "no call is made at all"
    for action, resource in checks:
        canonical = iamdb.canonical_action(action)
        assert canonical == action, f"{action} is not a canonical IAM action"
        if not iamdb.resource_types(Action(action)):
            assert resource == "*", f"{action} has no resource type but names {resource}"
        else:
            assert iamdb.match_resource_type(Action(action), resource), (action, resource)


def test_property_aware_role() -> None:
    """A role with two inline policies, a managed one and tags makes those calls, in order."""
    table = OVERRIDES["AWS::IAM::Role"]
    props = {
        "RoleName": "r",
        "Policies": [{"PolicyName": "a"}, {"PolicyName": "b"}],
        "ManagedPolicyArns": ["arn:aws:iam::aws:policy/P"],
        "Tags": [{"Key": "k", "Value": "v"}],
    }
    values = {"partition": "aws", "region": "us-east-1", "account": ACCOUNT, "name": "r"}
    values["arn"] = table.arn(values, props)
    checks = planned_checks(table.create, Phase.BEFORE, values, props)
    assert [c.action for c in checks] == [
        "iam:CreateRole",
        "iam:TagRole",
        "iam:PutRolePolicy",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
    ]
    assert {c.resource for c in checks} == {f"arn:aws:iam::{ACCOUNT}:role/r"}
    assert checks[-1].context == {"iam:PolicyARN": "arn:aws:iam::aws:policy/P"}
    bare = planned_checks(table.create, Phase.BEFORE, values, {"RoleName": "r"})
    assert [c.action for c in bare] == ["iam:CreateRole"]


def test_property_aware_log_group_and_update() -> None:
    """Retention adds PutRetentionPolicy at create; an update calls only for what changed."""
    table = OVERRIDES["AWS::Logs::LogGroup"]
    values = {"partition": "aws", "region": "us-east-1", "account": ACCOUNT, "name": "/g"}
    values["arn"] = table.arn(values, {})
    with_retention = planned_checks(table.create, Phase.BEFORE, values, {"RetentionInDays": 7})
    assert [c.action for c in with_retention] == ["logs:CreateLogGroup", "logs:PutRetentionPolicy"]
    assert with_retention[0].resource == (
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/g:log-stream:"
    )
    same = planned_checks(
        table.update, None, values, {"RetentionInDays": 7}, {"RetentionInDays": 7}
    )
    assert [c.action for c in same] == ["logs:DescribeLogGroups"]
    changed = planned_checks(table.update, None, values, {"RetentionInDays": 7}, {})
    assert [c.action for c in changed] == ["logs:PutRetentionPolicy", "logs:DescribeLogGroups"]


def test_pass_role_carries_the_service() -> None:
    """Lambda's create passes its role with iam:PassedToService, and reads its code from S3."""
    table = OVERRIDES["AWS::Lambda::Function"]
    props = {"Role": ROLE, "Code": {"S3Bucket": "b", "S3Key": "k.zip"}}
    values = {"partition": "aws", "region": "us-east-1", "account": ACCOUNT, "name": "f"}
    values["arn"] = table.arn(values, props)
    checks = planned_checks(table.create, Phase.BEFORE, values, props)
    assert [(c.action, c.resource) for c in checks] == [
        ("lambda:CreateFunction", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"),
        ("iam:PassRole", ROLE),
        ("s3:GetObject", "arn:aws:s3:::b/k.zip"),
    ]
    assert checks[1].context == {"iam:PassedToService": "lambda.amazonaws.com"}


def test_references_and_waves() -> None:
    """Dependencies come from DependsOn, Ref, GetAtt and Sub; waves respect them."""
    resources = {
        "Role": {"Type": "AWS::IAM::Role"},
        "Logs": {"Type": "AWS::Logs::LogGroup"},
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "DependsOn": "Logs",
            "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}},
        },
        "Perm": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Ref": "Fn"},
                "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${Api}/*"},
            },
        },
        "Api": {"Type": "AWS::ApiGateway::RestApi"},
    }
    assert references(resources["Perm"]) == {"Fn", "Api"}
    deps = dependencies(resources)
    assert deps["Fn"] == {"Logs", "Role"}
    assert list(waves(list(resources), deps)) == [["Role", "Logs", "Api"], ["Fn"], ["Perm"]]
