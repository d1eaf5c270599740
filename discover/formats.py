"""A policy rendered for where it will be used: IAM JSON, Terraform, CloudFormation, Serverless.

Every format holds exactly the grants of the policy, in the same statements and order, so a
reviewer can read any of them against ``policy.json``. The infrastructure formats hold managed
policies (or a role), so a policy over IAM's managed-policy quota is rendered as several
documents (``policy.split_for_quota``), each within it, and the header says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from enum import Enum
from typing import Any, assert_never

import yaml

from discover.policy import (
    INLINE_ROLE_POLICIES_QUOTA,
    MANAGED_POLICY_QUOTA,
    POLICY_VERSION,
    PolicyDocument,
    Statement,
    split_for_quota,
)


class Format(str, Enum):
    """Where the policy goes: ``--format`` of the run command."""

    JSON = "json"
    TERRAFORM = "terraform"
    CLOUDFORMATION = "cloudformation"
    SERVERLESS = "serverless"


def render(policy: PolicyDocument, fmt: Format, *, name: str) -> str:
    """``policy`` as ``fmt``; ``name`` (the stack name) names the resources it declares."""
    if fmt is Format.JSON:
        return policy.render_json()
    if fmt is Format.TERRAFORM:
        return render_terraform(policy, name=name)
    if fmt is Format.CLOUDFORMATION:
        return render_cloudformation(policy, name=name)
    if fmt is Format.SERVERLESS:
        return render_serverless_role(policy, name=name)
    assert_never(fmt)


# --- shared ----------------------------------------------------------------------------------


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z0-9]+", name) if w] or ["discover"]


def _title(name: str) -> str:
    """The stack name, safe inside a comment or a description."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "discover"


def _logical_id(name: str, suffix: str) -> str:
    """A CloudFormation logical id (alphanumeric) from a stack name: hello-dev -> HelloDev..."""
    return "".join(w[:1].upper() + w[1:] for w in _words(name)) + suffix


def _terraform_label(name: str) -> str:
    label = "_".join(w.lower() for w in _words(name))
    return label if label[0].isalpha() else f"policy_{label}"


def _header(
    policy: PolicyDocument,
    name: str,
    parts: Sequence[PolicyDocument],
    quota: str = f"managed policy quota {MANAGED_POLICY_QUOTA:,}",
) -> list[str]:
    lines = [
        f"Least-privilege deploy policy for {_title(name)}, found by discover.",
        f"{policy.size():,} non-whitespace characters; {quota}.",
    ]
    if len(parts) > 1:
        sizes = ", ".join(f"{p.size():,}" for p in parts)
        lines.append(
            f"Over the quota: split in {len(parts)} managed policies (sizes {sizes}), "
            "the same grants, none widened."
        )
    return lines


def _managed_parts(policy: PolicyDocument) -> tuple[PolicyDocument, ...]:
    return split_for_quota(policy, MANAGED_POLICY_QUOTA)


# --- Terraform -------------------------------------------------------------------------------


def _hcl_string(text: str) -> str:
    # JSON's string escapes are a subset of HCL's; "${" and "%{" would start a template.
    return json.dumps(text).replace("${", "$${").replace("%{", "%%{")


def _hcl_list(values: Sequence[str], indent: str) -> list[str]:
    if len(values) == 1:
        return [f"[{_hcl_string(values[0])}]"]
    inner = [f"{indent}  {_hcl_string(v)}," for v in values]
    return ["[", *inner, f"{indent}]"]


def _hcl_attribute(key: str, values: Sequence[str], indent: str, width: int) -> list[str]:
    rendered = _hcl_list(values, indent)
    first = f"{indent}{key.ljust(width)} = {rendered[0]}"
    return [first, *rendered[1:]]


def _terraform_statement(statement: Statement) -> list[str]:
    pad = "    "
    lines = [
        "  statement {",
        f"{pad}sid       = {_hcl_string(statement.sid)}",
        f'{pad}effect    = "Allow"',
        *_hcl_attribute("actions", statement.actions, pad, 9),
        *_hcl_attribute("resources", statement.resources, pad, 9),
    ]
    for operator, key, values in statement.condition:
        lines += [
            "",
            f"{pad}condition {{",
            f"{pad}  test     = {_hcl_string(operator)}",
            f"{pad}  variable = {_hcl_string(key)}",
            *_hcl_attribute("values", values, pad + "  ", 8),
            f"{pad}}}",
        ]
    lines.append("  }")
    return lines


def render_terraform(policy: PolicyDocument, *, name: str) -> str:
    """``data "aws_iam_policy_document"`` blocks, one per managed-policy-sized part."""
    parts = _managed_parts(policy)
    label = _terraform_label(name)
    lines = [f"# {line}" for line in _header(policy, name, parts)]
    lines.append("# Attach with aws_iam_policy (policy = data.aws_iam_policy_document.NAME.json).")
    for number, part in enumerate(parts, start=1):
        block_label = label if len(parts) == 1 else f"{label}_{number}"
        lines += ["", f'data "aws_iam_policy_document" {_hcl_string(block_label)} {{']
        lines.append(f'  version = "{POLICY_VERSION}"')
        for statement in part.statements():
            lines += ["", *_terraform_statement(statement)]
        lines.append("}")
    return "\n".join(lines) + "\n"


# --- CloudFormation YAML ---------------------------------------------------------------------


class _Tagged:
    """A CloudFormation short-form intrinsic (``!Ref X``, ``!GetAtt X.Arn``) for the dumper."""

    def __init__(self, tag: str, value: str) -> None:
        self.tag = tag
        self.value = value


class _Dumper(yaml.SafeDumper):
    """Block style, list items indented under their key, no line wrapping."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_tagged(dumper: yaml.SafeDumper, data: _Tagged) -> yaml.Node:
    return dumper.represent_scalar(data.tag, data.value)


_Dumper.add_representer(_Tagged, _represent_tagged)


def _yaml(document: dict[str, Any], header: Sequence[str]) -> str:
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10_000
    )
    return "".join(f"# {line}\n" for line in header) + body


def _policy_document(part: PolicyDocument) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": [s.to_dict() for s in part.statements()]}


def _managed_policy_resources(
    parts: Sequence[PolicyDocument], name: str
) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = {}
    title = _title(name)
    for number, part in enumerate(parts, start=1):
        logical_id = _logical_id(name, "DeployPolicy" + (str(number) if len(parts) > 1 else ""))
        description = f"Least-privilege deploy policy for {title}, found by discover"
        if len(parts) > 1:
            description += f" (part {number} of {len(parts)})"
        resources[logical_id] = {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {"Description": description, "PolicyDocument": _policy_document(part)},
        }
    return resources


def render_cloudformation(policy: PolicyDocument, *, name: str) -> str:
    """An ``AWS::IAM::ManagedPolicy`` snippet (several when over the quota), as YAML."""
    parts = _managed_parts(policy)
    header = [
        *_header(policy, name, parts),
        "Add to a template's Resources; attach with the policy's Roles, Users or Groups.",
    ]
    return _yaml({"Resources": _managed_policy_resources(parts, name)}, header)


def render_serverless_role(policy: PolicyDocument, *, name: str) -> str:
    """A CloudFormation template with a role for Serverless's ``provider.iam.deploymentRole``.

    Serverless v3 (and osls) passes that role to CloudFormation (``RoleARN``), so the role
    trusts ``cloudformation.amazonaws.com``. It holds the policy inline when the policy fits
    the role's inline quota, else as managed policies, each within theirs.
    """
    role_id = _logical_id(name, "DeploymentRole")
    fits_inline = policy.size() <= INLINE_ROLE_POLICIES_QUOTA
    parts = (policy,) if fits_inline else _managed_parts(policy)
    title = _title(name)
    role: dict[str, Any] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"CloudFormation deployment role for {title}, found by discover",
            "AssumeRolePolicyDocument": {
                "Version": POLICY_VERSION,
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudformation.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
        },
    }
    resources: dict[str, Any] = {role_id: role}
    if fits_inline:
        role["Properties"]["Policies"] = [
            {"PolicyName": "discover", "PolicyDocument": _policy_document(policy)}
        ]
    else:
        managed = _managed_policy_resources(parts, name)
        role["Properties"]["ManagedPolicyArns"] = [_Tagged("!Ref", key) for key in managed]
        resources.update(managed)
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Deployment role for {title} (provider.iam.deploymentRole)",
        "Resources": resources,
        "Outputs": {"DeploymentRoleArn": {"Value": _Tagged("!GetAtt", f"{role_id}.Arn")}},
    }
    quota = (
        f"role inline quota {INLINE_ROLE_POLICIES_QUOTA:,}"
        if fits_inline
        else f"managed policy quota {MANAGED_POLICY_QUOTA:,}"
    )
    header = [
        *_header(policy, name, parts, quota),
        "Deploy this template once, then in serverless.yml set",
        "  provider.iam.deploymentRole: <the DeploymentRoleArn output>",
        "CloudFormation then deploys with this role; whoever runs the deploy needs",
        "iam:PassRole on it (with iam:PassedToService cloudformation.amazonaws.com).",
    ]
    return _yaml(template, header)
