"""The sandbox's policy logic and wording, without a server: evaluation, trust, messages."""

from __future__ import annotations

from typing import Any

import pytest

from discover.denials import Reason, parse_denials
from discover.local.authorize import (
    Decision,
    conditions_hold,
    denial_message,
    evaluate,
    evaluate_trust,
)

ACCOUNT = "123456789012"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/discover-sandbox/tests"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/discover-sandbox"
USER = f"arn:aws:iam::{ACCOUNT}:user/discover-admin"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


STACK = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/0f1e2d3c"


@pytest.mark.parametrize(
    ("name", "policies", "action", "resource", "expected"),
    [
        ("nothing allows", [], "iam:CreateRole", "*", Decision.IMPLICIT_DENY),
        ("allow all", [policy(allow("*"))], "iam:CreateRole", "*", Decision.ALLOWED),
        (
            "action case-insensitive",
            [policy(allow("CloudFormation:describestacks", STACK))],
            "cloudformation:DescribeStacks",
            STACK,
            Decision.ALLOWED,
        ),
        (
            "scoped stack pattern allows its stack",
            [
                policy(
                    allow(
                        "cloudformation:DescribeStacks",
                        "arn:aws:cloudformation:*:*:stack/demo-dev/*",
                    )
                )
            ],
            "cloudformation:DescribeStacks",
            STACK,
            Decision.ALLOWED,
        ),
        (
            "scoped stack pattern denies another stack",
            [
                policy(
                    allow(
                        "cloudformation:DescribeStacks",
                        "arn:aws:cloudformation:*:*:stack/demo-dev/*",
                    )
                )
            ],
            "cloudformation:DescribeStacks",
            STACK.replace("demo-dev", "other-dev"),
            Decision.IMPLICIT_DENY,
        ),
        (
            "resource is case-sensitive",
            [policy(allow("s3:GetObject", "arn:aws:s3:::Bucket/*"))],
            "s3:GetObject",
            "arn:aws:s3:::bucket/key",
            Decision.IMPLICIT_DENY,
        ),
        (
            "explicit deny wins over allow *",
            [policy(allow("*")), policy(deny("iam:CreateRole"))],
            "iam:CreateRole",
            "*",
            Decision.EXPLICIT_DENY,
        ),
        (
            "deny in the same policy wins",
            [policy(allow("iam:*"), deny("iam:Create*"))],
            "iam:CreateRole",
            "*",
            Decision.EXPLICIT_DENY,
        ),
        (
            "NotAction allows the rest",
            [policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})],
            "s3:ListBucket",
            "arn:aws:s3:::b",
            Decision.ALLOWED,
        ),
        (
            "NotAction does not allow what it names",
            [policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})],
            "iam:CreateRole",
            "*",
            Decision.IMPLICIT_DENY,
        ),
        (
            "NotResource",
            [policy({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"})],
            "s3:GetObject",
            "arn:aws:s3:::secret/k",
            Decision.IMPLICIT_DENY,
        ),
        (
            "single statement object, not list",
            [{"Version": "2012-10-17", "Statement": allow("sqs:CreateQueue")}],
            "sqs:CreateQueue",
            "arn:aws:sqs:us-east-1:1:q",
            Decision.ALLOWED,
        ),
    ],
)
def test_evaluate(
    name: str, policies: list[dict[str, Any]], action: str, resource: str, expected: Decision
) -> None:
    """IAM's identity-policy evaluation: explicit deny first, then any matching allow."""
    assert evaluate(policies, action, resource, {}) is expected


PASS_TO_LAMBDA = {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}


@pytest.mark.parametrize(
    ("name", "condition", "context", "holds"),
    [
        ("equals", PASS_TO_LAMBDA, {"iam:PassedToService": "lambda.amazonaws.com"}, True),
        ("not equal", PASS_TO_LAMBDA, {"iam:PassedToService": "ecs-tasks.amazonaws.com"}, False),
        ("missing key", PASS_TO_LAMBDA, {}, False),
        (
            "any of a list",
            {
                "StringEquals": {
                    "iam:PassedToService": ["states.amazonaws.com", "lambda.amazonaws.com"]
                }
            },
            {"iam:PassedToService": "lambda.amazonaws.com"},
            True,
        ),
        (
            "like",
            {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/discover-*"}},
            {"aws:PrincipalArn": ROLE},
            True,
        ),
        ("not equals on a missing key holds", {"StringNotEquals": {"k": "v"}}, {}, True),
        ("not equals", {"StringNotEquals": {"k": "v"}}, {"k": "v"}, False),
        ("if exists on a missing key", {"StringEqualsIfExists": {"k": "v"}}, {}, True),
        ("if exists on a present key", {"StringEqualsIfExists": {"k": "v"}}, {"k": "w"}, False),
        ("bool", {"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "true"}, True),
        (
            "bool as JSON",
            {"Bool": {"aws:SecureTransport": True}},
            {"aws:SecureTransport": "true"},
            True,
        ),
        ("null", {"Null": {"k": "true"}}, {}, True),
        ("numeric", {"NumericLessThan": {"n": "10"}}, {"n": "3"}, True),
        ("unknown operator never holds", {"Whatever": {"k": "v"}}, {"k": "v"}, False),
    ],
)
def test_conditions(
    name: str, condition: dict[str, Any], context: dict[str, str], holds: bool
) -> None:
    """Condition operators read the request context as IAM does (missing keys included)."""
    assert conditions_hold(condition, context) is holds


def test_pass_role_condition_in_a_policy() -> None:
    """An iam:PassRole allowed only to Lambda is allowed for Lambda and for nothing else."""
    policies = [policy(allow("iam:PassRole", ROLE, Condition=PASS_TO_LAMBDA))]
    to_lambda = {"iam:PassedToService": "lambda.amazonaws.com"}
    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert evaluate(policies, "iam:PassRole", ROLE, to_lambda) is Decision.ALLOWED
    assert evaluate(policies, "iam:PassRole", ROLE, to_ecs) is Decision.IMPLICIT_DENY


def trust(principal: Any, effect: str = "Allow", **extra: Any) -> dict[str, Any]:
    return policy({"Effect": effect, "Principal": principal, "Action": "sts:AssumeRole", **extra})


@pytest.mark.parametrize(
    ("name", "trust_policy", "identity", "expected"),
    [
        (
            "names the caller: enough alone",
            trust({"AWS": USER}),
            Decision.IMPLICIT_DENY,
            Decision.ALLOWED,
        ),
        (
            "names the account root: needs identity",
            trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
            Decision.IMPLICIT_DENY,
            Decision.IMPLICIT_DENY,
        ),
        (
            "names the account root, identity allows",
            trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
            Decision.ALLOWED,
            Decision.ALLOWED,
        ),
        ("bare account id", trust({"AWS": ACCOUNT}), Decision.ALLOWED, Decision.ALLOWED),
        (
            "another account",
            trust({"AWS": "arn:aws:iam::210987654321:root"}),
            Decision.ALLOWED,
            Decision.IMPLICIT_DENY,
        ),
        (
            "service principal",
            trust({"Service": "lambda.amazonaws.com"}),
            Decision.ALLOWED,
            Decision.IMPLICIT_DENY,
        ),
        (
            "service list",
            trust({"Service": ["lambda.amazonaws.com"]}),
            Decision.ALLOWED,
            Decision.IMPLICIT_DENY,
        ),
        ("wildcard", trust("*"), Decision.ALLOWED, Decision.ALLOWED),
        (
            "identity deny wins",
            trust({"AWS": USER}),
            Decision.EXPLICIT_DENY,
            Decision.EXPLICIT_DENY,
        ),
        (
            "trust deny wins",
            policy(
                {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"},
                {"Effect": "Deny", "Principal": {"AWS": USER}, "Action": "sts:AssumeRole"},
            ),
            Decision.ALLOWED,
            Decision.EXPLICIT_DENY,
        ),
        (
            "condition on external id, missing",
            trust({"AWS": USER}, Condition={"StringEquals": {"sts:ExternalId": "x"}}),
            Decision.ALLOWED,
            Decision.IMPLICIT_DENY,
        ),
    ],
)
def test_trust(
    name: str, trust_policy: dict[str, Any], identity: Decision, expected: Decision
) -> None:
    """Same-account AssumeRole: a trust naming the caller suffices; ':root' defers to IAM."""
    decision = evaluate_trust(
        trust_policy,
        identity,
        caller_arn=USER,
        identity_arn=USER,
        account=ACCOUNT,
        context={},
    )
    assert decision is expected


@pytest.mark.parametrize(
    ("name", "action", "resource", "decision", "expected_text", "reason"),
    [
        (
            "no identity policy",
            "iam:CreateRole",
            f"arn:aws:iam::{ACCOUNT}:role/demo",
            Decision.IMPLICIT_DENY,
            f"User: {SESSION} is not authorized to perform: iam:CreateRole on resource: "
            f"arn:aws:iam::{ACCOUNT}:role/demo because no identity-based policy allows the "
            "iam:CreateRole action",
            Reason.NO_IDENTITY_POLICY,
        ),
        (
            "explicit deny",
            "iam:CreateRole",
            f"arn:aws:iam::{ACCOUNT}:role/demo",
            Decision.EXPLICIT_DENY,
            f"User: {SESSION} is not authorized to perform: iam:CreateRole on resource: "
            f"arn:aws:iam::{ACCOUNT}:role/demo with an explicit deny in an identity-based policy",
            Reason.EXPLICIT_DENY_IDENTITY,
        ),
        (
            "S3 quotes the resource",
            "s3:PutObject",
            "arn:aws:s3:::bucket/key.zip",
            Decision.IMPLICIT_DENY,
            f"User: {SESSION} is not authorized to perform: s3:PutObject on resource: "
            '"arn:aws:s3:::bucket/key.zip" because no identity-based policy allows the '
            "s3:PutObject action",
            Reason.NO_IDENTITY_POLICY,
        ),
        (
            "SNS capitalises its prefix",
            "sns:CreateTopic",
            f"arn:aws:sns:us-east-1:{ACCOUNT}:topic",
            Decision.IMPLICIT_DENY,
            f"User: {SESSION} is not authorized to perform: SNS:CreateTopic on resource: "
            f"arn:aws:sns:us-east-1:{ACCOUNT}:topic because no identity-based policy allows "
            "the SNS:CreateTopic action",
            Reason.NO_IDENTITY_POLICY,
        ),
        (
            "no resource type: no 'on resource'",
            "cloudformation:ValidateTemplate",
            "*",
            Decision.IMPLICIT_DENY,
            f"User: {SESSION} is not authorized to perform: cloudformation:ValidateTemplate "
            "because no identity-based policy allows the cloudformation:ValidateTemplate action",
            Reason.NO_IDENTITY_POLICY,
        ),
    ],
)
def test_denial_message_reads_back(  # noqa: PLR0917 - one argument per column of the table
    name: str, action: str, resource: str, decision: Decision, expected_text: str, reason: Reason
) -> None:
    """The message is AWS's wording, and the project's parser reads it back exactly."""
    text = denial_message(SESSION, action, resource, decision)
    assert text == expected_text
    (denial,) = parse_denials(text)
    assert denial.action == action
    assert denial.resource == (None if resource == "*" else resource)
    assert denial.principal == SESSION
    assert denial.reason is reason
