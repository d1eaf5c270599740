"""Scoping a denied resource: stable patterns within the resource type's ARN format."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from discover import iamdb
from discover.denials import Denial, Reason
from discover.iamdb import Action
from discover.policy import Grant, resource_matches
from discover.scoping import scope, stack_resource

ACCOUNT = "123456789012"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/sandbox/discover-20261129T033827"
STACK_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
OTHER_STACK_ID = "11111111-2222-3333-4444-555555555555"


def denial(
    action: str,
    resource: str | None,
    *,
    source: str = "output",
    message: str = "",
    at: tuple[str, str] | None = None,
) -> Denial:
    """A denial; ``at`` is the (logical id, resource type) a stack event reported it for."""
    return Denial(
        action=action,
        resource=resource,
        principal=SESSION,
        reason=Reason.NO_IDENTITY_POLICY,
        source=source,
        message=message,
        logical_id=at[0] if at else None,
        resource_type=at[1] if at else None,
    )


SCOPED = [
    (
        "a stack id becomes *",
        "cloudformation:DescribeStacks",
        f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/{STACK_ID}",
        f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/*",
    ),
    (
        "AWS's own /* for a stack not created yet stays",
        "cloudformation:CreateChangeSet",
        f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/*",
        f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/*",
    ),
    (
        "the Serverless role name is stable: exact",
        "iam:PassRole",
        f"arn:aws:iam::{ACCOUNT}:role/demo-dev-us-east-1-lambdaRole",
        f"arn:aws:iam::{ACCOUNT}:role/demo-dev-us-east-1-lambdaRole",
    ),
    (
        "the deployment bucket's random suffix becomes *",
        "s3:ListBucket",
        "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-6wleph0da0ic",
        "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-*",
    ),
    (
        "its objects keep the service and stage prefix",
        "s3:PutObject",
        "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-6wleph0da0ic/serverless/demo/dev/"
        "1795923525236-2026-11-29T03:38:45.236Z/compiled-cloudformation-template.json",
        "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-*/serverless/demo/dev/*",
    ),
    (
        "the objects of one bucket, as discover named them",
        "s3:GetObject",
        "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-6wleph0da0ic/*",
        "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-*/*",
    ),
    (
        "an object key with nothing variable stays exact",
        "s3:GetObject",
        "arn:aws:s3:::demo-config/settings",
        "arn:aws:s3:::demo-config/settings",
    ),
    (
        "a function name that ends in a number is not random",
        "lambda:CreateFunction",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-handler2024",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-handler2024",
    ),
    (
        "a function version number becomes *",
        "lambda:GetFunctionConfiguration",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-hello:14",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-hello:*",
    ),
    (
        "a function alias stays exact",
        "lambda:GetFunctionConfiguration",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-hello:live",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-hello:live",
    ),
    (
        "an id that is the only name stays exact (a KMS key)",
        "kms:Decrypt",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{STACK_ID}",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{STACK_ID}",
    ),
    (
        "a log group of a function stays exact",
        "logs:CreateLogGroup",
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/demo-dev-hello",
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/demo-dev-hello",
    ),
    (
        "an action with no resource type takes *",
        "cloudformation:ValidateTemplate",
        None,
        "*",
    ),
    (
        "a denial that names no resource takes *",
        "lambda:GetFunction",
        None,
        "*",
    ),
]


@pytest.mark.parametrize(("name", "action", "resource", "pattern"), SCOPED)
def test_scope_generalises_what_changes_between_deploys(
    name: str, action: str, resource: str | None, pattern: str
) -> None:
    """Stack ids and random suffixes become *; names of service, stage and roles stay."""
    scoped = scope(Action(action), resource)
    assert scoped is not None, name
    assert scoped.grant.resource == pattern
    assert scoped.note


@pytest.mark.parametrize(
    ("name", "action", "first", "second"),
    [
        (
            "two stacks of the same name",
            "cloudformation:DescribeStacks",
            f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/{STACK_ID}",
            f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/{OTHER_STACK_ID}",
        ),
        (
            "two deployment buckets",
            "s3:PutObject",
            "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-6wleph0da0ic/serverless/demo/dev/"
            "1795923525236-2026-11-29T03:38:45.236Z/compiled-cloudformation-template.json",
            "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-1q2w3e4r5t6y/serverless/demo/dev/"
            "1795999999999-2026-12-01T10:00:00.000Z/demo.zip",
        ),
    ],
)
def test_two_deploys_give_the_same_pattern(name: str, action: str, first: str, second: str) -> None:
    """What changes between two deploys of the same service does not change the grant."""
    one, two = scope(Action(action), first), scope(Action(action), second)
    assert one is not None, name
    assert two is not None
    assert one.grant == two.grant


@pytest.mark.parametrize(
    ("name", "action", "resource"),
    [
        ("a wildcard role name", "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/*"),
        ("a wildcard inside a name", "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/demo-*-x"),
        ("a wildcard bucket", "s3:GetObject", "arn:aws:s3:::*/*"),
        ("a wildcard account", "iam:PassRole", "arn:aws:iam::*:role/demo"),
        ("a question mark", "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/dem?"),
        (
            "a wildcard stack name",
            "cloudformation:CreateStack",
            f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/*/*",
        ),
        ("a secret named without an ARN", "secretsmanager:GetSecretValue", "settings"),
        ("a masked resource", "iam:CreateRole", "***"),
    ],
)
def test_scope_never_takes_a_pattern_from_text(name: str, action: str, resource: str) -> None:
    """Text is untrusted: a wildcard in it, or a name that is no ARN, grants nothing."""
    assert scope(Action(action), resource, origin=denial(action, resource)) is None, name


def test_iam_names_become_arns_in_the_callers_account() -> None:
    """IAM's older ``role NAME`` is read as the role in the denied principal's account."""
    scoped = scope(
        Action("iam:GetRole"), "role helloworld-dev", origin=denial("iam:GetRole", "role x")
    )
    assert scoped is not None
    assert scoped.grant.resource == f"arn:aws:iam::{ACCOUNT}:role/helloworld-dev"


LAMBDA_ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-dev-us-east-1-lambdaRole"


@pytest.mark.parametrize(
    ("name", "at", "condition"),
    [
        (
            "a function's role goes to Lambda",
            ("HelloLambdaFunction", "AWS::Lambda::Function"),
            (("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),),
        ),
        (
            "a state machine's role goes to Step Functions",
            ("Flow", "AWS::StepFunctions::StateMachine"),
            (("StringEquals", "iam:PassedToService", ("states.amazonaws.com",)),),
        ),
        ("an unknown resource type invents nothing", ("Thing", "AWS::Custom::Thing"), ()),
        ("the deploy's output does not say where the role goes", None, ()),
    ],
)
def test_passrole_is_conditioned_on_the_service_it_goes_to(
    name: str, at: tuple[str, str] | None, condition: object
) -> None:
    """iam:PassRole gets iam:PassedToService only when a stack event shows the service."""
    origin = denial("iam:PassRole", LAMBDA_ROLE, source="stack-event" if at else "output", at=at)
    scoped = scope(Action("iam:PassRole"), LAMBDA_ROLE, origin=origin)
    assert scoped is not None, name
    assert scoped.grant.resource == LAMBDA_ROLE
    assert scoped.grant.condition == condition


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "a resource handler's message naming Lambda",
            'Resource handler returned message: "User: x is not authorized to perform: '
            'iam:PassRole (Service: Lambda, Status Code: 403, Request ID: 1)"',
        ),
        (
            "text shaped like a stack event",
            "HelloLambdaFunction (AWS::Lambda::Function) CREATE_FAILED: User: x is not authorized",
        ),
    ],
)
def test_a_message_never_decides_a_grant(name: str, message: str) -> None:
    """Scoping reads the denial's fields: text that names a service or a resource is ignored."""
    origin = denial("iam:PassRole", LAMBDA_ROLE, message=message)
    scoped = scope(Action("iam:PassRole"), LAMBDA_ROLE, origin=origin)
    plain = scope(Action("iam:PassRole"), LAMBDA_ROLE, origin=denial("iam:PassRole", LAMBDA_ROLE))
    assert scoped is not None, name
    assert scoped == plain
    assert stack_resource(origin) is None


def test_no_condition_where_iam_does_not_list_the_key() -> None:
    """Only actions whose IAM data lists iam:PassedToService get it."""
    origin = denial(
        "iam:GetRole",
        LAMBDA_ROLE,
        source="stack-event",
        at=("Fn", "AWS::Lambda::Function"),
    )
    scoped = scope(Action("iam:GetRole"), LAMBDA_ROLE, origin=origin)
    assert scoped is not None
    assert scoped.grant.condition == ()


def test_a_name_cloudformation_generated_uses_the_logical_id() -> None:
    """A stack event's logical id marks the suffix CloudFormation added, even all letters."""
    arn = f"arn:aws:iam::{ACCOUNT}:role/demo-dev-IamRoleLambdaExecution-ABCDEFGHIJKL"
    origin = denial(
        "iam:CreateRole",
        arn,
        source="stack-event",
        at=("IamRoleLambdaExecution", "AWS::IAM::Role"),
    )
    assert stack_resource(origin) is not None
    scoped = scope(Action("iam:CreateRole"), arn, origin=origin)
    assert scoped is not None
    assert scoped.grant.resource == f"arn:aws:iam::{ACCOUNT}:role/demo-dev-IamRoleLambdaExecution-*"
    without = scope(Action("iam:CreateRole"), arn)
    assert without is not None
    assert without.grant.resource == arn  # without the event, all letters do not look random


@pytest.mark.parametrize(
    ("name", "role", "logical_id"),
    [
        ("a service named like the logical id", "pipeline-worker-dev-pipeline", "PipelineRole"),
        ("the logical id inside the stack name", "orders-dev-queuerole", "QueueRole"),
    ],
)
def test_a_named_role_is_not_taken_for_a_generated_one(
    name: str, role: str, logical_id: str
) -> None:
    """A role the template names (its last word a word, not CloudFormation's suffix) stays
    exact, even when its logical id resembles the service's name."""
    arn = f"arn:aws:iam::{ACCOUNT}:role/{role}"
    origin = denial("iam:CreateRole", arn, source="stack-event", at=(logical_id, "AWS::IAM::Role"))
    scoped = scope(Action("iam:CreateRole"), arn, origin=origin)
    assert scoped is not None
    assert scoped.grant.resource == arn, name


def g(action: str, resource: str) -> Grant:
    return Grant(Action(action), resource)


BUCKET_PATTERN = "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-*"


@pytest.mark.parametrize(
    ("name", "action", "resource", "granted", "pattern"),
    [
        (
            "a bucket made again, its suffix all letters, named as already granted",
            "s3:PutEncryptionConfiguration",
            "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-pxgdoboceqtw",
            [g("s3:CreateBucket", BUCKET_PATTERN)],
            BUCKET_PATTERN,
        ),
        (
            "without that grant the same name stays exact",
            "s3:PutEncryptionConfiguration",
            "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-pxgdoboceqtw",
            [],
            "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-pxgdoboceqtw",
        ),
        (
            "a granted stem does not reach a longer name",
            "s3:PutEncryptionConfiguration",
            "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-logs-archive",
            [g("s3:CreateBucket", BUCKET_PATTERN)],
            "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-logs-archive",
        ),
        (
            "another API's collection is not an id that changed",
            "apigateway:POST",
            "arn:aws:apigateway:us-east-1::/apis/ds6l9udd41/integrations",
            [
                g(
                    "apigateway:POST",
                    "arn:aws:apigateway:us-east-1::/restapis/9xm9ehuyww/deployments",
                )
            ],
            "arn:aws:apigateway:us-east-1::/apis/*/integrations",
        ),
        (
            "a REST API id that changed between runs",
            "apigateway:GET",
            "arn:aws:apigateway:us-east-1::/restapis/nifvrgqdwp",
            [g("apigateway:GET", "arn:aws:apigateway:us-east-1::/restapis/9xm9ehuyww")],
            "arn:aws:apigateway:us-east-1::/restapis/*",
        ),
        (
            "an API Gateway path IAM has no format for, whose ids changed between runs",
            "apigateway:POST",
            "arn:aws:apigateway:us-east-1::/restapis/iar5dm36nc/resources/gxvjty9bh6",
            [
                g(
                    "apigateway:POST",
                    "arn:aws:apigateway:us-east-1::/restapis/wuo30ma3tq/resources/ygjf3vvmy1",
                )
            ],
            "arn:aws:apigateway:us-east-1::/restapis/*/resources/*",
        ),
        (
            "generated ids in a path are * without earlier evidence",
            "apigateway:POST",
            "arn:aws:apigateway:us-east-1::/restapis/iar5dm36nc/resources/gxvjty9bh6",
            [
                g(
                    "apigateway:PUT",
                    "arn:aws:apigateway:us-east-1::/restapis/wuo30ma3tq/resources/ygjf3vvmy1",
                )
            ],
            "arn:aws:apigateway:us-east-1::/restapis/*/resources/*",
        ),
        (
            "a deployment's ids are both generated",
            "apigateway:DELETE",
            "arn:aws:apigateway:us-east-1::/restapis/gpjo2wh12p/deployments/xfaichwtui",
            [g("apigateway:GET", "arn:aws:apigateway:us-east-1::/restapis/*")],
            "arn:aws:apigateway:us-east-1::/restapis/*/deployments/*",
        ),
        (
            "a method path is not read as one long REST API id",
            "apigateway:PUT",
            "arn:aws:apigateway:us-east-1::/restapis/nifvrgqdwp/resources/x4or4dxhl0/methods/GET",
            [g("apigateway:PUT", "arn:aws:apigateway:us-east-1::/restapis/9xm9ehuyww")],
            "arn:aws:apigateway:us-east-1::/restapis/*/resources/*/methods/GET",
        ),
        (
            "a REST API id is generated: * from the first denial",
            "apigateway:GET",
            "arn:aws:apigateway:us-east-1::/restapis/nifvrgqdwp",
            [],
            "arn:aws:apigateway:us-east-1::/restapis/*",
        ),
        (
            "another key for another action is another key",
            "kms:Encrypt",
            f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{OTHER_STACK_ID}",
            [g("kms:Decrypt", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{STACK_ID}")],
            f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{OTHER_STACK_ID}",
        ),
    ],
)
def test_scope_learns_from_the_grants_made_so_far(
    name: str, action: str, resource: str, granted: list[Grant], pattern: str
) -> None:
    """A name already granted as stem*, or an id that changed between runs, is generalised
    the same way; without that evidence it stays exact."""
    scoped = scope(Action(action), resource, granted=granted)
    assert scoped is not None, name
    assert scoped.grant.resource == pattern


# --- properties -------------------------------------------------------------------------------

PROPERTY_ACTIONS = tuple(
    Action(a)
    for a in (
        "cloudformation:CreateChangeSet",
        "cloudformation:DescribeStacks",
        "cloudformation:ExecuteChangeSet",
        "s3:PutObject",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:CreateBucket",
        "iam:PassRole",
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "lambda:CreateFunction",
        "lambda:AddPermission",
        "logs:CreateLogGroup",
        "apigateway:POST",
        "dynamodb:CreateTable",
        "sqs:CreateQueue",
        "sns:Publish",
        "events:PutRule",
        "kms:Decrypt",
        "ssm:GetParameter",
        "secretsmanager:GetSecretValue",
        "states:CreateStateMachine",
        "ecr:PutImage",
        "ec2:RunInstances",
    )
)
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
FIXED = ("Partition", "Region", "Account")
NAME_CHARS = string.ascii_letters + string.digits + "-_."


@st.composite
def random_suffix(draw: st.DrawFn) -> str:
    alphabet = draw(st.sampled_from([string.ascii_lowercase, string.ascii_uppercase]))
    return draw(st.text(alphabet + string.digits, min_size=8, max_size=14))


def value_for(name: str, last: bool) -> st.SearchStrategy[str]:
    if name == "Partition":
        return st.sampled_from(["aws", "aws-cn", "aws-us-gov"])
    if name == "Region":
        return st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2"])
    if name == "Account":
        return st.from_regex(r"\A[0-9]{12}\Z")
    word = st.text(NAME_CHARS, min_size=1, max_size=20)
    shapes = [
        word,
        st.builds(lambda stem, suffix: f"{stem}-{suffix}", word, random_suffix()),
        st.uuids().map(str),
    ]
    if last:  # the last placeholder may hold a path (object keys, API paths)
        shapes.append(st.lists(word, min_size=1, max_size=5).map("/".join))
    return st.one_of(shapes)


@st.composite
def denied_resources(draw: st.DrawFn) -> tuple[Action, str]:
    action = draw(st.sampled_from(PROPERTY_ACTIONS))
    resource_type = draw(st.sampled_from(iamdb.resource_types(action)))
    arn_format = draw(st.sampled_from(resource_type.arn_formats))
    names = PLACEHOLDER.findall(arn_format)
    values: dict[str, str] = {}
    for name in names:
        at_end = arn_format.endswith("${" + name + "}")
        values.setdefault(name, draw(value_for(name, last=at_end)))
    arn = PLACEHOLDER.sub(lambda m: values[m.group(1)], arn_format)
    return action, arn


PROPERTIES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTIES
@given(denied_resources())
def test_scope_covers_the_denied_resource_and_stays_in_its_format(
    denied: tuple[Action, str],
) -> None:
    """The pattern matches the ARN it came from, fits the same resource type's format with
    the same partition, region and account, and is never a bare * for a typed action."""
    action, arn = denied
    scoped = scope(action, arn)
    assert scoped is not None
    pattern = scoped.grant.resource
    assert pattern != "*"
    assert resource_matches(pattern, arn)
    resource_type = iamdb.match_resource_type(action, arn)
    assert resource_type is not None
    found = resource_type.matching_format(pattern)
    assert found is not None, (arn, pattern)
    original = resource_type.matching_format(arn)
    assert original is not None
    for name in FIXED:
        if name in found[1].groupdict():
            assert found[1].group(name) == original[1].group(name)


@PROPERTIES
@given(denied_resources(), st.data())
def test_a_wildcard_written_into_a_name_is_never_granted(
    denied: tuple[Action, str], data: st.DataObject
) -> None:
    """A * that the text put inside a name makes the denial ungrantable, whole: no grant."""
    action, arn = denied
    resource_type = iamdb.match_resource_type(action, arn)
    assert resource_type is not None
    found = resource_type.matching_format(arn)
    assert found is not None
    names = [n for n in found[1].groupdict() if n.endswith(("Name", "NameWithPath"))]
    if not names:
        return
    name = data.draw(st.sampled_from(names))
    start, end = found[1].span(name)
    at = data.draw(st.integers(start, end - 1))
    hostile = arn[:at] + "*" + arn[at + 1 :]
    # The one shape AWS writes itself: all the objects of one bucket (``bucket/*``).
    assume(not (name == "ObjectName" and hostile[start:end] == "*"))
    assert scope(action, hostile) is None


@pytest.mark.parametrize(
    ("case", "tagged", "expected"),
    [
        (
            "a REST API's generated id",
            "arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Frestapis%2Fltyec4chp9",
            "arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Frestapis%2F*",
        ),
        (
            "nothing generated inside",
            "arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Fdomainnames%2Fapi.example.com",
            "arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Fdomainnames%2Fapi.example.com",
        ),
    ],
)
def test_api_gateway_tags_generalise_the_tagged_arn(case: str, tagged: str, expected: str) -> None:
    """API Gateway names a tagging call by the tagged resource's URL-encoded ARN: the ids
    generated inside it become *, still encoded; the rest stays."""
    scoped = scope(Action("apigateway:PUT"), f"arn:aws:apigateway:us-east-1::/tags/{tagged}")
    assert scoped is not None
    assert scoped.grant.resource == f"arn:aws:apigateway:us-east-1::/tags/{expected}"


def test_a_layer_version_number_is_generalised() -> None:
    """A layer version's number grows with every publish: the grant covers the next ones."""
    scoped = scope(
        Action("lambda:GetLayerVersion"), "arn:aws:lambda:us-east-1:123456789012:layer:shared:18"
    )
    assert scoped is not None
    assert scoped.grant.resource == "arn:aws:lambda:us-east-1:123456789012:layer:shared:*"
