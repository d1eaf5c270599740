"""The wording of each refusal the sandbox's CloudFormation writes, per service and handler
generation, read back with the parser that reads AWS (``discover.denials.parse_denials``).

Each shape is the one AWS writes (the corpus in ``fixtures/corpus`` and public reports):
the registry handlers' ``Resource handler returned message: "..." (HandlerErrorCode: X)``
with the service's own words inside, the legacy ``API: svc:Op ...``, IAM naming a role by
its name, Lambda relaying S3, CloudWatch Logs' "CreateLogGroup with Tags", CloudWatch's
"Invalid request provided", and a stack-level tag refused as an unauthorized tagging operation.
"""

from __future__ import annotations

import re

import pytest

from discover.denials import Reason, parse_denials
from discover.local.authorize import Decision
from discover.local.handler_model import model_for
from discover.local.principals import Principal, PrincipalKind
from discover.local.schemas import Generation
from discover.local.stack_calls import MessageShape
from discover.local.stack_engine import PlannedCheck, handler_message

ACCOUNT = "123456789012"
CALLER = Principal(
    arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/discover-sandbox/run-1",
    account=ACCOUNT,
    kind=PrincipalKind.ROLE,
    name="discover-sandbox",
    identity_arn=f"arn:aws:iam::{ACCOUNT}:role/discover-sandbox",
)
ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-dev-lambdaRole"
DENIED = Reason.NO_IDENTITY_POLICY

# name, type, action, resource, shape, generation, stack tags only,
# what the message must match, what the parser must read (action, resource, reason)
CASES = [
    (
        "IAM names the role by name",
        "AWS::IAM::Role",
        "iam:PutRolePolicy",
        ROLE,
        MessageShape.STANDARD,
        Generation.REGISTRY,
        False,
        r"perform: iam:PutRolePolicy on resource: role demo-dev-lambdaRole because .*"
        r"\(Service: Iam, Status Code: 403, Request ID: [0-9a-f-]+\)\" \(RequestToken: "
        r"[0-9a-f-]+, HandlerErrorCode: AccessDenied\)$",
        ("iam:PutRolePolicy", "role demo-dev-lambdaRole", DENIED),
    ),
    (
        "IAM CreateRole keeps the ARN",
        "AWS::IAM::Role",
        "iam:CreateRole",
        ROLE,
        MessageShape.STANDARD,
        Generation.REGISTRY,
        False,
        r"perform: iam:CreateRole on resource: arn:aws:iam::123456789012:role/",
        ("iam:CreateRole", ROLE, DENIED),
    ),
    (
        "S3 quotes the ARN, extended request id",
        "AWS::S3::Bucket",
        "s3:PutBucketTagging",
        "arn:aws:s3:::demo-dev-deploys",
        MessageShape.STANDARD,
        Generation.REGISTRY,
        False,
        r'on resource: "arn:aws:s3:::demo-dev-deploys" because .*\(Service: S3, Status Code: '
        r"403, Request ID: [0-9A-F]{16}, Extended Request ID: ",
        ("s3:PutBucketTagging", "arn:aws:s3:::demo-dev-deploys", DENIED),
    ),
    (
        "Lambda relays S3",
        "AWS::Lambda::Function",
        "s3:GetObject",
        "arn:aws:s3:::deploys/demo/hello.zip",
        MessageShape.LAMBDA_S3_CODE,
        Generation.REGISTRY,
        False,
        r"Your access has been denied by S3, please make sure your request credentials have "
        r"permission to GetObject for deploys/demo/hello.zip\. S3 Error Code: AccessDenied\. "
        r"S3 Error Message: User: .*\(Service: Lambda, Status Code: 403, Request ID: [0-9a-f-]+, "
        r"Extended Request ID: null\)",
        ("s3:GetObject", "arn:aws:s3:::deploys/demo/hello.zip", DENIED),
    ),
    (
        "CloudWatch Logs: CreateLogGroup with Tags",
        "AWS::Logs::LogGroup",
        "logs:TagResource",
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/demo",
        MessageShape.LOGS_TAGS,
        Generation.REGISTRY,
        True,
        r"User with accountId: 123456789012 is not authorized to perform CreateLogGroup with "
        r'Tags\.\n  An additional permission "logs:TagResource" is required\. \(Service: '
        r"CloudWatchLogs, Status Code: 400",
        ("logs:TagResource", None, Reason.UNSPECIFIED),
    ),
    (
        "stack-level tags: unauthorized tagging operation",
        "AWS::SQS::Queue",
        "sqs:TagQueue",
        f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs",
        MessageShape.STANDARD,
        Generation.REGISTRY,
        True,
        r"^Resource handler returned message: \"Encountered a permissions error performing a "
        r"tagging operation, please add required tag permissions\. See https://repost\.aws/"
        r"knowledge-center/cloudformation-tagging-permission-error for how to resolve\. "
        r'Resource handler returned message: "User: .* \(Service: Sqs, .*\)"" \(RequestToken: '
        r"[0-9a-f-]+, HandlerErrorCode: UnauthorizedTaggingOperation\)$",
        ("sqs:TagQueue", f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs", DENIED),
    ),
    (
        "resource tags: access denied",
        "AWS::SQS::Queue",
        "sqs:TagQueue",
        f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs",
        MessageShape.STANDARD,
        Generation.REGISTRY,
        False,
        r"HandlerErrorCode: AccessDenied\)$",
        ("sqs:TagQueue", f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs", DENIED),
    ),
    (
        "CloudWatch: invalid request provided",
        "AWS::CloudWatch::Alarm",
        "cloudwatch:TagResource",
        f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:demo",
        MessageShape.STANDARD,
        Generation.REGISTRY,
        False,
        r'^Resource handler returned message: "Invalid request provided: User: .* action" '
        r"\(RequestToken: [0-9a-f-]+, HandlerErrorCode: InvalidRequest\)$",
        ("cloudwatch:TagResource", f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:demo", DENIED),
    ),
    (
        "legacy handler: API: svc:Op",
        "AWS::CodeBuild::Project",
        "codebuild:CreateProject",
        f"arn:aws:codebuild:us-east-1:{ACCOUNT}:project/demo",
        MessageShape.STANDARD,
        Generation.LEGACY,
        False,
        r"^API: codebuild:CreateProject User: .* is not authorized to perform: "
        r"codebuild:CreateProject on resource: ",
        ("codebuild:CreateProject", f"arn:aws:codebuild:us-east-1:{ACCOUNT}:project/demo", DENIED),
    ),
    (
        "legacy S3: API: s3:CreateBucket Access Denied",
        "AWS::S3::Bucket",
        "s3:CreateBucket",
        "arn:aws:s3:::demo",
        MessageShape.STANDARD,
        Generation.LEGACY,
        False,
        r"^API: s3:CreateBucket Access Denied$",
        ("s3:CreateBucket", None, Reason.S3_OPAQUE),
    ),
]


@pytest.mark.parametrize(
    (
        "case",
        "type_name",
        "action",
        "resource",
        "shape",
        "generation",
        "tags_only",
        "words",
        "read",
    ),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_message_shape_reads_back(  # noqa: PLR0917 - one argument per column
    case: str,
    type_name: str,
    action: str,
    resource: str,
    shape: MessageShape,
    generation: Generation,
    tags_only: bool,
    words: str,
    read: tuple[str, str | None, Reason],
) -> None:
    """The sandbox writes the shape AWS writes, and the product's parser reads from it the
    action, the resource and the reason that were refused."""
    model = model_for(type_name)
    assert model is not None
    check = PlannedCheck(action, resource, {}, shape)
    message = handler_message(
        check,
        Decision.IMPLICIT_DENY,
        CALLER,
        model.calls,
        generation=generation,
        stack_tags_only=tags_only,
    )
    assert re.search(words, message, re.DOTALL), message
    denials = parse_denials(message, source="stack-event")
    assert denials, message
    first = denials[0]
    assert (first.action, first.resource, first.reason) == read
    if read[2] is DENIED:
        assert first.principal == CALLER.arn


def test_the_generation_follows_the_schema() -> None:
    """Types with registry handlers are worded as the registry does; the others as legacy."""
    registry = model_for("AWS::SQS::Queue")
    legacy = model_for("AWS::CodeBuild::Project")
    assert registry is not None
    assert legacy is not None
    assert registry.generation is Generation.REGISTRY
    assert legacy.generation is Generation.LEGACY


@pytest.mark.parametrize(
    ("name", "action", "type_name", "props", "expected"),
    [
        (
            "a REST API's stage, not an HTTP API's",
            "apigateway:POST",
            "AWS::ApiGateway::Stage",
            {"RestApiId": "abc123", "StageName": "Prod"},
            "arn:aws:apigateway:us-east-1::/restapis/abc123/stages",
        ),
        (
            "an HTTP API's stage",
            "apigateway:POST",
            "AWS::ApiGatewayV2::Stage",
            {"ApiId": "h77", "StageName": "$default"},
            "arn:aws:apigateway:us-east-1::/apis/h77/stages",
        ),
        (
            "a deployment: the IAM data's type is plural",
            "apigateway:POST",
            "AWS::ApiGateway::Deployment",
            {"RestApiId": "abc123"},
            "arn:aws:apigateway:us-east-1::/restapis/abc123/deployments",
        ),
    ],
)
def test_a_generated_call_names_the_resource_its_properties_fill(
    name: str, action: str, type_name: str, props: dict[str, str], expected: str
) -> None:
    """AWS names the collection the call writes to; never ``*`` when the properties say it."""
    from discover.local.handler_model import generic_arn

    values = {"region": "us-east-1", "account": "123456789012", "partition": "aws"}
    assert generic_arn(action, type_name)(values, props) == expected, name
