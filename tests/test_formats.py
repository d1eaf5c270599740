"""The policy formats, each parsed back with a real parser and compared with the policy."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import hcl2
import pytest
import yaml

from discover.cli import build_parser
from discover.formats import Format, render
from discover.iamdb import Action
from discover.policy import MANAGED_POLICY_QUOTA, Grant, PolicyDocument, policy_size
from discover.run_events import Stopped, StopReason, last_policy
from tests.golden import GOLDEN, OUTPUTS, events, stack_name
from tests.test_policy import large_policy

TO_LAMBDA = (("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),)


# --- reading each format back ------------------------------------------------------------------


class CloudFormationLoader(yaml.SafeLoader):
    """PyYAML with CloudFormation's short-form tags read as their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_cloudformation(text: str) -> dict[str, Any]:
    document = yaml.load(text, Loader=CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    assert isinstance(document, dict)
    return document


def _hcl_value(raw: str) -> str:
    # python-hcl2 keeps the quotes and escapes; HCL's escapes are JSON's, plus "$${" and "%%{".
    return str(json.loads(raw)).replace("$${", "${").replace("%%{", "%{")


def parse_terraform(text: str) -> list[tuple[str, PolicyDocument]]:
    """Each ``data "aws_iam_policy_document"`` block, by label, read back into a policy."""
    parsed = hcl2.loads(text)
    found = []
    for data in parsed["data"]:
        for label, block in data['"aws_iam_policy_document"'].items():
            statements = []
            for raw in block.get("statement", []):
                statement: dict[str, Any] = {
                    "Sid": _hcl_value(raw["sid"]),
                    "Effect": _hcl_value(raw["effect"]),
                    "Action": [_hcl_value(a) for a in raw["actions"]],
                    "Resource": [_hcl_value(r) for r in raw["resources"]],
                }
                for condition in raw.get("condition", []):
                    operator = statement.setdefault("Condition", {}).setdefault(
                        _hcl_value(condition["test"]), {}
                    )
                    operator[_hcl_value(condition["variable"])] = [
                        _hcl_value(v) for v in condition["values"]
                    ]
                statements.append(statement)
            assert _hcl_value(block["version"]) == "2012-10-17"
            found.append((_hcl_value(label), PolicyDocument.from_dict({"Statement": statements})))
    return found


def parse_cloudformation(text: str) -> list[tuple[str, PolicyDocument]]:
    """Each ``AWS::IAM::ManagedPolicy``, by logical id, read back into a policy."""
    resources = load_cloudformation(text)["Resources"]
    return [
        (key, PolicyDocument.from_dict(resource["Properties"]["PolicyDocument"]))
        for key, resource in resources.items()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
    ]


def parse_serverless_role(text: str) -> list[tuple[str, PolicyDocument]]:
    """The deployment role's policies: inline, or the managed policies it references."""
    template = load_cloudformation(text)
    resources = template["Resources"]
    (role_id,) = [k for k, v in resources.items() if v["Type"] == "AWS::IAM::Role"]
    role = resources[role_id]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "cloudformation.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    assert template["Outputs"]["DeploymentRoleArn"]["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}
    found = [
        (p["PolicyName"], PolicyDocument.from_dict(p["PolicyDocument"]))
        for p in role.get("Policies", [])
    ]
    for reference in role.get("ManagedPolicyArns", []):
        key = reference["Ref"]
        found.append(
            (key, PolicyDocument.from_dict(resources[key]["Properties"]["PolicyDocument"]))
        )
    return found


def parse_json(text: str) -> list[tuple[str, PolicyDocument]]:
    return [("policy", PolicyDocument.from_dict(json.loads(text)))]


PARSERS: dict[Format, Callable[[str], list[tuple[str, PolicyDocument]]]] = {
    Format.JSON: parse_json,
    Format.TERRAFORM: parse_terraform,
    Format.CLOUDFORMATION: parse_cloudformation,
    Format.SERVERLESS: parse_serverless_role,
}


# --- golden files -------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", [f for f in OUTPUTS if f != "report.md"])
def test_hello_policy_matches_its_golden_file(filename: str) -> None:
    """The recorded hello run renders byte for byte as the golden file (scripts/regen-golden
    rewrites them on purpose)."""
    expected = (GOLDEN / "hello" / filename).read_text(encoding="utf-8")
    assert OUTPUTS[filename](events("hello")) == expected


@pytest.mark.parametrize(
    ("fmt", "filename"),
    [
        (Format.JSON, "policy.json"),
        (Format.TERRAFORM, "policy.tf"),
        (Format.CLOUDFORMATION, "policy.cfn.yaml"),
        (Format.SERVERLESS, "deployment-role.yml"),
    ],
)
def test_hello_golden_files_parse_back_to_the_policy(fmt: Format, filename: str) -> None:
    """Each golden file, read by a real parser, holds exactly the hello policy."""
    policy = last_policy(events("hello")).effective()
    parsed = PARSERS[fmt]((GOLDEN / "hello" / filename).read_text(encoding="utf-8"))
    assert [p for _, p in parsed] == [policy]


# --- round trips ------------------------------------------------------------------------------


def g(action: str, resource: str = "*", condition: Any = ()) -> Grant:
    return Grant(Action(action), resource, condition)


POLICIES = {
    "hello": last_policy(events("hello")),
    "a condition and a wildcard": PolicyDocument(
        frozenset(
            {
                g("iam:PassRole", "arn:aws:iam::123456789012:role/demo-dev-lambdaRole", TO_LAMBDA),
                g("cloudformation:ValidateTemplate"),
            }
        )
    ),
    "text a template language would read": PolicyDocument(
        frozenset(
            {
                g("s3:GetObject", "arn:aws:s3:::demo/home/${aws:username}/*"),
                g("s3:PutObject", 'arn:aws:s3:::demo/%{x}/"quoted"\\back'),
                g("s3:ListBucket", "arn:aws:s3:::demo-*"),
            }
        )
    ),
    "empty": PolicyDocument(),
}


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("name", list(POLICIES))
def test_every_format_parses_back_to_the_same_policy(name: str, fmt: Format) -> None:
    """Rendered, then parsed with json / python-hcl2 / PyYAML: the same grants (those a
    broader pattern of the same action covers are not written)."""
    policy = POLICIES[name]
    parsed = PARSERS[fmt](render(policy, fmt, name="demo-dev"))
    assert len(parsed) == 1, name
    assert parsed[0][1] == policy.effective()


@pytest.mark.parametrize("fmt", [Format.TERRAFORM, Format.CLOUDFORMATION, Format.SERVERLESS])
def test_a_policy_over_the_quota_renders_as_several_managed_policies(fmt: Format) -> None:
    """Over the quota, each format holds several documents, each within 6,144, together the
    same grants, and its header says so."""
    policy = large_policy()
    text = render(policy, fmt, name="shop-prod")
    parsed = PARSERS[fmt](text)
    assert len(parsed) > 1
    assert len({label for label, _ in parsed}) == len(parsed)
    for _, part in parsed:
        assert policy_size(part.to_dict()) <= MANAGED_POLICY_QUOTA
    assert frozenset().union(*(p.grants for _, p in parsed)) == policy.grants
    assert f"split in {len(parsed)} managed policies" in text


def test_names_from_the_stack_are_safe_identifiers() -> None:
    """An odd stack name still gives a valid Terraform label and CloudFormation ids."""
    policy = POLICIES["a condition and a wildcard"]
    labels = [label for label, _ in parse_terraform(render(policy, Format.TERRAFORM, name="9 x"))]
    assert labels == ["policy_9_x"]
    ids = [
        key for key, _ in parse_cloudformation(render(policy, Format.CLOUDFORMATION, name="a-b"))
    ]
    assert ids == ["ABDeployPolicy"]


@pytest.mark.parametrize("fmt", list(Format))
def test_run_takes_the_format_option(fmt: Format) -> None:
    """``discover --format F`` is accepted for each format; JSON is the default."""
    assert build_parser("run").parse_args(["--format", fmt.value]).format == fmt.value
    assert build_parser("run").parse_args([]).format == "json"


def test_golden_helpers_read_the_recorded_journal() -> None:
    """The recorded hello journal names its stack and ends with a deploy that succeeded."""
    recorded = events("hello")
    assert stack_name(recorded) == "hello-dev"
    assert recorded[-1] == Stopped(StopReason.SUCCEEDED, recorded[-1].detail)
