"""The portable policy: the stage, region and account discover knows, as parameters."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from discover.app import verify_parts
from discover.cli import build_parser
from discover.config import ConfigError
from discover.policy import PolicyError, load_policy
from discover.portable import (
    Param,
    Where,
    file_is_portable,
    fill_document,
    is_portable,
    load_filled,
    parametrise,
    read_sub,
    render_literal,
    render_portable_json,
    render_sub,
)
from tests.conftest import run_discover
from tests.golden import GOLDEN
from tests.test_config import config_for, make_service

OSLS_ARGS = ("--local", "--quiet")


@pytest.mark.e2e
def test_a_policy_found_at_dev_verifies_at_prod_in_another_region(
    service_copy: Callable[[str], Path], osls: Path
) -> None:
    """hello discovered at stage dev, written portable, passes verify --stage prod (every
    phase) in another region; the literal dev policy does not."""
    service = service_copy("hello")
    found = run_discover(
        *OSLS_ARGS, "--cli", str(osls), "--portable", "--format", "cloudformation", cwd=service
    )
    assert found.returncode == 0, found.stderr[-3000:]
    assert "policy.portable.json" in found.stderr
    portable = service / ".discover" / "policy.portable.json"
    text = portable.read_text()
    assert "hello-${Stage}-" in text
    assert "${AWS::Region}" in text
    assert "${AWS::AccountId}" in text
    assert "-dev-" not in text
    assert "us-east-1" not in text
    assert "!Sub" in found.stdout
    assert "Stage:" in found.stdout

    verified = run_discover(
        "verify", "--local", "--cli", str(osls), "--policy", str(portable),
        "--stage", "prod", "--region", "eu-west-1", cwd=service,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr[-3000:]
    record = json.loads(verified.stdout)
    assert record["verified"] is True
    assert [(p["name"], p["ok"]) for p in record["phases"]] == [
        ("create", True),
        ("update", True),
        ("no-op update", True),
        ("remove", True),
    ]

    literal = run_discover(
        "verify", "--local", "--cli", str(osls), "--policy", ".discover/policy.json",
        "--stage", "prod", "--region", "eu-west-1", cwd=service,
    )  # fmt: skip
    assert literal.returncode == 1, literal.stderr[-3000:]
    assert json.loads(literal.stdout)["phases"][0]["ok"] is False


# --- which values are parameters ---------------------------------------------------------------

HELLO = Where("dev", "us-east-1", "123456789012", "hello")
SAM = Where("dev", "us-east-1", "123456789012", None)  # no service name: no CLI naming rules
UPPER = Where("dev", "us-east-1", "123456789012", "Hello")


@pytest.mark.parametrize(
    ("name", "where", "literal", "portable"),
    [
        (
            "a function the CLI names SERVICE-STAGE-NAME",
            HELLO,
            "arn:aws:lambda:us-east-1:123456789012:function:hello-dev-hello",
            "arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:hello-${Stage}-hello",
        ),
        (
            "dev inside devices-table stays",
            HELLO,
            "arn:aws:dynamodb:us-east-1:123456789012:table/hello-devices-table",
            "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/hello-devices-table",
        ),
        (
            "the stage's name elsewhere in a name stays",
            HELLO,
            "arn:aws:dynamodb:us-east-1:123456789012:table/dev-hello-dev",
            "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/dev-hello-dev",
        ),
        (
            "SERVICE-STAGE not at a name's start stays",
            HELLO,
            "arn:aws:lambda:us-east-1:123456789012:function:my-hello-dev-x",
            "arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:my-hello-dev-x",
        ),
        (
            "a longer stage that starts like it stays",
            HELLO,
            "arn:aws:cloudformation:us-east-1:123456789012:stack/hello-development/*",
            "arn:aws:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/hello-development/*",
        ),
        (
            "the stack SERVICE-STAGE",
            HELLO,
            "arn:aws:cloudformation:us-east-1:123456789012:stack/hello-dev/*",
            "arn:aws:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/hello-${Stage}/*",
        ),
        (
            "s3: no region, no account; the bucket CloudFormation names after the stack",
            HELLO,
            "arn:aws:s3:::hello-dev-serverlessdeploymentbucket-*",
            "arn:aws:s3:::hello-${Stage}-serverlessdeploymentbucket-*",
        ),
        (
            "s3: the artifact folder PREFIX/SERVICE/STAGE",
            HELLO,
            "arn:aws:s3:::hello-dev-serverlessdeploymentbucket-*/serverless/hello/dev/*",
            "arn:aws:s3:::hello-${Stage}-serverlessdeploymentbucket-*/serverless/hello/${Stage}/*",
        ),
        (
            "s3: a key that only holds the stage's name stays",
            HELLO,
            "arn:aws:s3:::shared-artifacts/dev/hello/code.zip",
            "arn:aws:s3:::shared-artifacts/dev/hello/code.zip",
        ),
        (
            "s3: a lowercased bucket of a capitalised service",
            UPPER,
            "arn:aws:s3:::hello-dev-serverlessdeploymentbucket-*",
            "arn:aws:s3:::hello-${Stage}-serverlessdeploymentbucket-*",
        ),
        (
            "iam: no region; the CLI's role SERVICE-STAGE-REGION-lambdaRole",
            HELLO,
            "arn:aws:iam::123456789012:role/hello-dev-us-east-1-lambdaRole",
            "arn:aws:iam::${AWS::AccountId}:role/hello-${Stage}-${AWS::Region}-lambdaRole",
        ),
        (
            "logs: the function's log group /aws/lambda/SERVICE-STAGE-NAME",
            HELLO,
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/hello-dev-hello:*",
            "arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
            "/aws/lambda/hello-${Stage}-hello:*",
        ),
        (
            "sqs: a name right after the account",
            HELLO,
            "arn:aws:sqs:us-east-1:123456789012:hello-dev-jobs",
            "arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:hello-${Stage}-jobs",
        ),
        (
            "apigateway: no account; an ARN URL-encoded in the path",
            HELLO,
            "arn:aws:apigateway:us-east-1::/tags/"
            "arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Frestapis%2F*",
            "arn:aws:apigateway:${AWS::Region}::/tags/"
            "arn%3Aaws%3Aapigateway%3A${AWS::Region}%3A%3A%2Frestapis%2F*",
        ),
        (
            "after an encoded ARN: a name only at a segment's start",
            HELLO,
            "arn:aws:apigateway:us-east-1::/x/arn%3Aaws%3As3%3A%3A%3Ab*hello-dev-y/hello-dev-z",
            "arn:aws:apigateway:${AWS::Region}::/x/arn%3Aaws%3As3%3A%3A%3Ab*hello-dev-y/"
            "hello-${Stage}-z",
        ),
        (
            "another account's layer keeps its account",
            HELLO,
            "arn:aws:lambda:us-east-1:580247275435:layer:LambdaInsightsExtension:*",
            "arn:aws:lambda:${AWS::Region}:580247275435:layer:LambdaInsightsExtension:*",
        ),
        (
            "another region stays",
            HELLO,
            "arn:aws:sns:eu-west-1:123456789012:alerts",
            "arn:aws:sns:eu-west-1:${AWS::AccountId}:alerts",
        ),
        (
            "no service name (SAM, a command): region and account only",
            SAM,
            "arn:aws:lambda:us-east-1:123456789012:function:hello-dev-hello",
            "arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:hello-dev-hello",
        ),
        ("the star", HELLO, "*", "*"),
        ("not an ARN", HELLO, "lambda.amazonaws.com", "lambda.amazonaws.com"),
        (
            "a literal ${ is escaped as Fn::Sub escapes it",
            HELLO,
            "arn:aws:s3:::bucket/${aws:username}/*",
            "arn:aws:s3:::bucket/${!aws:username}/*",
        ),
    ],
)
def test_only_known_values_become_parameters(
    name: str, where: Where, literal: str, portable: str
) -> None:
    """The region and account fields, and the CLI's names; the literal comes back filled in."""
    text = parametrise(literal, where)
    assert render_sub(text) == portable, name
    values = {Param.STAGE: where.stage, Param.REGION: where.region, Param.ACCOUNT: where.account}
    assert render_literal(text, values) == literal
    assert read_sub(portable) == text


def test_filled_in_for_another_stage_region_and_account() -> None:
    """A placeholder of each kind takes the values of where verify deploys."""
    prod = Where("prod", "eu-west-1", "210987654321", "hello")
    body = "arn:aws:iam::${AWS::AccountId}:role/hello-${Stage}-${AWS::Region}-lambdaRole"
    document = {"Statement": [{"Resource": [body, "arn:aws:s3:::b/${!aws:username}"]}]}
    assert fill_document(document, prod) == {
        "Statement": [
            {
                "Resource": [
                    "arn:aws:iam::210987654321:role/hello-prod-eu-west-1-lambdaRole",
                    "arn:aws:s3:::b/${aws:username}",
                ]
            }
        ]
    }


@pytest.mark.parametrize(
    ("name", "document", "portable"),
    [
        ("placeholders", {"Statement": [{"Resource": "arn:aws:s3:::hello-${Stage}-x"}]}, True),
        ("an escaped ${", {"Statement": [{"Resource": "arn:aws:s3:::b/${!aws:username}"}]}, True),
        ("literal values", {"Statement": [{"Resource": "arn:aws:s3:::hello-dev-x"}]}, False),
        ("a policy variable", {"Statement": [{"Resource": "arn:aws:s3:::${aws:username}"}]}, False),
    ],
)
def test_verify_recognises_the_portable_form(name: str, document: object, portable: bool) -> None:
    assert is_portable(document) is portable, name


def test_the_portable_policy_is_the_same_for_every_stage(tmp_path: Path) -> None:
    """Found at dev or at prod, the portable document is the same bytes (Sids included), and
    filled in, it is the literal policy of that stage."""
    dev = load_policy(GOLDEN / "hello" / "policy.json")
    portable = render_portable_json(dev, HELLO)
    path = tmp_path / "policy.portable.json"
    path.write_text(portable)
    prod_where = Where("prod", "eu-west-1", "210987654321", "hello")
    prod = load_filled(path, prod_where)
    assert render_portable_json(prod, prod_where) == portable
    assert load_filled(path, HELLO) == dev
    assert len(prod.grants) == len(dev.grants)
    rendered = prod.render_json()
    assert "hello-prod-hello" in rendered
    assert "-dev-" not in rendered
    assert "us-east-1" not in rendered
    assert "123456789012" not in rendered


def test_a_literal_policy_file_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text((GOLDEN / "hello" / "policy.json").read_text())
    assert not file_is_portable(path)
    prod = Where("prod", "eu-west-1", "210987654321", "hello")
    assert load_filled(path, prod) == load_policy(path)


def test_a_bad_portable_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.portable.json"
    path.write_text('{"Statement": [{"Effect": "Allow", "Action": "s3:Nope", "Resource": "*"}]}')
    with pytest.raises(PolicyError, match=r"policy\.portable\.json"):
        load_filled(path, HELLO)


# --- the flag, the config key, verify's reading --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "flags", "toml", "expected"),
    [
        ("off by default", {}, None, False),
        ("the flag", {"portable": True}, None, True),
        ("discover.toml", {}, "portable = true", True),
        ("discover.toml off", {}, "portable = false", False),
    ],
)
def test_portable_from_the_flag_or_discover_toml(
    tmp_path: Path, name: str, flags: dict[str, object], toml: str | None, expected: bool
) -> None:
    service = make_service(tmp_path / "svc", toml=toml)
    assert config_for(service, **flags).portable is expected, name


def test_portable_in_discover_toml_must_be_a_boolean(tmp_path: Path) -> None:
    service = make_service(tmp_path / "svc", toml='portable = "yes"')
    with pytest.raises(ConfigError, match="portable has the wrong type"):
        config_for(service)


def test_the_run_command_takes_portable() -> None:
    assert build_parser("run").parse_args(["--portable"]).portable is True
    assert build_parser("run").parse_args([]).portable is None


def test_verify_reads_a_portable_file_for_its_own_stage(tmp_path: Path) -> None:
    """The parts verify attaches are the policy of the stage it deploys."""
    dev = load_policy(GOLDEN / "hello" / "policy.json")
    path = tmp_path / "policy.portable.json"
    path.write_text(render_portable_json(dev, HELLO))
    prod = Where("prod", "eu-west-1", "210987654321", "hello")
    whole, managed = verify_parts([path], lambda p: load_filled(p, prod))
    assert managed == ()
    assert whole.allows(
        "lambda:CreateFunction", "arn:aws:lambda:eu-west-1:210987654321:function:hello-prod-hello"
    )
    assert not whole.allows(
        "lambda:CreateFunction", "arn:aws:lambda:us-east-1:123456789012:function:hello-dev-hello"
    )
