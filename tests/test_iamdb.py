"""The IAM knowledge: which ARNs are whole and concrete (and so may be granted)."""

from __future__ import annotations

import pytest

from discover import iamdb

ARNS = [
    ("IAM role", "arn:aws:iam::123456789012:role/x", True),
    ("S3 object: no region, no account", "arn:aws:s3:::bucket/key/with/slashes.json", True),
    ("AWS-owned managed policy", "arn:aws:iam::aws:policy/AdministratorAccess", True),
    ("SAM transform", "arn:aws:cloudformation:us-east-1:aws:transform/Serverless-2016-10-31", True),
    ("API Gateway path: no account", "arn:aws:apigateway:us-east-1::/restapis/*", True),
    (
        "stack wildcard as AWS reports it",
        "arn:aws:cloudformation:us-east-1:123456789012:stack/x/*",
        True,
    ),
    (
        "log stream with [$LATEST]",
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:log-stream:2024/01/01/[$LATEST]ab",
        True,
    ),
    ("China partition", "arn:aws-cn:iam::123456789012:role/x", True),
    ("angle-bracket account", "arn:aws:sqs:eu-west-1:<acct>:queue-x", False),
    ("spaced placeholder", "arn:aws:sqs:eu-west-1: <acct> :queue-x", False),
    ("brace template", "arn:aws:waf-regional:{region}:{account-id}:*/*", False),
    ("CloudFormation template", "arn:aws:iam::${AWS::AccountId}:role/x", False),
    ("account of x's", "arn:aws:iam::XXXXXXXXXXXX:role/x", False),
    ("account too short", "arn:aws:iam::123:user/metcalfc", False),
    ("stars for the account", "arn:aws:iam::*****:role/x", False),
    ("account cut out", "arn:aws:iam::role/foo", False),
    ("account emptied where IAM has one", "arn:aws:iam:::role/x", False),
    ("region emptied where Lambda has one", "arn:aws:lambda::123456789012:function:x", False),
    ("ellipsis", "arn:aws:dynamodb:us-east-1: ... :table/AuthTable", False),
    ("name of x's", "arn:aws:iam::123456789012:role/xxxx", False),
    ("cut short", "arn:aws:sns:e", False),
    ("unknown partition", "arn:foo:iam::123456789012:role/x", False),
    ("not an ARN", "role XPTO", False),
]


@pytest.mark.parametrize(("case", "arn", "concrete"), ARNS, ids=[c[0] for c in ARNS])
def test_is_concrete_arn(case: str, arn: str, concrete: bool) -> None:
    """Only a whole ARN with nothing hidden or templated counts as concrete."""
    assert iamdb.is_concrete_arn(arn) is concrete
