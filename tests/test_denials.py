"""The denial parser on hand-written shapes, adversarial text, and streams of lines."""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from discover import denials
from discover.denials import (
    Denial,
    Reason,
    ResourceKind,
    dedupe,
    describe_unfixable,
    iter_denials,
    parse_denials,
)

Row = tuple[str | None, str | None, str | None, Reason]

ROLE = "arn:aws:sts::123456789012:assumed-role/sandbox/discover"
USER = "arn:aws:iam::123456789012:user/ci"


REPEATED = (
    f"[AccessDenied: User: {USER} is not authorized to perform: iam:GetUser on resource: user/ci]"
)


def rows(found: tuple[Denial, ...] | list[Denial]) -> list[Row]:
    return [(d.principal, d.action, d.resource, d.reason) for d in found]


SHAPES: list[tuple[str, str, list[Row]]] = [
    (
        "create stack, no reason (issue example)",
        "User: arn:aws:sts::ACCOUNT-ID:assumed-role/ServerlessLambdaDeployRole/lambdadeploy is "
        "not authorized to perform: cloudformation:CreateStack on resource: "
        "arn:aws:cloudformation:us-east-1:TARGET-ACCOUNT-ID:stack/deploy-demo/*",
        [
            (
                "arn:aws:sts::ACCOUNT-ID:assumed-role/ServerlessLambdaDeployRole/lambdadeploy",
                "cloudformation:CreateStack",
                "arn:aws:cloudformation:us-east-1:TARGET-ACCOUNT-ID:stack/deploy-demo/*",
                Reason.UNSPECIFIED,
            )
        ],
    ),
    (
        "validate template, no resource (issue example)",
        "Error: The CloudFormation template is invalid: User: arn:aws:sts::ACOUNT-ID:assumed-role/"
        "ServerlessLambdaDeployRole/lambdadeploy is not authorized to perform: "
        "cloudformation:ValidateTemplate",
        [
            (
                "arn:aws:sts::ACOUNT-ID:assumed-role/ServerlessLambdaDeployRole/lambdadeploy",
                "cloudformation:ValidateTemplate",
                None,
                Reason.UNSPECIFIED,
            )
        ],
    ),
    (
        "S3 resource in double quotes",
        f"User: {USER} is not authorized to perform: s3:PutObject on resource: "
        '"arn:aws:s3:::bucket/key" because no identity-based policy allows the s3:PutObject action',
        [(USER, "s3:PutObject", "arn:aws:s3:::bucket/key", Reason.NO_IDENTITY_POLICY)],
    ),
    (
        "CloudFormation resource handler: resource stops before the trailing text",
        f'Resource handler returned message: "User: {ROLE} is not authorized to perform: '
        "iam:CreateRole on resource: arn:aws:iam::123456789012:role/x because no identity-based "
        "policy allows the iam:CreateRole action (Service: Iam, Status Code: 403, Request ID: "
        'abc)" (RequestToken: t, HandlerErrorCode: AccessDenied)',
        [(ROLE, "iam:CreateRole", "arn:aws:iam::123456789012:role/x", Reason.NO_IDENTITY_POLICY)],
    ),
    (
        "CloudFormation resource handler without a reason",
        f'Resource handler returned message: "User: {ROLE} is not authorized to perform: '
        "iam:CreateRole on resource: arn:aws:iam::123456789012:role/x (Service: Iam, Status "
        'Code: 403, Request ID: abc)" (RequestToken: t, HandlerErrorCode: AccessDenied)',
        [(ROLE, "iam:CreateRole", "arn:aws:iam::123456789012:role/x", Reason.UNSPECIFIED)],
    ),
    (
        "explicit deny in an SCP, with the policy's ARN",
        "An error occurred (AccessDenied) when calling the ListRoles operation: User: "
        "arn:aws:iam::123456789012:user/Matt is not authorized to perform: iam:ListRoles on "
        "resource: arn:aws:iam::123456789012:role/* with an explicit deny in a service control "
        "policy: arn:aws:organizations::987654321098:policy/o-qv5af4abcd/service_control_policy/"
        "p-2kgnabcd",
        [
            (
                "arn:aws:iam::123456789012:user/Matt",
                "iam:ListRoles",
                "arn:aws:iam::123456789012:role/*",
                Reason.EXPLICIT_DENY_SCP,
            )
        ],
    ),
    (
        "explicit deny in a permissions boundary, no resource, wrapped after perform:",
        "User: arn:aws:iam::777788889999:user/JohnDoe is not authorized to perform: \n"
        "sagemaker:ListModels with an explicit deny in a permissions boundary",
        [
            (
                "arn:aws:iam::777788889999:user/JohnDoe",
                "sagemaker:ListModels",
                None,
                Reason.EXPLICIT_DENY_BOUNDARY,
            )
        ],
    ),
    (
        "explicit deny in a resource-based policy",
        f"User: {USER} is not authorized to perform: secretsmanager:GetSecretValue on resource: "
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:* with an explicit deny in a "
        "resource-based policy",
        [
            (
                USER,
                "secretsmanager:GetSecretValue",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
                Reason.EXPLICIT_DENY_RESOURCE,
            )
        ],
    ),
    (
        "explicit deny in an identity-based policy",
        f"User: {USER} is not authorized to perform: codedeploy:ListDeployments on resource: "
        "arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:* with an explicit deny in an "
        "identity-based policy",
        [
            (
                USER,
                "codedeploy:ListDeployments",
                "arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:*",
                Reason.EXPLICIT_DENY_IDENTITY,
            )
        ],
    ),
    (
        "explicit deny, policy type unsaid",
        f"User: {ROLE} is not authorized to perform: iam:CreateRole on resource: "
        "arn:aws:iam::123456789012:role/r with an explicit deny",
        [
            (
                ROLE,
                "iam:CreateRole",
                "arn:aws:iam::123456789012:role/r",
                Reason.EXPLICIT_DENY_UNSPECIFIED,
            )
        ],
    ),
    (
        "no permissions boundary allows",
        f"User: {ROLE} is not authorized to perform: codedeploy:ListDeployments on resource: "
        "arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:* because no permissions "
        "boundary allows the codedeploy:ListDeployments action",
        [
            (
                ROLE,
                "codedeploy:ListDeployments",
                "arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:*",
                Reason.NO_BOUNDARY,
            )
        ],
    ),
    (
        "no session policy allows",
        f"User: {ROLE} is not authorized to perform: codecommit:ListRepositories because no "
        "session policy allows the codecommit:ListRepositories action",
        [(ROLE, "codecommit:ListRepositories", None, Reason.NO_SESSION_POLICY)],
    ),
    (
        "no resource-based policy allows",
        f"User: {ROLE} is not authorized to perform: kms:Decrypt on resource: "
        "arn:aws:kms:us-east-1:123456789012:key/k because no resource-based policy allows the "
        "kms:Decrypt action",
        [
            (
                ROLE,
                "kms:Decrypt",
                "arn:aws:kms:us-east-1:123456789012:key/k",
                Reason.NO_RESOURCE_POLICY,
            )
        ],
    ),
    (
        "VPC endpoint policy transitively through an SCP",
        "User: arn:aws:sts::111122223333:assumed-role/role-name/role-session-name is not "
        "authorized to perform: \nSNS:Publish on resource: arn:aws:sns:us-east-1:444455556666:"
        "role-name-2 \nwith an explicit deny in a VPC endpoint policy transitively through a "
        "service control policy",
        [
            (
                "arn:aws:sts::111122223333:assumed-role/role-name/role-session-name",
                "sns:Publish",
                "arn:aws:sns:us-east-1:444455556666:role-name-2",
                Reason.EXPLICIT_DENY_SCP,
            )
        ],
    ),
    (
        "JSON-escaped message inside a log line",
        '2024-05-01 ERROR {"errorMessage":"User: '
        + ROLE
        + " is not authorized to perform: sqs:CreateQueue on resource: "
        "arn:aws:sqs:us-east-1:123456789012:q because no identity-based policy allows the "
        'sqs:CreateQueue action\\n    at handler","code":"AccessDenied"}',
        [
            (
                ROLE,
                "sqs:CreateQueue",
                "arn:aws:sqs:us-east-1:123456789012:q",
                Reason.NO_IDENTITY_POLICY,
            )
        ],
    ),
    (
        "JSON escaped twice: escaped quotes end the resource",
        '{"log":"{\\"message\\":\\"User: '
        + ROLE
        + " is not authorized to perform: dynamodb:PutItem on resource: "
        "arn:aws:dynamodb:us-east-1:123456789012:table/t"
        '\\",\\"code\\":\\"AccessDeniedException\\"}"}',
        [
            (
                ROLE,
                "dynamodb:PutItem",
                "arn:aws:dynamodb:us-east-1:123456789012:table/t",
                Reason.UNSPECIFIED,
            )
        ],
    ),
    (
        "resource ARN hard-wrapped mid-token by a log viewer",
        f"User: {ROLE} is not authorized to perform: lambda:CreateFunction on resource: "
        "arn:aws:lambda:us-east-1:1234\n56789012:function:demo-dev-hello because no "
        "identity-based policy allows the lambda:CreateFunction action",
        [
            (
                ROLE,
                "lambda:CreateFunction",
                "arn:aws:lambda:us-east-1:123456789012:function:demo-dev-hello",
                Reason.NO_IDENTITY_POLICY,
            )
        ],
    ),
    (
        "principal ARN hard-wrapped mid-token",
        "User: arn:aws:sts::123456789012:assumed-role/deploy-ro\nle/ci is not authorized to "
        "perform: iam:PassRole on resource: arn:aws:iam::123456789012:role/x",
        [
            (
                "arn:aws:sts::123456789012:assumed-role/deploy-role/ci",
                "iam:PassRole",
                "arn:aws:iam::123456789012:role/x",
                Reason.UNSPECIFIED,
            )
        ],
    ),
    (
        "action hard-wrapped mid-name",
        f"User: {ROLE} is not authorized to perform: lambda:Invoke\nFunction on resource: "
        "arn:aws:lambda:us-east-1:123456789012:function:f",
        [
            (
                ROLE,
                "lambda:InvokeFunction",
                "arn:aws:lambda:us-east-1:123456789012:function:f",
                Reason.UNSPECIFIED,
            )
        ],
    ),
    (
        "neighbouring lines of one width are not glued",
        "ServerlessError: User: arn:aws:iam::123456789012:user/ci\n"
        "     is not authorized to perform: lambda:CreateFunction\n"
        "     on resource: arn:aws:lambda:us-east-1:123456789012:function:demo-2\n"
        "webpack compiled successfully in 218 ms; chunk main.js 218 KiB [emitted]",
        [
            (
                USER,
                "lambda:CreateFunction",
                "arn:aws:lambda:us-east-1:123456789012:function:demo-2",
                Reason.UNSPECIFIED,
            )
        ],
    ),
    (
        "a line that ends after a complete ARN is not a wrap",
        f"User: {ROLE} is not authorized to perform: iam:CreateRole on resource: "
        "arn:aws:iam::123456789012:role/some-role\nstatus code: 403, request id: abc",
        [(ROLE, "iam:CreateRole", "arn:aws:iam::123456789012:role/some-role", Reason.UNSPECIFIED)],
    ),
    (
        "message wrapped at words over several indented lines",
        "ServerlessError: User: arn:aws:iam::123456789012:user/ci\n"
        "     is not authorized to perform: cloudformation:DescribeStackResources\n"
        "     on resource: arn:aws:cloudformation:us-east-1:123456789012:stack/demo-dev/*\n",
        [
            (
                USER,
                "cloudformation:DescribeStackResources",
                "arn:aws:cloudformation:us-east-1:123456789012:stack/demo-dev/*",
                Reason.UNSPECIFIED,
            )
        ],
    ),
    (
        "Terraform's box-drawn continuation lines",
        "│ Error: creating IAM Role (x): AccessDenied: User: "
        + ROLE
        + " is not authorized to perform: iam:CreateRole on resource:\n│ "
        "arn:aws:iam::123456789012:role/x because no identity-based policy allows the "
        "iam:CreateRole action\n│ \tstatus code: 403",
        [(ROLE, "iam:CreateRole", "arn:aws:iam::123456789012:role/x", Reason.NO_IDENTITY_POLICY)],
    ),
    (
        "CloudFormation event prefixed API: svc:Action",
        "CREATE_FAILED | AWS::IAM::Role | Role | API: iam:CreateRole User: "
        + ROLE
        + " is not authorized to perform: iam:CreateRole on resource: "
        "arn:aws:iam::123456789012:role/demo with an explicit deny",
        [
            (
                ROLE,
                "iam:CreateRole",
                "arn:aws:iam::123456789012:role/demo",
                Reason.EXPLICIT_DENY_UNSPECIFIED,
            )
        ],
    ),
    (
        "CloudFormation event: API names one call, the denial another",
        "CREATE_FAILED AWS::CloudWatch::Alarm API: cloudwatch:PutMetricAlarm User: <username> is "
        "not authorized to perform: iam:CreateServiceLinkedRole on resource: "
        "arn:aws:iam::123456789012:role/aws-service-role/events.amazonaws.com/X",
        [
            (
                "<username>",
                "iam:CreateServiceLinkedRole",
                "arn:aws:iam::123456789012:role/aws-service-role/events.amazonaws.com/X",
                Reason.UNSPECIFIED,
            )
        ],
    ),
    (
        "S3 bare Access Denied naming the operation",
        "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied",
        [(None, "s3:PutObject", None, Reason.S3_OPAQUE)],
    ),
    (
        "S3 ListObjectsV2 is the ListBucket action",
        "An error occurred (AccessDenied) when calling the ListObjectsV2 operation: Access Denied",
        [(None, "s3:ListBucket", None, Reason.S3_OPAQUE)],
    ),
    (
        "boto3 HEAD on S3: 403 Forbidden",
        "botocore.exceptions.ClientError: An error occurred (403) when calling the HeadObject "
        "operation: Forbidden",
        [(None, "s3:GetObject", None, Reason.S3_OPAQUE)],
    ),
    (
        "Go SDK v2 S3 error",
        "operation error S3: HeadObject, https response error StatusCode: 403, RequestID: X, "
        "HostID: Y, api error Forbidden: Forbidden",
        [(None, "s3:GetObject", None, Reason.S3_OPAQUE)],
    ),
    (
        "CloudFormation S3 event: API: s3:CreateBucket Access Denied",
        "CREATE_FAILED | API: s3:CreateBucket Access Denied",
        [(None, "s3:CreateBucket", None, Reason.S3_OPAQUE)],
    ),
    (
        "S3 Access Denied naming no operation",
        "Error: AccessDenied: Access Denied\n\tstatus code: 403, request id: 1, host id: 2",
        [(None, None, None, Reason.S3_OPAQUE)],
    ),
    (
        "Access Denied after a non-S3 operation names no action",
        "An error occurred (ValidationError) when calling the CreateChangeSet operation: S3 "
        "error: Access Denied",
        [(None, None, None, Reason.S3_OPAQUE)],
    ),
    (
        "encoded authorization failure message",
        "Error launching source instance: UnauthorizedOperation: You are not authorized to "
        "perform this operation. Encoded authorization failure message: abcDEF-123_xyz",
        [(None, None, None, Reason.ENCODED)],
    ),
    (
        "EC2's bare UnauthorizedOperation",
        "UnauthorizedOperation: You are not authorized to perform this operation.\n\tstatus "
        "code: 403",
        [(None, None, None, Reason.UNSPECIFIED)],
    ),
    (
        "CloudFormation API prefix names the action of a bare EC2 refusal",
        "CREATE_FAILED AWS::EC2::VPC Vpc API: ec2:CreateVpc You are not authorized to perform "
        "this operation.",
        [(None, "ec2:CreateVpc", None, Reason.UNSPECIFIED)],
    ),
    (
        "missing space between principal and is not authorized",
        '"errorMessage": "User: arn:aws:sts::111111111111:assumed-role/r/i-0abcis not authorized '
        "to perform: iam:UpdateAssumeRolePolicy on resource: role cdk-role because no "
        'identity-based policy allows the iam:UpdateAssumeRolePolicy action"',
        [
            (
                "arn:aws:sts::111111111111:assumed-role/r/i-0abc",
                "iam:UpdateAssumeRolePolicy",
                "role cdk-role",
                Reason.NO_IDENTITY_POLICY,
            )
        ],
    ),
    (
        "decoy action named elsewhere in the snippet",
        "Error calling API cloudformation:CreateChangeSet. ErrorCode: ValidationError, Message: "
        "User: arn:aws:sts::123:assumed-role/PuppetRole/s is not authorized to perform: "
        "SNS:Publish on resource: arn:aws:sns:eu-west-1:321:events (Service: AmazonSNS; Status "
        "Code: 403; Error Code: AuthorizationError;",
        [
            (
                "arn:aws:sts::123:assumed-role/PuppetRole/s",
                "sns:Publish",
                "arn:aws:sns:eu-west-1:321:events",
                Reason.UNSPECIFIED,
            )
        ],
    ),
    (
        "repeated denial counted once",
        "\n".join([REPEATED] * 3),
        [(USER, "iam:GetUser", "user/ci", Reason.UNSPECIFIED)],
    ),
    (
        "non-ARN resource kept as given",
        f"AccessDenied: User: {ROLE} is not authorized to perform: iam:GetRole on resource: role "
        "XPTO with an explicit deny in an identity-based policy",
        [(ROLE, "iam:GetRole", "role XPTO", Reason.EXPLICIT_DENY_IDENTITY)],
    ),
    (
        "bracketed segment inside an ARN",
        f"User: {ROLE} is not authorized to perform: logs:CreateLogStream on resource: "
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:log-stream:2024/01/01/"
        "[$LATEST]abc because no identity-based policy allows the logs:CreateLogStream action",
        [
            (
                ROLE,
                "logs:CreateLogStream",
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:log-stream:2024/01/01/"
                "[$LATEST]abc",
                Reason.NO_IDENTITY_POLICY,
            )
        ],
    ),
    (
        "two denials, in order",
        f"User: {USER} is not authorized to perform: ssm:GetParameter on resource: "
        "arn:aws:ssm:us-west-2:123456789012:parameter/a (code=AccessDeniedException)\n"
        f"Call failed => User: {USER} is not authorized to perform: cloudformation:DescribeStacks"
        " on resource: arn:aws:cloudformation:us-west-2:123456789012:stack/CDKToolkit/1",
        [
            (
                USER,
                "ssm:GetParameter",
                "arn:aws:ssm:us-west-2:123456789012:parameter/a",
                Reason.UNSPECIFIED,
            ),
            (
                USER,
                "cloudformation:DescribeStacks",
                "arn:aws:cloudformation:us-west-2:123456789012:stack/CDKToolkit/1",
                Reason.UNSPECIFIED,
            ),
        ],
    ),
    (
        "Not authorized to perform, no principal",
        "Error: Could not assume role with OIDC: Not authorized to perform "
        "sts:AssumeRoleWithWebIdentity",
        [(None, "sts:AssumeRoleWithWebIdentity", None, Reason.UNSPECIFIED)],
    ),
    (
        "doesn't have permission to call",
        "AccessDenied. User doesn't have permission to call ssm:GetParameters",
        [(None, "ssm:GetParameters", None, Reason.UNSPECIFIED)],
    ),
    (
        "an additional permission is required",
        "User with accountId: 111111111111 is not authorized to perform CreateLogGroup with Tags."
        '\n  An additional permission "logs:TagResource" is required.',
        [(None, "logs:TagResource", None, Reason.UNSPECIFIED)],
    ),
    (
        "action canonicalised with the IAM data",
        f"User: {ROLE} is not authorized to perform: SNS:Publish on resource: "
        "arn:aws:sns:us-east-1:123456789012:t",
        [(ROLE, "sns:Publish", "arn:aws:sns:us-east-1:123456789012:t", Reason.UNSPECIFIED)],
    ),
    (
        "unknown action kept as written",
        f"User: {USER} is not authorized to perform: ec2:CreateRole on resource: ***\n because no "
        "permissions boundary allows the ec2:CreateRole action.",
        [(USER, "ec2:CreateRole", "***", Reason.NO_BOUNDARY)],
    ),
    (
        "principal named but the action cut off",
        '{"Error":{"Code":"AccessDenied","Message":"User: arn:aws:iam::1:user/u is not '
        "authorized to perform: sts (truncated...)",
        [("arn:aws:iam::1:user/u", None, None, Reason.UNSPECIFIED)],
    ),
    (
        "ANSI colours around the parts",
        f"\x1b[31mUser: {USER}\x1b[39m is not authorized to perform: \x1b[1miam:CreateRole"
        "\x1b[22m on resource: arn:aws:iam::123456789012:role/r",
        [(USER, "iam:CreateRole", "arn:aws:iam::123456789012:role/r", Reason.UNSPECIFIED)],
    ),
    (
        "CRLF line ends",
        f"User: {USER}\r\nis not authorized to perform: iam:CreateRole on resource:\r\n"
        "arn:aws:iam::123456789012:role/r\r\nbecause no identity-based policy allows the "
        "iam:CreateRole action\r\n",
        [(USER, "iam:CreateRole", "arn:aws:iam::123456789012:role/r", Reason.NO_IDENTITY_POLICY)],
    ),
    (
        "KMS's own wording: no resource, no class of reason",
        f"User: {ROLE} is not authorized to perform: kms:Decrypt on the resource associated with "
        "this ciphertext because the resource does not exist in this Region, no resource-based "
        "policies allow access, or a resource-based policy explicitly denies access",
        [(ROLE, "kms:Decrypt", None, Reason.UNSPECIFIED)],
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), SHAPES, ids=[s[0] for s in SHAPES])
def test_shape(name: str, text: str, expected: list[Row]) -> None:
    """Each known message shape parses to its principal, action, resource and reason."""
    assert rows(parse_denials(text)) == expected


@pytest.mark.parametrize(("name", "text", "expected"), SHAPES, ids=[s[0] for s in SHAPES])
def test_shape_streamed(name: str, text: str, expected: list[Row]) -> None:
    """iter_denials reads each shape as parse_denials does, one line at a time."""
    assert rows(list(denials._iter_denials(text.splitlines(), "output", 1, 1))) == expected


def test_encoded_blob_is_kept() -> None:
    """An encoded message's blob is on the denial, joined when a viewer wrapped it."""
    blob = "y9SN8pDcYUETrkaVexi6nw1Erhzr88Kfc_vC5igSEjdSa0kPB7OU"
    text = (
        "UnauthorizedOperation: You are not authorized to perform this op\neration. Encoded "
        f"authorization failure message: {blob[:30]}\n{blob[30:]}\n        status code: 403"
    )
    (denial,) = parse_denials(text)
    assert denial.reason is Reason.ENCODED
    assert denial.action is None
    assert denial.encoded == blob


def test_encoded_without_blob() -> None:
    """An encoded message whose blob was cut off still says why, with no blob."""
    (denial,) = parse_denials(
        "An error occurred (UnauthorizedOperation) when calling the RunInstances operation: You "
        "are not authorized to perform this operation. Encoded authorization failure message:"
    )
    # EC2's UnauthorizedOperation names the operation: the action is ec2:RunInstances.
    assert (denial.reason, denial.action, denial.encoded) == (
        Reason.ENCODED,
        "ec2:RunInstances",
        None,
    )


def test_specific_denial_hides_the_vague_ones() -> None:
    """Codes and encoded blobs around a full message are that message: only it is reported."""
    text = (
        "UnauthorizedOperation: You are not authorized to perform this operation. User: "
        f"{ROLE} is not authorized to perform: ec2:RunInstances on resource: "
        "arn:aws:ec2:us-east-2:123456789012:instance/* with an explicit deny in a service "
        "control policy. Encoded authorization failure message: g4oZPBqZ4Bni8dE5dGjxYTnOZ..."
    )
    assert [(d.action, d.reason) for d in parse_denials(text)] == [
        ("ec2:RunInstances", Reason.EXPLICIT_DENY_SCP)
    ]


def test_denial_carries_source_and_message() -> None:
    """A denial says where its text came from and quotes the line it was read from."""
    text = (
        "noise before\nCREATE_FAILED Role API: iam:CreateRole User: "
        f"{ROLE} is not authorized to perform: iam:CreateRole\nnoise after"
    )
    (denial,) = parse_denials(text, source="stack-event")
    assert denial.source == "stack-event"
    assert denial.message.startswith("CREATE_FAILED Role API: iam:CreateRole User:")
    assert "noise" not in denial.message


def test_unknown_action_is_not_known() -> None:
    """A well-formed action the IAM data lacks is kept as written, and flagged unknown."""
    (denial,) = parse_denials(f"User: {USER} is not authorized to perform: ec2:CreateRole")
    assert denial.action == "ec2:CreateRole"
    assert not denial.action_known


def test_known_action_is_known() -> None:
    """A real action comes out canonical and flagged known."""
    (denial,) = parse_denials(f"User: {USER} is not authorized to perform: IAM:createrole")
    assert denial.action == "iam:CreateRole"
    assert denial.action_known


NEGATIVES: list[tuple[str, str]] = [
    ("expired token", "Error: The security token included in the request is expired"),
    (
        "invalid token",
        "InvalidClientTokenId: The security token included in the request is invalid",
    ),
    ("throttling", "Throttling: Rate exceeded\n\tstatus code: 400"),
    ("already exists", "CREATE_FAILED MyBucket - form-response already exists."),
    (
        "rollback complete",
        "Stack:arn:aws:cloudformation:us-east-1:1:stack/x/y is in ROLLBACK_COMPLETE state and "
        "can not be updated.",
    ),
    ("AMI not shared", "AuthFailure: Not authorized for images: [ami-03a5b89a2fbe7dd3d]"),
    ("MySQL access denied", "ERROR 1045 (28000): Access denied for user 'root'@'localhost'"),
    ("shell permission denied", "bash: ./deploy.sh: Permission denied"),
    ("Lambda permission resource", "CREATE_COMPLETE AWS::Lambda::Permission HelloPermission"),
    (
        "access-denied element of an emulator",
        "An error occurred (403) when calling the CreateFunction operation: "
        "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be "
        "authorized</Message>\n</AccessDeniedException>",
    ),
    ("a name containing the code", "INFO handler=S3AccessDeniedHandler registered"),
    ("not authorized to access a page", "User: anonymous is not authorized to access this page"),
    ("signature mismatch", "SignatureDoesNotMatch: The request signature we calculated is wrong"),
    ("HTTP 403 of something else", "npm ERR! 403 Forbidden - GET https://registry.example/pkg"),
    ("empty", ""),
]


@pytest.mark.parametrize(("name", "text"), NEGATIVES, ids=[n[0] for n in NEGATIVES])
def test_negative_yields_nothing(name: str, text: str) -> None:
    """Text that holds no permission denial yields none."""
    assert parse_denials(text) == ()


ADVERSARIAL: list[tuple[str, str]] = [
    (
        "function named like a wildcard denial",
        "Creating function named `x is not authorized to perform: iam:* on resource: *`",
    ),
    ("principal asks for everything", "User: evil is not authorized to perform: * on resource: *"),
    ("wildcard inside the name", f"User: {USER} is not authorized to perform: s3:Get*"),
    ("single-character wildcard", f"User: {USER} is not authorized to perform: iam:Pass?ole"),
    ("wildcard service", f"User: {USER} is not authorized to perform: *:CreateRole"),
    ("wildcard after doesn't have permission", "User doesn't have permission to call iam:*"),
    ("wildcard as an additional permission", 'An additional permission "iam:*" is required'),
    ("wildcard in a CloudFormation API prefix", "API: iam:* Access Denied"),
]


@pytest.mark.parametrize(("name", "text"), ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL])
def test_adversarial_never_yields_a_wildcard(name: str, text: str) -> None:
    """Text that asks for a wildcard gets no action: never ``*``, never a pattern."""
    for denial in parse_denials(text):
        assert denial.action is None or not any(c in denial.action for c in "*?")
        assert not denial.action_known or denial.action is not None


def test_adversarial_wildcard_is_not_a_denial() -> None:
    """A wildcard where the action goes is no AWS message: nothing is reported for it."""
    text = "Creating function named `x is not authorized to perform: iam:* on resource: *`"
    assert parse_denials(text) == ()


def _repeat(unit: str, size: int) -> str:
    return unit * (size // len(unit) + 1)


HEAVY = 1_000_000
NOT_AUTHORIZED = "is not authorized to perform: s3:GetObject"
DENIED = f"User: {USER} {NOT_AUTHORIZED}"
ON = f"{DENIED} on resource: "
ENCODED = "Encoded authorization failure message: "
LINEARITY: list[tuple[str, Callable[[], str]]] = [
    ("many not-authorized", lambda: _repeat("is not authorized to perform: ", HEAVY)),
    ("many User: labels", lambda: _repeat("User: ", HEAVY) + NOT_AUTHORIZED),
    ("many resources", lambda: _repeat(f"{NOT_AUTHORIZED} on resource: arn:", HEAVY)),
    ("one huge resource token", lambda: ON + "arn:" + "a" * HEAVY),
    ("angle brackets", lambda: ON + "arn:" + "<" * HEAVY),
    ("quotes", lambda: ON + '"' * HEAVY),
    ("quoted colons", lambda: ON + "arn:" + '"x":' * (HEAVY // 4)),
    ("backslashes", lambda: "\\" * HEAVY + 'n"'),
    ("backslashes escaping nothing", lambda: "\\" * HEAVY + "x"),
    ("many short backslash runs", lambda: _repeat("\\\\x", HEAVY)),
    ("an endless colour code", lambda: "\x1b[" + "0" * HEAVY),
    ("many colour codes", lambda: _repeat("\x1b[0;", HEAVY)),
    ("reason words", lambda: DENIED + _repeat(" because with due to no", HEAVY)),
    ("encoded blob lines", lambda: ENCODED + _repeat("A" * 20 + "\n", HEAVY)),
    ("many encoded phrases", lambda: _repeat(ENCODED, HEAVY)),
    (
        "many Access Denied",
        lambda: _repeat("calling the PutObject operation: Access Denied ", HEAVY),
    ),
    ("many AccessDenied codes", lambda: _repeat("(AccessDeniedException)", HEAVY)),
    ("many Forbidden", lambda: _repeat("Forbidden: Forbidden ", HEAVY)),
    ("many API prefixes", lambda: _repeat("API: s3:GetObject ", HEAVY) + "Access Denied"),
    (
        "many Go operations",
        lambda: _repeat("operation error S3: GetObject,", HEAVY) + "Access Denied",
    ),
    ("many permissions", lambda: _repeat("doesn't have permission to ", HEAVY)),
    ("wrapped ARN lines", lambda: ON + "arn:aws:s3:" + _repeat("x" * 60 + "\n", HEAVY)),
    ("box bars", lambda: _repeat("│ ", HEAVY) + NOT_AUTHORIZED),
    ("one long line of noise", lambda: "x" * HEAVY),
]


@pytest.mark.parametrize(("name", "build"), LINEARITY, ids=[c[0] for c in LINEARITY])
def test_large_adversarial_input_parses_in_linear_time(name: str, build: Callable[[], str]) -> None:
    """A megabyte of hostile text parses in well under the time a quadratic read would take."""
    text = build()
    started = time.perf_counter()
    found = parse_denials(text)
    streamed = list(iter_denials(text.splitlines()))
    elapsed = time.perf_counter() - started
    # A quadratic or backtracking read of a megabyte takes minutes; linear takes well under one.
    assert elapsed < 10, f"{name}: {elapsed:.1f}s"
    assert all(d.action is None or "*" not in d.action for d in (*found, *streamed))


# --- streaming ---------------------------------------------------------------------------------


def noisy_lines(count: int, denial_every: int = 0) -> Iterator[str]:
    for number in range(count):
        if denial_every and number % denial_every == 0:
            yield (
                f"User: {ROLE} is not authorized to perform: lambda:CreateFunction on resource: "
                f"arn:aws:lambda:us-east-1:123456789012:function:f{number % 7}\n"
            )
        else:
            yield f"2024-05-01T12:00:00Z INFO packaging chunk {number} of the service, all good\n"


def test_stream_matches_parse_on_a_file_like_stream() -> None:
    """Lines with their newlines (as a file gives them) yield what parse_denials yields."""
    lines = list(noisy_lines(20_000, denial_every=997))
    assert rows(list(iter_denials(lines))) == rows(parse_denials("".join(lines)))


@pytest.mark.parametrize(
    ("name", "chunk_chars", "batch_lines"),
    [
        ("one line per chunk", 1, 1),
        ("tiny chunks", 50, 2),
        ("chunk boundaries mid-message", 120, 3),
    ],
)
def test_message_wrapped_across_chunks_still_parses(
    name: str, chunk_chars: int, batch_lines: int
) -> None:
    """A message wrapped over lines parses whole wherever the chunks are cut."""
    text = (
        "noise\n" * 5 + "ServerlessError: User: arn:aws:iam::123456789012:user/ci\n"
        "     is not authorized to perform: cloudformation:DescribeStacks\n"
        "     on resource: arn:aws:cloudformation:us-east-1:123456789012:stack/demo/*\n"
        "     because no identity-based policy allows the cloudformation:DescribeStacks action\n"
        + "noise\n"
        * 5
    )
    streamed = list(denials._iter_denials(text.splitlines(), "output", chunk_chars, batch_lines))
    assert rows(streamed) == [
        (
            USER,
            "cloudformation:DescribeStacks",
            "arn:aws:cloudformation:us-east-1:123456789012:stack/demo/*",
            Reason.NO_IDENTITY_POLICY,
        )
    ]


def test_stream_dedupes_across_chunks() -> None:
    """The same denial in many chunks is yielded once."""
    streamed = list(denials._iter_denials(noisy_lines(5_000, denial_every=50), "output", 4096, 64))
    assert len(streamed) == 7
    assert len({d.key for d in streamed}) == 7


def test_stream_yields_before_the_end() -> None:
    """A denial is yielded as soon as its chunk is read, not after the whole stream."""
    consumed = 0

    def endless() -> Iterator[str]:
        nonlocal consumed
        yield from noisy_lines(1, denial_every=1)
        while True:
            consumed += 1
            yield "INFO still deploying, nothing to see\n"

    first = next(iter_denials(endless()))
    assert first.action == "lambda:CreateFunction"
    assert consumed < 200_000


def test_stream_memory_is_bounded() -> None:
    """Thirty megabytes of log go through in a few megabytes of memory."""
    tracemalloc.start()
    try:
        found = list(iter_denials(noisy_lines(400_000, denial_every=10_007)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found) == 7
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_stream_vague_denial_only_when_nothing_better() -> None:
    """A denial naming nothing comes last, and only when no denial named anything."""
    vague = ["Error: AccessDenied: Access Denied", "status code: 403"]
    assert rows(list(iter_denials(vague))) == [(None, None, None, Reason.S3_OPAQUE)]
    both = [*vague, *noisy_lines(1, denial_every=1)]
    assert [d.action for d in iter_denials(both)] == ["lambda:CreateFunction"]


# --- reasons -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "fixable"),
    [
        (Reason.NO_IDENTITY_POLICY, True),
        (Reason.UNSPECIFIED, True),
        (Reason.S3_OPAQUE, True),
        (Reason.ENCODED, False),
        (Reason.EXPLICIT_DENY_IDENTITY, False),
        (Reason.EXPLICIT_DENY_SCP, False),
        (Reason.EXPLICIT_DENY_RESOURCE, False),
        (Reason.EXPLICIT_DENY_BOUNDARY, False),
        (Reason.EXPLICIT_DENY_UNSPECIFIED, False),
        (Reason.NO_BOUNDARY, False),
        (Reason.NO_SESSION_POLICY, False),
        (Reason.NO_RESOURCE_POLICY, False),
    ],
)
def test_reason_fixable(reason: Reason, fixable: bool) -> None:
    """Only a missing allow in the identity policy (or an unexplained refusal) is granted."""
    assert reason.fixable is fixable


@pytest.mark.parametrize(
    ("reason", "who"),
    [
        (Reason.EXPLICIT_DENY_SCP, "management account"),
        (Reason.EXPLICIT_DENY_BOUNDARY, "administrator who set the boundary"),
        (Reason.NO_BOUNDARY, "administrator who set the boundary"),
        (Reason.EXPLICIT_DENY_RESOURCE, "resource owner"),
        (Reason.NO_RESOURCE_POLICY, "resource owner"),
        (Reason.NO_SESSION_POLICY, "whoever assumes the role"),
        (Reason.EXPLICIT_DENY_IDENTITY, "whoever owns that deny statement"),
        (Reason.EXPLICIT_DENY_UNSPECIFIED, "policy's owner"),
        (Reason.ENCODED, "decode-authorization-message"),
    ],
)
def test_describe_unfixable_names_who_can_fix(reason: Reason, who: str) -> None:
    """The explanation says which policy must change and who can change it."""
    assert who in describe_unfixable(reason)


@pytest.mark.parametrize("reason", list(Reason), ids=[r.value for r in Reason])
def test_describe_unfixable_is_one_line(reason: Reason) -> None:
    """Every reason has a one-line explanation the CLI can print."""
    text = describe_unfixable(reason)
    assert text
    assert "\n" not in text


# --- the data type -----------------------------------------------------------------------------


def test_denial_encoded_defaults_to_none() -> None:
    """Denials built without the blob (by other modules) keep working."""
    denial = Denial("iam:CreateRole", None, None, Reason.UNSPECIFIED, "output", "m")
    assert denial.encoded is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        denial.action = "x:Y"  # type: ignore[misc]


def test_dedupe_keeps_the_first_of_each_key() -> None:
    """dedupe keeps the first denial of each (principal, action, resource)."""
    first = Denial("iam:CreateRole", "r", "p", Reason.UNSPECIFIED, "output", "first")
    again = dataclasses.replace(first, message="again", reason=Reason.NO_IDENTITY_POLICY)
    other = dataclasses.replace(first, resource="r2")
    assert dedupe([first, again, other]) == (first, other)


KINDS = [
    ("concrete ARN", "arn:aws:iam::123456789012:role/x", ResourceKind.ARN),
    ("redacted ARN", "arn:aws:iam::<account-id>:role/x", ResourceKind.REDACTED_ARN),
    ("IAM entity", "role cdk-hnb659fds-lookup-role-1-eu-west-2", ResourceKind.IAM_ENTITY),
    ("phone number", "+15555550100", ResourceKind.PHONE_NUMBER),
    ("redacted phone number", "+1xxxxxxxxx", ResourceKind.PHONE_NUMBER),
    ("e-mail address", "ops@example.com", ResourceKind.EMAIL_ADDRESS),
    ("bare name", "settings", ResourceKind.NAME),
    ("star", "*", ResourceKind.NAME),
]


@pytest.mark.parametrize(("case", "resource", "kind"), KINDS, ids=[c[0] for c in KINDS])
def test_resource_kind_is_read_from_the_resource(
    case: str, resource: str, kind: ResourceKind
) -> None:
    """A Denial built without a kind (as the loop builds them) gets it from its resource."""
    denial = Denial("iam:GetRole", resource, None, Reason.UNSPECIFIED, "output", "m")
    assert denial.resource_kind is kind
    assert denial.resource_grantable is (kind is ResourceKind.ARN)


def test_no_resource_has_no_kind_and_is_not_grantable() -> None:
    denial = Denial("iam:GetRole", None, None, Reason.UNSPECIFIED, "output", "m")
    assert (denial.resource_kind, denial.resource_grantable) == (None, False)


# (case, text, (action, resource, reason), a word the basis must hold)
INFERRED = [
    (
        "botocore, EC2's error code",
        "An error occurred (UnauthorizedOperation) when calling the DescribeRegions operation: "
        "You are not authorized to perform this operation.",
        ("ec2:DescribeRegions", None, Reason.UNSPECIFIED),
        "UnauthorizedOperation",
    ),
    (
        "botocore, old wording, SNS's error code, no message",
        "A client error (AuthorizationError) occurred when calling the Publish operation: "
        "AccessDenied",
        ("sns:Publish", None, Reason.UNSPECIFIED),
        "AuthorizationError",
    ),
    (
        "botocore, SNS's error code alone",
        "An error occurred (AuthorizationError) when calling the Publish operation: ",
        ("sns:Publish", None, Reason.UNSPECIFIED),
        "AuthorizationError",
    ),
    (
        "botocore, service from the endpoint in the log",
        "Sending http request: url=https://ssm.us-east-1.amazonaws.com/\n"
        "An error occurred (AccessDeniedException) when calling the GetParameters operation: ",
        ("ssm:GetParameters", None, Reason.UNSPECIFIED),
        "ssm.us-east-1.amazonaws.com",
    ),
    (
        "Go SDK v2, any service",
        "operation error Secrets Manager: GetSecretValue, https response error StatusCode: 400, "
        "RequestID: r, AccessDeniedException: ",
        ("secretsmanager:GetSecretValue", None, Reason.UNSPECIFIED),
        "Secrets Manager",
    ),
    (
        "Go SDK v2, EC2 with an encoded message",
        "operation error EC2: RunInstances, https response error StatusCode: 403, RequestID: r, "
        "api error UnauthorizedOperation: You are not authorized to perform this operation. "
        "Encoded authorization failure message: abcdefABCDEF0123456789",
        ("ec2:RunInstances", None, Reason.ENCODED),
        "EC2",
    ),
    (
        "PHP SDK, S3 endpoint",
        'Error executing "DeleteObject" on "https://b.s3.eu-west-1.amazonaws.com/k"; AWS HTTP '
        "error: Client error: `DELETE https://b.s3.eu-west-1.amazonaws.com/k` resulted in a "
        "`403 Forbidden` response:\n<Error><Code>AccessDenied</Code><Message>Access Denied"
        "</Message></Error>",
        ("s3:DeleteObject", None, Reason.S3_OPAQUE),
        "b.s3.eu-west-1.amazonaws.com",
    ),
    (
        "Lambda relaying S3, bucket and key named",
        "Your access has been denied by S3, please make sure your request credentials have "
        "permission to GetObject for my-bucket/code/app.zip. S3 Error Code: AccessDenied. S3 "
        "Error Message: Access Denied",
        ("s3:GetObject", "arn:aws:s3:::my-bucket/code/app.zip", Reason.S3_OPAQUE),
        "S3",
    ),
    (
        "Lambda relaying S3, nothing named",
        'Resource handler returned message: "Error occurred while GetObject. S3 Error Code: '
        'AccessDenied. S3 Error Message: Access Denied (Service: Lambda, Status Code: 400)"',
        ("s3:GetObject", None, Reason.S3_OPAQUE),
        "GetObject",
    ),
    (
        "CloudFormation TemplateURL with the URL",
        "https://s3.amazonaws.com/templates-bucket/main.yaml must reference a valid S3 object "
        "to which you have access.",
        ("s3:GetObject", "arn:aws:s3:::templates-bucket/main.yaml", Reason.S3_OPAQUE),
        "TemplateURL",
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "expected", "basis_word"), INFERRED, ids=[c[0] for c in INFERRED]
)
def test_action_read_from_the_operation_and_its_service(
    case: str, text: str, expected: tuple[str, str | None, Reason], basis_word: str
) -> None:
    """An operation named with its service becomes the IAM action, and the basis says how."""
    (denial,) = parse_denials(text)
    assert (denial.action, denial.resource, denial.reason) == expected
    assert denial.action_known
    assert denial.basis is not None
    assert basis_word in denial.basis


NOT_INFERRED = [
    (
        "an operation two services have, nothing to tell them apart",
        "An error occurred (AccessDeniedException) when calling the CreateFunction operation: None",
    ),
    (
        "an operation the named service does not have",
        "An error occurred (UnauthorizedOperation) when calling the PutObject operation: "
        "You are not authorized to perform this operation.",
    ),
    (
        "an operation on a line before an earlier full denial",
        "An error occurred (UnauthorizedOperation) when calling the RunInstances operation: "
        f"User: {USER} is not authorized to perform: ec2:RunInstances on resource: "
        "arn:aws:ec2:us-east-1:123456789012:instance/*\nAccessDeniedException: ",
    ),
]


@pytest.mark.parametrize(("case", "text"), NOT_INFERRED, ids=[c[0] for c in NOT_INFERRED])
def test_no_action_guessed_without_its_service(case: str, text: str) -> None:
    """No service in the text, or no such operation: the refusal names no action."""
    guessed = [d for d in parse_denials(text) if d.basis is not None]
    assert guessed == []


QUOTED = [
    (
        "SES's old quoting",
        "Access denied: User `arn:aws:iam::123456789012:user/smtp' is not authorized to perform "
        "`ses:SendRawEmail' on resource `arn:aws:ses:eu-west-2:123456789012:identity/a@b.example'",
        (
            "arn:aws:iam::123456789012:user/smtp",
            "ses:SendRawEmail",
            "arn:aws:ses:eu-west-2:123456789012:identity/a@b.example",
        ),
    ),
    (
        "a Markdown quote across the wrap",
        "> User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sns:Publish on\n"
        "> resource: +15555550100 because no identity-based policy allows the\n"
        "> sns:Publish action",
        ("arn:aws:iam::123456789012:user/ci", "sns:Publish", "+15555550100"),
    ),
    (
        "a spaced placeholder in the ARN",
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sqs:SendMessage on "
        "resource: arn:aws:sqs:eu-west-1: <acct> :queue-x",
        (
            "arn:aws:iam::123456789012:user/ci",
            "sqs:SendMessage",
            "arn:aws:sqs:eu-west-1: <acct> :queue-x",
        ),
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), QUOTED, ids=[c[0] for c in QUOTED])
def test_other_wordings_of_the_full_message(
    case: str, text: str, expected: tuple[str, str, str]
) -> None:
    """Old quoting, Markdown quotes and spaced placeholders read as the plain message."""
    (denial,) = parse_denials(text)
    assert (denial.principal, denial.action, denial.resource) == expected


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:iam::<account-id>:role/deploy",
        "arn:aws:iam::XXXXXXXXXXXX:role/deploy",
        "arn:aws:iam:::role/deploy",
        "arn:aws:s3:::{bucket}/key",
    ],
)
def test_redacted_resource_is_never_granted(resource: str) -> None:
    """The grant step takes nothing from a redacted ARN, though it fits a resource type."""
    from discover.iamdb import Action
    from discover.scoping import scope

    text = f"User: {USER} is not authorized to perform: iam:PassRole on resource: {resource}"
    (denial,) = parse_denials(text)
    assert denial.resource == resource
    assert not denial.resource_grantable
    assert scope(Action("iam:PassRole"), denial.resource, origin=denial) is None
