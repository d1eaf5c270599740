"""The grant decision table: each planned grant is allowed, confirmed or refused, with why."""

from __future__ import annotations

import json

import pytest

from discover.decision import (
    Decision,
    Rules,
    Verdict,
    decide,
    refine,
    shown,
)
from discover.fence import Fence, build_fence
from discover.iamdb import Action
from discover.ownership import Owner
from discover.policy import Grant
from tests.conftest import FIXTURES

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/discover-sandbox"
HELD = f"arn:aws:iam::{ACCOUNT}:policy/sandbox-extra"
TEMPLATE = json.loads((FIXTURES / "templates" / "hello-dev.json").read_text())


def hello_fence(*, template: bool = True) -> Fence:
    return build_fence(
        stack_name="hello-dev",
        service="hello",
        stage="dev",
        region="us-east-1",
        account=ACCOUNT,
        template=TEMPLATE if template else None,
    )


def rules(**overrides: object) -> Rules:
    base: dict[str, object] = {
        "role_arn": ROLE,
        "fence": hello_fence(),
        "role_policies": frozenset({HELD}),
    }
    base.update(overrides)
    return Rules(**base)  # type: ignore[arg-type]


def grant(action: str, resource: str) -> Grant:
    return Grant(Action(action), resource)


IAM = f"arn:aws:iam::{ACCOUNT}"
FN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function"
LAMBDA_ROLE = f"{IAM}:role/hello-dev-us-east-1-lambdaRole"

# (name, action, resource, owner, expected verdict, a word the reason must contain)
TABLE: list[tuple[str, str, str, Owner, Verdict, str]] = [
    # --- refused, whatever the flags ---
    (
        "inline policy on the sandbox role",
        "iam:PutRolePolicy",
        ROLE,
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    (
        "inline policy on every role",
        "iam:PutRolePolicy",
        "*",
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    (
        "role/* covers the sandbox role",
        "iam:AttachRolePolicy",
        f"{IAM}:role/*",
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    (
        "delete an inline policy of it",
        "iam:DeleteRolePolicy",
        ROLE,
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    (
        "detach from it",
        "iam:DetachRolePolicy",
        ROLE,
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    (
        "its boundary",
        "iam:PutRolePermissionsBoundary",
        ROLE,
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    (
        "remove its boundary",
        "iam:DeleteRolePermissionsBoundary",
        ROLE,
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    (
        "its trust policy",
        "iam:UpdateAssumeRolePolicy",
        ROLE,
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    (
        "its tags (the run lock)",
        "iam:TagRole",
        ROLE,
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    ("untag it", "iam:UntagRole", ROLE, Owner.SESSION, Verdict.REFUSE, "sandbox role itself"),
    (
        "pass the sandbox role",
        "iam:PassRole",
        ROLE,
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    ("pass every role", "iam:PassRole", "*", Owner.SESSION, Verdict.REFUSE, "sandbox role itself"),
    (
        "assume the sandbox role",
        "sts:AssumeRole",
        ROLE,
        Owner.SESSION,
        Verdict.REFUSE,
        "sandbox role itself",
    ),
    (
        "a version of a policy it holds",
        "iam:CreatePolicyVersion",
        HELD,
        Owner.SESSION,
        Verdict.REFUSE,
        "policy the sandbox role holds",
    ),
    (
        "the default version of it",
        "iam:SetDefaultPolicyVersion",
        f"{IAM}:policy/*",
        Owner.SESSION,
        Verdict.REFUSE,
        "policy the sandbox role holds",
    ),
    (
        "a control character",
        "s3:GetObject",
        "arn:aws:s3:::hello-dev-x/a\x1b[2Kb",
        Owner.SESSION,
        Verdict.REFUSE,
        "control character",
    ),
    (
        "a bidi override",
        "s3:GetObject",
        "arn:aws:s3:::hello-dev-x/a\u202eb",
        Owner.SESSION,
        Verdict.REFUSE,
        "control character",
    ),
    (
        "a policy variable",
        "s3:GetObject",
        "arn:aws:s3:::hello-dev-x/${aws:username}",
        Owner.SESSION,
        Verdict.REFUSE,
        "policy variable",
    ),
    (
        "principal-less text outside the fence",
        "dynamodb:Scan",
        f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/prod-orders",
        Owner.UNATTRIBUTED,
        Verdict.REFUSE,
        "no principal",
    ),
    # --- confirmed ---
    (
        "create a user",
        "iam:CreateUser",
        f"{IAM}:user/hello-dev-user",
        Owner.SESSION,
        Verdict.CONFIRM,
        "high-risk",
    ),
    (
        "assume another account's role named like the stack",
        "sts:AssumeRole",
        "arn:aws:iam::999999999999:role/hello-dev-deployer",
        Owner.SESSION,
        Verdict.CONFIRM,
        "another account",
    ),
    (
        "assume a role of the stack",
        "sts:AssumeRole",
        LAMBDA_ROLE,
        Owner.SESSION,
        Verdict.CONFIRM,
        "sts:AssumeRole",
    ),
    (
        "a key policy",
        "kms:PutKeyPolicy",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234",
        Owner.SESSION,
        Verdict.CONFIRM,
        "key policy",
    ),
    ("* for a scopable action", "dynamodb:Scan", "*", Owner.SESSION, Verdict.CONFIRM, "(*)"),
    (
        "inline policy on a role the template does not create",
        "iam:PutRolePolicy",
        f"{IAM}:role/hello-dev-admin",
        Owner.SESSION,
        Verdict.CONFIRM,
        "does not create",
    ),
    (
        "pass a role the template does not create",
        "iam:PassRole",
        f"{IAM}:role/ops",
        Owner.SESSION,
        Verdict.CONFIRM,
        "does not create",
    ),
    (
        "a managed policy the template does not create",
        "iam:CreatePolicy",
        f"{IAM}:policy/hello-dev-extra",
        Owner.SESSION,
        Verdict.CONFIRM,
        "does not create",
    ),
    (
        "another account's bucket",
        "s3:GetObject",
        "arn:aws:s3:::shared-artifacts/x",
        Owner.SESSION,
        Verdict.CONFIRM,
        "outside",
    ),
    (
        "another account's layer",
        "lambda:GetLayerVersion",
        "arn:aws:lambda:us-east-1:580247275435:layer:LambdaInsightsExtension:38",
        Owner.SESSION,
        Verdict.CONFIRM,
        "another account (580247275435)",
    ),
    (
        "a table the service does not own",
        "dynamodb:Scan",
        f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/prod-orders",
        Owner.SESSION,
        Verdict.CONFIRM,
        "outside the service's fence",
    ),
    (
        "our prefix in another region",
        "lambda:GetFunction",
        f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:hello-dev-hello",
        Owner.SESSION,
        Verdict.CONFIRM,
        "region",
    ),
    (
        "a stack event outside the fence",
        "sqs:CreateQueue",
        f"arn:aws:sqs:us-east-1:{ACCOUNT}:prod-queue",
        Owner.TRUSTED,
        Verdict.CONFIRM,
        "fence",
    ),
    # --- allowed: inside the fence ---
    (
        "the stack",
        "cloudformation:CreateChangeSet",
        f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/hello-dev/*",
        Owner.SESSION,
        Verdict.ALLOW,
        "",
    ),
    ("tagging alone on *", "logs:TagResource", "*", Owner.SESSION, Verdict.ALLOW, ""),
    ("no resource type", "cloudformation:ValidateTemplate", "*", Owner.SESSION, Verdict.ALLOW, ""),
    (
        "the deployment bucket (generated name)",
        "s3:PutObject",
        "arn:aws:s3:::hello-dev-serverlessdeploymentbucket-*/serverless/hello/dev/*",
        Owner.UNATTRIBUTED,
        Verdict.ALLOW,
        "",
    ),
    (
        "a template function",
        "lambda:CreateFunction",
        f"{FN}:hello-dev-hello",
        Owner.SESSION,
        Verdict.ALLOW,
        "",
    ),
    (
        "the template's role (Fn::Join)",
        "iam:PutRolePolicy",
        LAMBDA_ROLE,
        Owner.SESSION,
        Verdict.ALLOW,
        "",
    ),
    ("pass the template's role", "iam:PassRole", LAMBDA_ROLE, Owner.SESSION, Verdict.ALLOW, ""),
    ("create the template's role", "iam:CreateRole", LAMBDA_ROLE, Owner.SESSION, Verdict.ALLOW, ""),
    (
        "the log group (a path)",
        "logs:CreateLogGroup",
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/hello-dev-hello:log-stream:",
        Owner.SESSION,
        Verdict.ALLOW,
        "",
    ),
    (
        "a REST API id (the template makes REST APIs)",
        "apigateway:GET",
        "arn:aws:apigateway:us-east-1::/restapis/*",
        Owner.SESSION,
        Verdict.ALLOW,
        "",
    ),
    (
        "the CLI's message on the bucket",
        "s3:ListBucket",
        "arn:aws:s3:::hello-dev-serverlessdeploymentbucket-abc",
        Owner.TRUSTED,
        Verdict.ALLOW,
        "",
    ),
]


@pytest.mark.parametrize(
    ("name", "action", "resource", "owner", "verdict", "why"), TABLE, ids=[r[0] for r in TABLE]
)
def test_decision_table(  # noqa: PLR0917 - one argument per column of the table
    name: str, action: str, resource: str, owner: Owner, verdict: Verdict, why: str
) -> None:
    """Each row: the verdict and a word of its reason."""
    decision = decide(grant(action, resource), rules(), owner)
    assert decision.verdict is verdict, (name, decision.reasons)
    assert why in decision.reason, (name, decision.reasons)


REFUSED = [r for r in TABLE if r[4] is Verdict.REFUSE]


@pytest.mark.parametrize(
    ("name", "action", "resource", "owner", "verdict", "why"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_no_flag_turns_a_refusal_into_a_grant(  # noqa: PLR0917 - one argument per column of the table
    name: str, action: str, resource: str, owner: Owner, verdict: Verdict, why: str
) -> None:
    """--yes, --allow ACTION, an empty high-risk list and --allow-account change no refusal."""
    loose = rules(
        yes=True,
        allow=(action,),
        high_risk=(),
        allow_accounts=frozenset({ACCOUNT, "999999999999"}),
    )
    assert decide(grant(action, resource), loose, owner).verdict is Verdict.REFUSE, name


@pytest.mark.parametrize(
    ("name", "overrides", "action", "resource", "verdict", "approved_by"),
    [
        (
            "--allow the action",
            {"allow": ("iam:CreateUser",)},
            "iam:CreateUser",
            f"{IAM}:user/hello-dev-user",
            Verdict.ALLOW,
            "--allow",
        ),
        (
            "--allow another action",
            {"allow": ("iam:CreateRole",)},
            "iam:CreateUser",
            f"{IAM}:user/hello-dev-user",
            Verdict.CONFIRM,
            "",
        ),
        ("--yes", {"yes": True}, "dynamodb:Scan", "*", Verdict.ALLOW, "--yes"),
        (
            "--allow-account the layer's account",
            {"allow_accounts": frozenset({"580247275435"})},
            "lambda:GetLayerVersion",
            "arn:aws:lambda:us-east-1:580247275435:layer:LambdaInsightsExtension:38",
            Verdict.ALLOW,
            "",
        ),
        (
            "--allow-account another",
            {"allow_accounts": frozenset({"111111111111"})},
            "lambda:GetLayerVersion",
            "arn:aws:lambda:us-east-1:580247275435:layer:LambdaInsightsExtension:38",
            Verdict.CONFIRM,
            "",
        ),
        (
            "an empty high-risk list still confirms AssumeRole",
            {"high_risk": ()},
            "sts:AssumeRole",
            LAMBDA_ROLE,
            Verdict.CONFIRM,
            "",
        ),
    ],
)
def test_pre_approvals(  # noqa: PLR0917 - one argument per column of the table
    name: str,
    overrides: dict[str, object],
    action: str,
    resource: str,
    verdict: Verdict,
    approved_by: str,
) -> None:
    """What --allow, --yes and --allow-account pre-approve, and what they leave to confirm."""
    decision = decide(grant(action, resource), rules(**overrides))
    assert decision.verdict is verdict, (name, decision.reasons)
    assert decision.approved_by == approved_by, name


@pytest.mark.parametrize(
    ("name", "template", "resource", "verdict"),
    [
        ("no template: a derived name is inside", False, f"{IAM}:role/hello-dev-x", Verdict.ALLOW),
        ("template: a role it does not create", True, f"{IAM}:role/hello-dev-x", Verdict.CONFIRM),
        ("no template: another name", False, f"{IAM}:role/ops", Verdict.CONFIRM),
    ],
)
def test_iam_writes_follow_the_template_or_the_derived_names(
    name: str, template: bool, resource: str, verdict: Verdict
) -> None:
    """Without a template, the CLI's derived names stand in for what it creates."""
    decision = decide(
        grant("iam:PutRolePolicy", resource), rules(fence=hello_fence(template=template))
    )
    assert decision.verdict is verdict, (name, decision.reasons)


@pytest.mark.parametrize(
    ("name", "action", "expected"),
    [
        ("GetFunction: the template's functions", "lambda:GetFunction", (f"{FN}:hello-dev-hello",)),
        ("a table action: no table in the template", "dynamodb:Scan", ("*",)),
        ("no resource type: unchanged", "cloudformation:ValidateTemplate", ("*",)),
    ],
)
def test_refine_derives_star_from_the_template(
    name: str, action: str, expected: tuple[str, ...]
) -> None:
    """A ``*`` resource is narrowed to the template's resources of the action's type."""
    assert tuple(g.resource for g in refine(grant(action, "*"), hello_fence())) == expected, name


def test_derived_grant_is_allowed() -> None:
    """The narrowed GetFunction grant is inside the fence: no prompt for the sample services."""
    (narrowed,) = refine(grant("lambda:GetFunction", "*"), hello_fence())
    assert decide(narrowed, rules()) == Decision(narrowed, Verdict.ALLOW)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("escape", "a\x1b[31mred", "a\\u001b[31mred"),
        ("newline", "a\nb", "a\\u000ab"),
        ("bidi", "a\u202eb", "a\\u202eb"),
        ("policy variable", "x/${aws:username}", "x/$\\{aws:username}"),
        ("plain", "arn:aws:s3:::b/k", "arn:aws:s3:::b/k"),
    ],
)
def test_shown_never_prints_raw(name: str, text: str, expected: str) -> None:
    """What a prompt prints: control characters and policy variables escaped."""
    assert shown(text) == expected, name
