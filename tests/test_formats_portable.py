"""Every format with --portable: parsed back with a real parser, its parameters filled in for
the stage it was found at, it is the policy; for another stage, that stage's policy."""

from __future__ import annotations

import re
from typing import Any

import hcl2
import pytest
import yaml
from cfnlint.api import lint_all

from discover.formats import Format, render
from discover.policy import PolicyDocument, load_policy
from discover.portable import PortableError, Where, fill_document, render_portable_json
from tests.golden import GOLDEN
from tests.test_formats import load_cloudformation, parse_terraform
from tests.test_policy import large_policy

DEV = Where("dev", "us-east-1", "123456789012", "hello")
PROD = Where("prod", "eu-west-1", "210987654321", "hello")
HELLO = load_policy(GOLDEN / "hello" / "policy.json")


def _sub(node: Any, where: Where) -> Any:
    """CloudFormation's Fn::Sub as it resolves, for the three parameters discover writes."""
    if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
        return fill_document(node["Fn::Sub"], where)
    if isinstance(node, dict):
        return {k: _sub(v, where) for k, v in node.items()}
    if isinstance(node, list):
        return [_sub(v, where) for v in node]
    return node


def _documents(template: dict[str, Any]) -> list[Any]:
    found = []
    for resource in template["Resources"].values():
        properties = resource["Properties"]
        if "PolicyDocument" in properties:
            found.append(properties["PolicyDocument"])
        found += [p["PolicyDocument"] for p in properties.get("Policies", [])]
    return found


def _whole(documents: list[Any]) -> PolicyDocument:
    return PolicyDocument().with_grants(
        g for d in documents for g in PolicyDocument.from_dict(d).grants
    )


def _prod_policy() -> PolicyDocument:
    """The hello policy as a discovery at prod, in eu-west-1, in another account finds it."""
    filled = fill_document(yaml.safe_load(render_portable_json(HELLO, DEV)), PROD)
    return PolicyDocument.from_dict(filled)


_TERRAFORM = {
    "${var.stage}": "stage",
    "${data.aws_region.current.name}": "region",
    "${data.aws_caller_identity.current.account_id}": "account",
}


def _terraform_filled(text: str, where: Where) -> str:
    values = {"stage": where.stage, "region": where.region, "account": where.account}
    return re.sub(
        "|".join(re.escape(k) for k in _TERRAFORM),
        lambda m: values[_TERRAFORM[m.group()]],
        text,
    )


def _serverless_filled(text: str, where: Where) -> str:
    return (
        text.replace("${sls:stage}", where.stage)
        .replace("${aws:region}", where.region)
        .replace("${aws:accountId}", where.account)
    )


@pytest.mark.parametrize("where", [DEV, PROD], ids=["found at dev", "found at prod"])
def test_cloudformation_resolves_to_the_policy_of_each_stage(where: Where) -> None:
    """!Sub with AWS::Region, AWS::AccountId and a Stage parameter; cfn-lint finds no error."""
    policy = HELLO if where is DEV else _prod_policy()
    text = render(policy, Format.CLOUDFORMATION, name=f"hello-{where.stage}", where=where)
    template = load_cloudformation(text)
    assert template["Parameters"]["Stage"]["Type"] == "String"
    assert "HelloDeployPolicy" in template["Resources"]
    serious = [m for m in lint_all(text) if m.rule.id[0] in "EW"]
    assert serious == []
    for other in (DEV, PROD):
        expected = HELLO if other is DEV else _prod_policy()
        assert _whole(_documents(_sub(template, other))) == expected
    assert f"-{where.stage}-" not in text.split("Resources:", 1)[1]


def test_cloudformation_lint_catches_a_broken_parameter() -> None:
    """The lint above can fail: a Sub naming a parameter the snippet does not declare."""
    text = render(HELLO, Format.CLOUDFORMATION, name="hello-dev", where=DEV)
    broken = text.replace("${Stage}", "${Stag}")
    assert any(m.rule.id == "E1019" for m in lint_all(broken))


@pytest.mark.parametrize("where", [DEV, PROD], ids=["found at dev", "found at prod"])
def test_terraform_reads_the_stage_variable_and_the_data_sources(where: Where) -> None:
    policy = HELLO if where is DEV else _prod_policy()
    text = render(policy, Format.TERRAFORM, name=f"hello-{where.stage}", where=where)
    parsed = hcl2.loads(text)
    assert [next(iter(v)) for v in parsed["variable"]] == ['"stage"']
    kinds = {next(iter(d)) for d in parsed["data"]}
    assert kinds == {
        '"aws_iam_policy_document"',
        '"aws_caller_identity"',
        '"aws_region"',
    }
    for other in (DEV, PROD):
        expected = HELLO if other is DEV else _prod_policy()
        filled = _terraform_filled(text, other)
        # Only the policy documents: the inputs they read are checked above.
        documents = filled.split('data "aws_region" "current" {}', 1)[1]
        blocks = parse_terraform(documents)
        assert [label for label, _ in blocks] == ["hello"]
        assert blocks[0][1] == expected


@pytest.mark.parametrize("where", [DEV, PROD], ids=["found at dev", "found at prod"])
def test_the_serverless_role_uses_the_cli_variables(where: Where) -> None:
    policy = HELLO if where is DEV else _prod_policy()
    text = render(policy, Format.SERVERLESS, name=f"hello-{where.stage}", where=where)
    assert "${sls:stage}" in text
    assert "${aws:region}" in text
    assert "${aws:accountId}" in text
    for other in (DEV, PROD):
        expected = HELLO if other is DEV else _prod_policy()
        service = load_cloudformation(_serverless_filled(text, other))
        assert service["service"] == "hello-deployment-role"
        assert service["provider"] == {"name": "aws"}
        resources = service["resources"]
        assert set(resources["Outputs"]) == {"DeploymentRoleArn"}
        assert _whole(_documents(resources)) == expected


def test_json_keeps_the_literal_values() -> None:
    """IAM JSON has no parameters: the portable form is policy.portable.json beside it."""
    assert render(HELLO, Format.JSON, name="hello-dev", where=DEV) == HELLO.render_json()


@pytest.mark.parametrize("fmt", [Format.TERRAFORM, Format.CLOUDFORMATION, Format.SERVERLESS])
def test_the_same_bytes_whichever_stage_it_was_found_at(fmt: Format) -> None:
    """Sids are digests of the portable content, so a pipeline's diff sees no change."""
    dev = render(HELLO, fmt, name="hello-dev", where=DEV)
    prod = render(_prod_policy(), fmt, name="hello-prod", where=PROD)

    def body(text: str) -> list[str]:
        return [
            line
            for line in text.splitlines()
            if not line.startswith("# Portable:") and "non-whitespace" not in line
        ]

    assert body(dev) == body(prod)


@pytest.mark.parametrize("fmt", [Format.TERRAFORM, Format.CLOUDFORMATION, Format.SERVERLESS])
def test_without_portable_each_format_is_as_before(fmt: Format) -> None:
    assert render(HELLO, fmt, name="hello-dev") == render(HELLO, fmt, name="hello-dev", where=None)
    assert "${" not in render(HELLO, fmt, name="hello-dev")


def test_a_policy_over_the_quota_stays_split_when_portable() -> None:
    policy = large_policy()
    text = render(policy, Format.CLOUDFORMATION, name="big-dev", where=DEV)
    template = load_cloudformation(text)
    assert len(template["Resources"]) > 1
    assert _whole(_documents(_sub(template, DEV))) == policy


def test_a_literal_dollar_brace_cannot_be_a_serverless_variable() -> None:
    policy = PolicyDocument.from_dict(
        {
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${x}"}
            ]
        }
    )
    with pytest.raises(PortableError, match="variable"):
        render(policy, Format.SERVERLESS, name="hello-dev", where=DEV)
    cloudformation = load_cloudformation(
        render(policy, Format.CLOUDFORMATION, name="hello-dev", where=DEV)
    )
    assert _whole(_documents(_sub(cloudformation, DEV))) == policy
