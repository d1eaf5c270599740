"""The policy model: merging, order, stable Sids, IAM's size measure, quotas, reading back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from discover.denials import Denial, Reason
from discover.iamdb import Action
from discover.loop import plan_grants
from discover.policy import (
    INLINE_ROLE_POLICIES_QUOTA,
    MANAGED_POLICY_QUOTA,
    Grant,
    PolicyDocument,
    PolicyError,
    check_quota,
    load_policy,
    policy_size,
    resource_matches,
    split_for_quota,
)

STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/demo-dev/*"
BUCKET = "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-*"
ROLE = "arn:aws:iam::123456789012:role/demo-dev-us-east-1-lambdaRole"
TO_LAMBDA = (("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),)


def grant(action: str, resource: str = "*", condition: Any = ()) -> Grant:
    return Grant(Action(action), resource, condition)


def test_grant_refuses_what_is_not_an_action() -> None:
    """A grant names a real IAM action in canonical case, never a wildcard."""
    for text in ("s3:*", "*", "S3:putobject", "cloudformation:NoSuchThing"):
        with pytest.raises(PolicyError):
            grant(text)


@pytest.mark.parametrize(
    ("name", "grants", "statements"),
    [
        (
            "actions on the same resources merge",
            [
                grant("cloudformation:DescribeStacks", STACK),
                grant("cloudformation:CreateStack", STACK),
            ],
            [(("cloudformation:CreateStack", "cloudformation:DescribeStacks"), (STACK,), ())],
        ),
        (
            "different resource sets stay apart",
            [grant("s3:ListBucket", BUCKET), grant("s3:PutObject", f"{BUCKET}/*")],
            [(("s3:ListBucket",), (BUCKET,), ()), (("s3:PutObject",), (f"{BUCKET}/*",), ())],
        ),
        (
            "one action on two resources is one statement",
            [grant("s3:GetObject", f"{BUCKET}/a/*"), grant("s3:GetObject", f"{BUCKET}/b/*")],
            [(("s3:GetObject",), (f"{BUCKET}/a/*", f"{BUCKET}/b/*"), ())],
        ),
        (
            "a condition keeps its statement apart",
            [grant("iam:PassRole", ROLE, TO_LAMBDA), grant("iam:GetRole", ROLE)],
            [(("iam:GetRole",), (ROLE,), ()), (("iam:PassRole",), (ROLE,), TO_LAMBDA)],
        ),
        (
            "a pattern ending in * covers the names it starts",
            [
                grant("apigateway:GET", "arn:aws:apigateway:us-east-1::/restapis/*"),
                grant("apigateway:GET", "arn:aws:apigateway:us-east-1::/restapis/9xm9ehuyww"),
            ],
            [(("apigateway:GET",), ("arn:aws:apigateway:us-east-1::/restapis/*",), ())],
        ),
        (
            "a * standing for a whole path segment covers that segment",
            [
                grant("apigateway:PUT", "arn:aws:apigateway:us-east-1::/restapis/*/resources/*"),
                grant("apigateway:PUT", "arn:aws:apigateway:us-east-1::/restapis/*/resources/b"),
                grant("apigateway:PUT", "arn:aws:apigateway:us-east-1::/restapis/a/resources/b"),
            ],
            [
                (
                    ("apigateway:PUT",),
                    ("arn:aws:apigateway:us-east-1::/restapis/*/resources/*",),
                    (),
                )
            ],
        ),
        (
            "a * inside a segment is not compared: both stay",
            [grant("s3:GetObject", f"{BUCKET}/a*b"), grant("s3:GetObject", f"{BUCKET}/a*")],
            [(("s3:GetObject",), (f"{BUCKET}/a*", f"{BUCKET}/a*b"), ())],
        ),
        (
            "* covers the action's other patterns",
            [grant("lambda:GetFunction"), grant("lambda:GetFunction", "arn:aws:lambda:x")],
            [(("lambda:GetFunction",), ("*",), ())],
        ),
    ],
)
def test_statements_merge_by_identical_resource_sets(
    name: str, grants: list[Grant], statements: list[tuple[Any, ...]]
) -> None:
    """Statements group actions that share resources and condition; all sorted."""
    policy = PolicyDocument(frozenset(grants))
    got = [(s.actions, s.resources, s.condition) for s in policy.statements()]
    assert got == statements, name


def test_same_grants_render_to_the_same_bytes_in_any_order() -> None:
    """The rendering depends on the set of grants only: Sids, order and bytes are stable."""
    grants = [
        grant("cloudformation:CreateChangeSet", STACK),
        grant("cloudformation:DescribeStacks", STACK),
        grant("s3:PutObject", f"{BUCKET}/serverless/demo/dev/*"),
        grant("iam:PassRole", ROLE, TO_LAMBDA),
        grant("cloudformation:ValidateTemplate"),
    ]
    renders = set()
    orders = [grants[n:] + grants[:n] for n in range(len(grants))]
    for order in [*orders, list(reversed(grants))]:
        policy = PolicyDocument()
        for g in order:
            policy = policy.with_grants([g])
        renders.add(policy.render_json())
    assert len(renders) == 1
    sids = [s["Sid"] for s in json.loads(renders.pop())["Statement"]]
    assert len(set(sids)) == len(sids)
    assert all(sid.isalnum() for sid in sids)


@pytest.mark.parametrize(
    ("name", "document", "size"),
    [
        (
            "whitespace does not count",
            {"Version": "2012-10-17", "Statement": []},
            len('{"Version":"2012-10-17","Statement":[]}'),
        ),
        ("spaces inside strings do not count", {"Sid": "a b c"}, len('{"Sid":"abc"}')),
    ],
)
def test_policy_size_is_iams_measure(name: str, document: dict[str, Any], size: int) -> None:
    """IAM counts the characters that are not whitespace."""
    assert policy_size(document) == size, name


READ_BACK_ERRORS = [
    ("not an object", [1, 2], "not a policy document"),
    ("no Statement", {"Version": "2012-10-17"}, "no Statement list"),
    (
        "a Deny",
        {"Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]},
        "only Allow",
    ),
    (
        "a wildcard action",
        {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]},
        "not an IAM action",
    ),
    (
        "NotAction",
        {"Statement": [{"Effect": "Allow", "NotAction": "s3:GetObject", "Resource": "*"}]},
        "NotAction",
    ),
    (
        "no Resource",
        {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]},
        "Resource must be",
    ),
    (
        "a number as action",
        {"Statement": [{"Effect": "Allow", "Action": 3, "Resource": "*"}]},
        "Action must be",
    ),
    (
        "a condition that is a list",
        {
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": []}
            ]
        },
        "Condition must be",
    ),
]


@pytest.mark.parametrize(("name", "document", "message"), READ_BACK_ERRORS)
def test_from_dict_refuses_what_it_cannot_hold_exactly(
    name: str, document: Any, message: str
) -> None:
    """Reading back is exact or a PolicyError with one line saying why."""
    with pytest.raises(PolicyError, match=message) as raised:
        PolicyDocument.from_dict(document)
    assert "\n" not in raised.value.msg, name


def test_from_dict_reads_back_what_render_wrote() -> None:
    """JSON rendered by the model reads back to the same grants."""
    policy = PolicyDocument(
        frozenset(
            {
                grant("iam:PassRole", ROLE, TO_LAMBDA),
                grant("cloudformation:ValidateTemplate"),
                grant("s3:GetObject", f"{BUCKET}/*"),
            }
        )
    )
    assert PolicyDocument.from_dict(json.loads(policy.render_json())) == policy


@pytest.mark.parametrize(
    ("name", "pattern", "resource", "matches"),
    [
        ("star spans slashes", "arn:aws:s3:::b-*/*", "arn:aws:s3:::b-1/x/y.json", True),
        ("question mark is one character", "arn:aws:s3:::b?", "arn:aws:s3:::b1", True),
        ("question mark is not two", "arn:aws:s3:::b?", "arn:aws:s3:::b12", False),
        ("brackets are literal", "arn:aws:s3:::[ab]", "arn:aws:s3:::a", False),
        ("brackets match themselves", "arn:aws:s3:::[ab]", "arn:aws:s3:::[ab]", True),
        ("the whole resource must match", "arn:aws:s3:::b", "arn:aws:s3:::bb", False),
    ],
)
def test_resource_matches_uses_iams_wildcards(
    name: str, pattern: str, resource: str, matches: bool
) -> None:
    """IAM's Resource wildcards: * and ? only; everything else is literal."""
    assert resource_matches(pattern, resource) is matches, name


# --- quotas -----------------------------------------------------------------------------------

SANDBOX = "arn:aws:iam::123456789012:role/sandbox"
SESSION = "arn:aws:sts::123456789012:assumed-role/sandbox/discover-1"


def _denial(action: str, resource: str, logical_id: str, resource_type: str) -> Denial:
    message = f"{logical_id} ({resource_type}) CREATE_FAILED: User: {SESSION} is not authorized"
    return Denial(
        action=action,
        resource=resource,
        principal=SESSION,
        reason=Reason.NO_IDENTITY_POLICY,
        source="stack-event",
        message=message,
    )


def large_policy(functions: int = 120) -> PolicyDocument:
    """Evidence of a service with many functions, each with its own role and log group, run
    through the loop's planning and scoping: a policy over 10,240 characters."""
    denials = []
    for n in range(functions):
        name = f"shop-prod-fn{n:03d}"
        role = f"arn:aws:iam::123456789012:role/shop-prod-us-east-1-fn{n:03d}Role"
        fn = f"Fn{n:03d}LambdaFunction"
        denials += [
            _denial("iam:CreateRole", role, f"Fn{n:03d}Role", "AWS::IAM::Role"),
            _denial("iam:PassRole", role, fn, "AWS::Lambda::Function"),
            _denial(
                "lambda:CreateFunction",
                f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
                fn,
                "AWS::Lambda::Function",
            ),
            _denial(
                "logs:CreateLogGroup",
                f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{name}",
                f"Fn{n:03d}LogGroup",
                "AWS::Logs::LogGroup",
            ),
        ]
    evidence, unfixable, unresolved = plan_grants(
        denials, SANDBOX, PolicyDocument(), 1, session=SESSION
    )
    assert not unfixable
    assert not unresolved
    return PolicyDocument().with_grants(e.grant for e in evidence)


def test_a_policy_over_the_inline_quota_is_split_into_managed_policies() -> None:
    """Over 10,240 characters: parts each within 6,144, exactly the same grants, readable."""
    policy = large_policy()
    assert policy.size() > INLINE_ROLE_POLICIES_QUOTA
    parts = split_for_quota(policy)
    assert len(parts) > 1
    assert all(part.size() <= MANAGED_POLICY_QUOTA for part in parts)
    assert frozenset().union(*(part.grants for part in parts)) == policy.grants
    assert sum(len(part.grants) for part in parts) == len(policy.grants)  # none twice
    for part in parts:
        assert PolicyDocument.from_dict(json.loads(part.render_json())) == part
        assert "*" not in {g.resource for g in part.grants} - {"*"}
    assert split_for_quota(policy) == parts  # deterministic


def test_a_statement_too_large_alone_is_cut_by_resources() -> None:
    """One action on very many resources is cut by resources; nothing is widened."""
    grants = frozenset(
        grant("iam:PassRole", f"arn:aws:iam::123456789012:role/shop-prod-role-{n:04d}")
        for n in range(400)
    )
    policy = PolicyDocument(grants)
    assert len(policy.statements()) == 1
    parts = split_for_quota(policy)
    assert all(p.size() <= MANAGED_POLICY_QUOTA for p in parts)
    assert frozenset().union(*(p.grants for p in parts)) == grants


def test_one_resource_with_too_many_actions_is_cut_by_actions() -> None:
    """Many actions on one resource are cut by actions when the resource alone is too big."""
    actions = ("iam:GetRole", "iam:PassRole", "iam:TagRole", "iam:UpdateRole", "iam:DeleteRole")
    policy = PolicyDocument(frozenset(grant(a, ROLE) for a in actions))
    parts = split_for_quota(policy, limit=200)
    assert len(parts) > 1
    assert all(p.size() <= 200 for p in parts)
    assert all(p.statements()[0].resources == (ROLE,) for p in parts)
    assert frozenset().union(*(p.grants for p in parts)) == policy.grants


def test_a_policy_within_the_quota_is_one_part() -> None:
    """A policy that fits is returned as it is."""
    policy = PolicyDocument(frozenset({grant("cloudformation:ValidateTemplate")}))
    assert split_for_quota(policy) == (policy,)


def test_a_single_grant_over_the_quota_is_refused() -> None:
    """A grant too large alone cannot be split, and is not widened to fit."""
    policy = PolicyDocument(frozenset({grant("s3:GetObject", f"{BUCKET}/{'k' * 7000}")}))
    with pytest.raises(PolicyError, match="over the quota"):
        split_for_quota(policy)


def test_quota_check_says_how_it_was_split() -> None:
    """The quota check names the size, both quotas and the parts' sizes."""
    check = check_quota(large_policy())
    assert not check.fits_inline
    assert not check.fits_managed
    text = check.describe()
    assert f"split in {len(check.parts)}" in text
    assert "none widened" in text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing", None, "no such file"),
        ("not JSON", "{", "not a JSON policy document"),
        (
            "a Deny",
            '{"Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]}',
            "only Allow",
        ),
    ],
)
def test_load_policy_names_the_file_in_one_line(
    name: str, content: str | None, message: str, tmp_path: Path
) -> None:
    """Bad policy files give one line that names the file."""
    path = tmp_path / "policy.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PolicyError, match=message) as raised:
        load_policy(path)
    assert str(path) in raised.value.msg, name
    assert "\n" not in raised.value.msg


def test_load_policy_refuses_a_folder(tmp_path: Path) -> None:
    """A folder given as a policy is a one-line error, not a traceback."""
    with pytest.raises(PolicyError, match="a folder"):
        load_policy(tmp_path)
