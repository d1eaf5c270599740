"""Predictions: the registry schemas narrowed by properties, scoped as observed grants are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from discover import iamdb
from discover.decision import Rules, Verdict, decide
from discover.fence import build_fence
from discover.iamdb import Action
from discover.predict import Prediction, Source, predict, predict_cli, predict_resource
from discover.scoping import scope
from discover.template import ServiceTemplate, load_template
from discover.trail import not_in_event_history

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app-dev-exec"
TRUST = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}]}


def template_of(tmp_path: Path, resources: dict[str, Any]) -> ServiceTemplate:
    path = tmp_path / "template.json"
    path.write_text(json.dumps({"Resources": resources}))
    return load_template(
        path, service="app", stage="dev", region="us-east-1", account=ACCOUNT, stack_name="app-dev"
    )


ROLE_RESOURCE = {
    "Type": "AWS::IAM::Role",
    "Properties": {"RoleName": "app-dev-exec", "AssumeRolePolicyDocument": TRUST},
}
POLICIES = [{"PolicyName": "p", "PolicyDocument": {"Statement": []}}]


@pytest.mark.parametrize(
    ("name", "resources", "logical_id", "present", "absent"),
    [
        (
            "role without Policies: no PutRolePolicy",
            {"R": ROLE_RESOURCE},
            "R",
            {"iam:CreateRole", "iam:GetRole"},
            {"iam:PutRolePolicy", "iam:TagRole"},
        ),
        (
            "role with Policies: PutRolePolicy",
            {
                "R": {
                    **ROLE_RESOURCE,
                    "Properties": {**ROLE_RESOURCE["Properties"], "Policies": POLICIES},
                }
            },
            "R",
            {"iam:CreateRole", "iam:PutRolePolicy"},
            {"iam:TagRole"},
        ),
        (
            "role with Tags: the tagging block",
            {
                "R": {
                    **ROLE_RESOURCE,
                    "Properties": {
                        **ROLE_RESOURCE["Properties"],
                        "Tags": [{"Key": "a", "Value": "b"}],
                    },
                }
            },
            "R",
            {"iam:TagRole"},
            {"iam:UntagRole", "iam:ListRoleTags"},
        ),
        (
            "bucket with encryption",
            {"B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketEncryption": {"x": 1}}}},
            "B",
            {"s3:CreateBucket", "s3:PutEncryptionConfiguration"},
            {"s3:PutBucketVersioning", "s3:PutBucketTagging", "s3:DeleteObject", "iam:PassRole"},
        ),
        (
            "log group: no S3 or firehose, no schema name that is not an action",
            {"L": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/lambda/x"}}},
            "L",
            {"logs:CreateLogGroup", "logs:DescribeLogGroups"},
            {"logs:PutRetentionPolicy", "firehose:TagDeliveryStream"},
        ),
        (
            "function: PassRole of its role, S3 read of its code, no VPC or KMS",
            {
                "R": ROLE_RESOURCE,
                "F": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "FunctionName": "app-dev-f",
                        "Role": {"Fn::GetAtt": ["R", "Arn"]},
                        "Code": {"S3Bucket": "code-bucket", "S3Key": "app/1.zip"},
                    },
                },
            },
            "F",
            {"lambda:CreateFunction", "lambda:GetFunction", "iam:PassRole", "s3:GetObject"},
            {"ec2:DescribeVpcs", "kms:Decrypt", "lambda:TagResource", "s3:GetObjectVersion"},
        ),
        (
            "function in a VPC: the ec2 reads",
            {
                "F": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {"FunctionName": "f", "VpcConfig": {"SubnetIds": ["s"]}},
                }
            },
            "F",
            {"ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"},
            {"kms:Decrypt"},
        ),
    ],
)
def test_narrowed_by_properties(  # noqa: PLR0917 - one argument per column of the table
    tmp_path: Path,
    name: str,
    resources: dict[str, Any],
    logical_id: str,
    present: set[str],
    absent: set[str],
) -> None:
    template = template_of(tmp_path, resources)
    resource = template.resource(logical_id)
    assert resource is not None
    actions = {p.grant.action for p in predict_resource(resource, template)}
    assert present <= actions, (name, present - actions)
    assert not absent & actions, (name, absent & actions)


def test_every_prediction_is_a_real_action_scoped_as_a_denial_would_be(tmp_path: Path) -> None:
    """Never "*" where IAM has a resource type; the grant is what scope() gives the ARN."""
    template = template_of(
        tmp_path,
        {
            "R": ROLE_RESOURCE,
            "T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "app-dev-items"}},
            "Q": {"Type": "AWS::SQS::Queue", "Properties": {}},
        },
    )
    found = predict(template, cli=None)
    assert found
    for prediction in found:
        action = prediction.grant.action
        assert iamdb.is_known_action(action)
        if iamdb.resource_types(Action(action)):
            assert prediction.grant.resource != "*", action
        else:
            assert prediction.grant.resource == "*", action
    table = next(p for p in found if p.grant.action == "dynamodb:CreateTable")
    again = scope(
        Action("dynamodb:CreateTable"), f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/app-dev-items"
    )
    assert again is not None
    assert table.grant == again.grant
    queue = next(p for p in found if p.grant.action == "sqs:CreateQueue")
    assert queue.grant.resource == f"arn:aws:sqs:us-east-1:{ACCOUNT}:app-dev-Q-*"
    assert not any(not_in_event_history(p.grant.action) and p.implied_by is None for p in found)


def test_pass_role_is_exact_and_passed_to_the_service(tmp_path: Path) -> None:
    template = template_of(
        tmp_path,
        {
            "R": ROLE_RESOURCE,
            "F": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"FunctionName": "f", "Role": {"Fn::GetAtt": ["R", "Arn"]}},
            },
        },
    )
    (passrole,) = [p for p in predict(template, cli=None) if p.grant.action == "iam:PassRole"]
    assert passrole.grant.resource == ROLE
    assert passrole.grant.condition == (
        ("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),
    )
    assert passrole.source is Source.DEPENDENCY
    assert passrole.implied_by == "lambda:CreateFunction"


def test_the_cli_calls_are_on_the_service_s_own_stack_and_bucket(tmp_path: Path) -> None:
    template = template_of(
        tmp_path,
        {"ServerlessDeploymentBucket": {"Type": "AWS::S3::Bucket", "Properties": {}}},
    )
    template = ServiceTemplate(
        **{
            **{f: getattr(template, f) for f in template.__dataclass_fields__},
            "artifact_prefix": "serverless/app/dev/",
        }
    )
    found = {p.grant.action: p.grant.resource for p in predict_cli(template)}
    stack = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/app-dev/*"
    assert found["cloudformation:CreateChangeSet"] == stack
    assert found["cloudformation:ValidateTemplate"] == "*"
    assert found["s3:ListBucket"] == "arn:aws:s3:::app-dev-serverlessdeploymentbucket-*"
    assert (
        found["s3:PutObject"]
        == "arn:aws:s3:::app-dev-serverlessdeploymentbucket-*/serverless/app/dev/*"
    )


def test_high_risk_predictions_are_recognised_by_the_guard(tmp_path: Path) -> None:
    """A template that creates users predicts iam:CreateUser; the grant decision asks for it (the
    strategy then asks for the same confirmation as for an observed grant)."""
    template = template_of(
        tmp_path, {"U": {"Type": "AWS::IAM::User", "Properties": {"UserName": "u"}}}
    )
    found: list[Prediction] = list(predict(template, cli=None))
    fence = build_fence(
        stack_name="app-dev",
        service="app",
        stage="dev",
        region="us-east-1",
        account=ACCOUNT,
        template={"Resources": {"U": {"Type": "AWS::IAM::User", "Properties": {"UserName": "u"}}}},
    )
    rules = Rules(role_arn=f"arn:aws:iam::{ACCOUNT}:role/discover-sandbox", fence=fence)
    risky = [p.grant for p in found if decide(p.grant, rules).verdict is not Verdict.ALLOW]
    assert any(g.action == "iam:CreateUser" for g in risky)


def test_the_cli_data_names_real_actions_on_known_targets() -> None:
    """discover/data/serverless.json: each call a real IAM action, on a target predict knows."""
    from discover.predict import cli_calls

    calls = cli_calls("serverless")
    assert calls
    for call in calls:
        assert iamdb.is_known_action(call["action"]), call
        assert call["on"] in {"stack", "deployment-bucket", "artifacts", "functions", "*"}, call
        assert call["on"] != "managed-stack"
    assert cli_calls("no-such-cli") == ()


def test_stack_tags_propagate_to_taggable_resources(tmp_path: Path) -> None:
    """With stack tags, CloudFormation tags each taggable resource as the caller."""
    import dataclasses

    plain = template_of(tmp_path, {"R": ROLE_RESOURCE})
    tagged = dataclasses.replace(plain, stack_tags=(("STAGE", "dev"),))
    assert "iam:TagRole" not in {p.grant.action for p in predict(plain, cli=None)}
    (tag,) = [p for p in predict(tagged, cli=None) if p.grant.action == "iam:TagRole"]
    assert tag.source is Source.TAGGING
    assert tag.grant.resource == ROLE


def test_the_remove_step_predicts_delete_handlers_and_the_clis_remove_calls(
    tmp_path: Path,
) -> None:
    """``remove``: each resource's delete handler and the CLI's own calls when it removes
    (emptying the bucket, DeleteStack); no tagging (nothing is made) and no create call."""
    from discover.predict import cli_calls

    template = template_of(
        tmp_path,
        {
            "T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "app-dev-items"}},
            "Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "app-dev-jobs"}},
        },
    )
    found = predict(template, cli=None, operation="delete", command="remove")
    actions = {p.grant.action for p in found}
    assert {"dynamodb:DeleteTable", "sqs:DeleteQueue"} <= actions
    assert not {a for a in actions if a.endswith((":CreateTable", ":CreateQueue", ":TagResource"))}
    remove = {c["action"] for c in cli_calls("serverless", "remove")}
    assert {"cloudformation:DeleteStack", "s3:DeleteObject"} <= remove
    for call in cli_calls("serverless", "remove"):
        assert iamdb.is_known_action(call["action"]), call
    assert "cloudformation:DeleteStack" not in {c["action"] for c in cli_calls("serverless")}


def test_a_sam_deploy_predicts_the_managed_stack_and_the_transform() -> None:
    """``sam deploy --resolve-s3``: SAM's managed stack (its bucket's create), the hosted
    transform, the uploads under ``STACK/`` in the managed bucket; every call a real action."""
    from discover.predict import cli_calls
    from discover.template import TemplateSource

    service = Path(__file__).resolve().parents[1] / "fixtures" / "services" / "sam-orders"
    template = TemplateSource(service, ("sam",), "dev", "us-east-1", ACCOUNT, "sam-orders").load()
    found = {(p.grant.action, p.grant.resource) for p in predict(template, cli="sam")}
    managed = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/aws-sam-cli-managed-default/*"
    bucket = "arn:aws:s3:::aws-sam-cli-managed-default-samclisourcebucket-*"
    assert ("cloudformation:CreateChangeSet", managed) in found
    transform = "arn:aws:cloudformation:us-east-1:aws:transform/Serverless-2016-10-31"
    assert ("cloudformation:CreateChangeSet", transform) in found
    assert ("s3:CreateBucket", bucket) in found
    assert ("s3:PutObject", f"{bucket}/sam-orders/*") in found
    assert (
        "lambda:CreateFunction",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:sam-orders-OrdersFunction-*",
    ) in found
    removing = {
        p.grant.action for p in predict(template, cli="sam", operation="delete", command="remove")
    }
    assert "s3:CreateBucket" not in removing  # the managed stack stays
    assert {"cloudformation:DeleteStack", "lambda:DeleteFunction", "iam:DeleteRole"} <= removing
    assert "apigateway:DELETE" in removing
    companion = (
        f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/sam-orders-300c05da-CompanionStack/*"
    )
    assert ("cloudformation:DescribeStacks", companion) in {
        (p.grant.action, p.grant.resource)
        for p in predict(template, cli="sam", operation="delete", command="remove")
    }
    targets = {"stack", "managed-stack", "transform", "companion-stacks", "deployment-bucket"}
    targets |= {"artifacts", "*"}
    for command in ("deploy", "remove"):
        for call in cli_calls("sam", command):
            assert iamdb.is_known_action(call["action"]), call
            assert call["on"] in targets, call
