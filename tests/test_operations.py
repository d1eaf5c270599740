"""API operation -> IAM action: same names, renamed ones, signing names, HTTP-method services."""

from __future__ import annotations

import pytest

from discover import iamdb, operations
from discover.operations import (
    has_operation,
    known_action,
    operation_actions,
    operation_to_action,
)

MAPPINGS = [
    ("same name", "cloudformation", "CreateStack", "cloudformation:CreateStack"),
    ("same name, CloudWatch Logs", "logs", "CreateLogGroup", "logs:CreateLogGroup"),
    ("S3 ListObjectsV2 lists the bucket", "s3", "ListObjectsV2", "s3:ListBucket"),
    ("S3 HeadObject reads the object", "s3", "HeadObject", "s3:GetObject"),
    ("S3 HeadBucket lists the bucket", "s3", "HeadBucket", "s3:ListBucket"),
    ("S3 GetObjectAttributes reads the object first", "s3", "GetObjectAttributes", "s3:GetObject"),
    ("S3 ListBuckets", "s3", "ListBuckets", "s3:ListAllMyBuckets"),
    ("S3 multipart upload writes the object", "s3", "UploadPart", "s3:PutObject"),
    ("S3 bucket encryption", "s3", "PutBucketEncryption", "s3:PutEncryptionConfiguration"),
    ("S3 same name", "s3", "PutObject", "s3:PutObject"),
    ("Lambda Invoke", "lambda", "Invoke", "lambda:InvokeFunction"),
    ("SQS batch send", "sqs", "SendMessageBatch", "sqs:SendMessage"),
    (
        "botocore name differs from IAM prefix",
        "stepfunctions",
        "StartExecution",
        "states:StartExecution",
    ),
    ("signing name", "states", "StartExecution", "states:StartExecution"),
    ("endpoint prefix of CloudWatch", "monitoring", "PutMetricAlarm", "cloudwatch:PutMetricAlarm"),
    ("botocore name of CloudWatch", "cloudwatch", "PutMetricAlarm", "cloudwatch:PutMetricAlarm"),
    (
        "ELBv2 signs as elasticloadbalancing",
        "elbv2",
        "CreateTargetGroup",
        "elasticloadbalancing:CreateTargetGroup",
    ),
    (
        "elasticloadbalancing prefix",
        "elasticloadbalancing",
        "CreateLoadBalancer",
        "elasticloadbalancing:CreateLoadBalancer",
    ),
    ("API Gateway is per HTTP method: GET", "apigateway", "GetRestApis", "apigateway:GET"),
    ("API Gateway is per HTTP method: POST", "apigateway", "CreateRestApi", "apigateway:POST"),
    ("API Gateway v2 too", "apigatewayv2", "CreateApi", "apigateway:POST"),
    ("API Gateway delete", "apigateway", "DeleteRestApi", "apigateway:DELETE"),
    (
        "WebSocket management API",
        "execute-api",
        "PostToConnection",
        "execute-api:ManageConnections",
    ),
    ("IoT data plane is the iot prefix", "iot-data", "Publish", "iot:Publish"),
    ("SES v2 signs as ses", "sesv2", "SendEmail", "ses:SendEmail"),
    ("service name in any case", "SNS", "Publish", "sns:Publish"),
    ("snake_case operation", "s3", "list_objects_v2", "s3:ListBucket"),
    ("camelCase operation (JS SDK)", "ssm", "getParameter", "ssm:GetParameter"),
    (
        "CLI kebab-case operation",
        "cloudformation",
        "describe-stacks",
        "cloudformation:DescribeStacks",
    ),
    ("a prefix botocore lacks is taken as IAM's", "aps", "CreateWorkspace", "aps:CreateWorkspace"),
]


@pytest.mark.parametrize(
    ("name", "service", "operation", "action"), MAPPINGS, ids=[m[0] for m in MAPPINGS]
)
def test_operation_to_action(name: str, service: str, operation: str, action: str) -> None:
    """Each operation maps to the IAM action that authorises it, in canonical case."""
    assert operation_to_action(service, operation) == action


UNMAPPED = [
    ("operation the service does not have", "s3", "CreateChangeSet"),
    ("S3 Control's operation is not S3's", "s3", "CreateJob"),
    ("an IAM action that is no operation", "s3", "ListBucket"),
    ("unknown service and operation", "nosuchservice", "DoThing"),
    ("empty operation", "s3", ""),
    ("wildcard", "iam", "*"),
]


@pytest.mark.parametrize(("name", "service", "operation"), UNMAPPED, ids=[u[0] for u in UNMAPPED])
def test_operation_without_action(name: str, service: str, operation: str) -> None:
    """What is no operation of the service, or names no real action, maps to None."""
    assert operation_to_action(service, operation) is None
    assert operation_actions(service, operation) == ()


@pytest.mark.parametrize(
    ("name", "service", "operation", "actions"),
    [
        (
            "copy writes the target, reads the source",
            "s3",
            "CopyObject",
            ("s3:PutObject", "s3:GetObject"),
        ),
        (
            "re-encrypt needs both halves",
            "kms",
            "ReEncrypt",
            ("kms:ReEncryptFrom", "kms:ReEncryptTo"),
        ),
        ("one action", "iam", "CreateRole", ("iam:CreateRole",)),
    ],
)
def test_operation_actions_lists_every_needed_action(
    name: str, service: str, operation: str, actions: tuple[str, ...]
) -> None:
    """operation_actions gives every action the operation needs, the first-checked first."""
    assert operation_actions(service, operation) == actions


@pytest.mark.parametrize(
    ("name", "service", "operation", "expected"),
    [
        ("S3 has PutObject", "s3", "PutObject", True),
        ("S3 has HeadBucket", "s3", "HeadBucket", True),
        ("snake_case is an operation too", "s3", "head_bucket", True),
        ("S3 has no CreateFunction", "s3", "CreateFunction", False),
        ("by signing name", "elasticloadbalancing", "CreateLoadBalancer", True),
        ("unknown service", "nosuchservice", "PutObject", False),
    ],
)
def test_has_operation(name: str, service: str, operation: str, expected: bool) -> None:
    """has_operation answers from botocore's model of the service."""
    assert has_operation(service, operation) is expected


def test_every_renamed_action_exists() -> None:
    """Each action of the renamed-operation table is a real IAM action, spelt canonically."""
    for names in operations._RENAMED.values():
        for name in names:
            assert iamdb.canonical_action(name) == name, name


def test_every_renamed_operation_exists() -> None:
    """Each operation of the renamed-operation table is an operation botocore knows."""
    botocore_name = {"execute-api": "apigatewaymanagementapi"}
    for prefix, operation in operations._RENAMED:
        service = botocore_name.get(prefix, prefix)
        assert has_operation(service, operation), f"{service}:{operation}"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("canonical", "iam:CreateRole"),
        ("wrong case", "SNS:publish"),
        ("surrounding space", " s3:putobject "),
        ("unknown action of a real service", "ec2:CreateRole"),
        ("unknown service", "nosuch:Thing"),
        ("wildcard", "iam:*"),
        ("no colon", "CreateRole"),
        ("empty", ""),
    ],
)
def test_known_action_agrees_with_the_iam_data(name: str, text: str) -> None:
    """known_action answers as iamdb.canonical_action does."""
    assert known_action(text) == iamdb.canonical_action(text)


SDK_NAMES = [
    ("Go v2 service ID", "EC2", "ec2"),
    ("Go v2 service ID with a space", "Secrets Manager", "secretsmanager"),
    ("Go v2 lower-case ID", "signer", "signer"),
    ("Java client name", "AmazonEC2", "ec2"),
    ("Java client name with a space", "Amazon S3", "s3"),
    ("Java client name, AWS prefix", "AWSLambda", "lambda"),
    ("JavaScript v2 identifier", "cloudFormation", "cloudformation"),
    ("service ID that is an alias of a botocore name", "CloudWatch Logs", "cloudwatchlogs"),
    ("endpoint prefix of two models", "email", "email"),
    ("not a service", "Nope", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(("case", "name", "expected"), SDK_NAMES, ids=[c[0] for c in SDK_NAMES])
def test_sdk_service(case: str, name: str, expected: str | None) -> None:
    """An SDK's own name for a service is read as the name operation lookups take."""
    assert operations.sdk_service(name) == expected


ENDPOINTS = [
    ("regional endpoint", "ec2.ap-south-1.amazonaws.com", "ec2"),
    ("virtual-hosted S3 bucket", "my-bucket.s3.eu-west-1.amazonaws.com", "s3"),
    ("legacy S3 regional host", "s3-eu-west-1.amazonaws.com", "s3"),
    ("global endpoint", "sts.amazonaws.com", "sts"),
    ("endpoint prefix that is no botocore name", "email.us-west-2.amazonaws.com", "email"),
    ("FIPS endpoint", "lambda-fips.us-east-1.amazonaws.com", "lambda"),
    ("not an AWS host", "registry.example.com", None),
]


@pytest.mark.parametrize(("case", "host", "expected"), ENDPOINTS, ids=[c[0] for c in ENDPOINTS])
def test_endpoint_service(case: str, host: str, expected: str | None) -> None:
    """An endpoint host names the service that answered from it."""
    assert operations.endpoint_service(host) == expected


def test_email_endpoint_resolves_operations_of_either_ses_model() -> None:
    """SES v1 and v2 share the email endpoint: an operation of either maps to its action."""
    assert operation_to_action("email", "VerifyEmailIdentity") == "ses:VerifyEmailIdentity"


def test_alias_from_an_sdk_name_maps_operations() -> None:
    """The alias sdk_service answers with is a name operation lookups accept."""
    service = operations.sdk_service("CloudWatch Logs")
    assert service is not None
    assert operation_to_action(service, "CreateLogGroup") == "logs:CreateLogGroup"
