"""The sandbox's AWS::Serverless transform: CloudFormation checks the caller may use it, expands
it with the SAM translator, and says why a change set FAILED in ``StatusReason``, as AWS does."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import boto3
import pytest

from discover.denials import parse_denials
from discover.local.process import LocalSandboxInfo
from discover.local.transform import declared_transforms, parse_template, transform_arn
from tests.conftest import admin_session, role_session

ORDERS = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Transform": "AWS::Serverless-2016-10-31",
    "Resources": {
        "Table": {"Type": "AWS::Serverless::SimpleTable"},
        "Fn": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Runtime": "python3.12",
                "Handler": "app.handler",
                "InlineCode": "def handler(event, context):\n    return {}\n",
                "Policies": [{"DynamoDBCrudPolicy": {"TableName": {"Ref": "Table"}}}],
                "Events": {
                    "List": {"Type": "Api", "Properties": {"Path": "/orders", "Method": "get"}}
                },
            },
        },
    },
}


def _allow(info: LocalSandboxInfo, actions: list[str], resource: str = "*") -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}],
    }
    iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
    iam.put_role_policy(
        RoleName="discover-sandbox", PolicyName="p", PolicyDocument=json.dumps(document)
    )


def _cfn(session: boto3.Session, info: LocalSandboxInfo) -> Any:
    return session.client("cloudformation", endpoint_url=info.endpoint)


def _change_set(cfn: Any, template: dict[str, Any], stack: str = "orders") -> dict[str, Any]:
    created = cfn.create_change_set(
        StackName=stack,
        ChangeSetName="c1",
        TemplateBody=json.dumps(template),
        ChangeSetType="CREATE",
        Capabilities=["CAPABILITY_IAM"],
    )
    described: dict[str, Any] = cfn.describe_change_set(ChangeSetName=created["Id"])
    return described


@pytest.mark.sandbox
def test_the_transform_needs_create_change_set_on_its_own_arn(sandbox: LocalSandboxInfo) -> None:
    """CreateChangeSet on the stack is not enough: the change set FAILS, and its reason says,
    in IAM's words, that the transform's ARN (account ``aws``) was refused."""
    stack_arn = f"arn:aws:cloudformation:{sandbox.region}:{sandbox.account}:stack/orders/*"
    _allow(
        sandbox, ["cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet"], stack_arn
    )
    session = role_session(sandbox, "sam")
    described = _change_set(_cfn(session, sandbox), ORDERS)
    arn = transform_arn(sandbox.region)
    assert arn == "arn:aws:cloudformation:us-east-1:aws:transform/Serverless-2016-10-31"
    principal = f"arn:aws:sts::{sandbox.account}:assumed-role/discover-sandbox/sam"
    assert described["Status"] == "FAILED"
    assert described["ExecutionStatus"] == "UNAVAILABLE"
    assert described["StatusReason"] == (
        f"User: {principal} is not authorized to perform: cloudformation:CreateChangeSet on "
        f"resource: {arn} because no identity-based policy allows the "
        "cloudformation:CreateChangeSet action"
    )
    (denial,) = parse_denials(described["StatusReason"])
    assert (denial.action, denial.resource, denial.principal) == (
        "cloudformation:CreateChangeSet",
        arn,
        principal,
    )


@pytest.mark.sandbox
def test_an_allowed_transform_is_expanded_and_deployed(sandbox: LocalSandboxInfo) -> None:
    """With the transform allowed, the change set lists the processed resources (no
    AWS::Serverless types) and executing it creates them, the implicit API from its Body."""
    _allow(sandbox, ["*"])
    cfn = _cfn(role_session(sandbox), sandbox)
    described = _change_set(cfn, ORDERS)
    assert described["Status"] == "CREATE_COMPLETE"
    types = {c["ResourceChange"]["ResourceType"] for c in described["Changes"]}
    assert {"AWS::Lambda::Function", "AWS::IAM::Role", "AWS::DynamoDB::Table"} <= types
    assert {"AWS::ApiGateway::RestApi", "AWS::ApiGateway::Stage"} <= types
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    cfn.execute_change_set(ChangeSetName=described["ChangeSetId"])
    (stack,) = cfn.describe_stacks(StackName="orders")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    iam = admin_session(sandbox).client("iam", endpoint_url=sandbox.endpoint)
    (role,) = [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("orders-FnRole")]
    inline = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    crud = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=inline[0])["PolicyDocument"]
    # the DynamoDBCrudPolicy template, expanded (moto keeps the document as it was given)
    assert "dynamodb:PutItem" in unquote(str(crud))
    apigateway = admin_session(sandbox).client("apigateway", endpoint_url=sandbox.endpoint)
    (api,) = apigateway.get_rest_apis()["items"]
    assert api["name"] == "orders"  # the Body's info.title: the stack name
    paths = {r["path"]: r for r in apigateway.get_resources(restApiId=api["id"])["items"]}
    assert "GET" in paths["/orders"]["resourceMethods"]


@pytest.mark.sandbox
def test_an_invalid_sam_document_fails_the_change_set(sandbox: LocalSandboxInfo) -> None:
    """The translator's refusal is the change set's reason, as the transform reports it."""
    _allow(sandbox, ["*"])
    broken = {**ORDERS, "Resources": {"Fn": {"Type": "AWS::Serverless::Function"}}}
    described = _change_set(_cfn(role_session(sandbox), sandbox), broken)
    assert described["Status"] == "FAILED"
    assert described["StatusReason"].startswith(
        "Transform AWS::Serverless-2016-10-31 failed with: Invalid Serverless Application "
        "Specification document."
    )
    assert "Resource with id [Fn] is invalid" in described["StatusReason"]


@pytest.mark.sandbox
def test_template_url_on_the_sandbox_endpoint(sandbox: LocalSandboxInfo) -> None:
    """A TemplateURL in the path style on the endpoint itself (what SAM uploads) is read,
    with its versionId."""
    _allow(sandbox, ["*"])
    session = role_session(sandbox)
    s3 = session.client("s3", endpoint_url=sandbox.endpoint)
    s3.create_bucket(Bucket="artifacts")
    s3.put_bucket_versioning(Bucket="artifacts", VersioningConfiguration={"Status": "Enabled"})
    put = s3.put_object(Bucket="artifacts", Key="t.template", Body=json.dumps(ORDERS).encode())
    url = f"{sandbox.endpoint}/artifacts/t.template?versionId={put['VersionId']}"
    cfn = _cfn(session, sandbox)
    created = cfn.create_change_set(
        StackName="by-url", ChangeSetName="c1", TemplateURL=url, ChangeSetType="CREATE"
    )
    assert cfn.describe_change_set(ChangeSetName=created["Id"])["Status"] == "CREATE_COMPLETE"


SHORT_FORMS = [
    ("Ref", "!Ref Table", {"Ref": "Table"}),
    ("GetAtt dotted", "!GetAtt Fn.Arn", {"Fn::GetAtt": ["Fn", "Arn"]}),
    ("Sub nested", "!Sub ['${A}', {A: !Ref B}]", {"Fn::Sub": ["${A}", {"A": {"Ref": "B"}}]}),
    ("Condition", "!Condition IsProd", {"Condition": "IsProd"}),
]


@pytest.mark.parametrize(("name", "text", "expected"), SHORT_FORMS, ids=[s[0] for s in SHORT_FORMS])
def test_yaml_short_forms_become_long_forms(name: str, text: str, expected: Any) -> None:
    """The translator reads long forms; YAML templates use CloudFormation's short tags."""
    parsed = parse_template(f"Transform: AWS::Serverless-2016-10-31\nValue: {text}\n")
    assert parsed is not None
    assert parsed["Value"] == expected
    assert declared_transforms(parsed) == ("AWS::Serverless-2016-10-31",)
