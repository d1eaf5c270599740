"""A policy rendered for where it will be used: IAM JSON, Terraform, CloudFormation, Serverless.

Every format holds exactly the grants of the policy, in the same statements and order, so a
reviewer can read any of them against ``policy.json``. The infrastructure formats hold managed
policies (or a role), so a policy over IAM's managed-policy quota is rendered as several
documents (``policy.split_for_quota``), each within it, and the header says so.

With ``where`` (``--portable``) the infrastructure formats hold the stage, region and account
as parameters (``discover.portable``): CloudFormation ``!Sub`` with ``${AWS::AccountId}``,
``${AWS::Region}`` and a ``Stage`` parameter; Terraform ``var.stage`` and the
``aws_caller_identity`` / ``aws_region`` data sources; the Serverless CLI's ``${sls:stage}``,
``${aws:accountId}``, ``${aws:region}``. IAM JSON has no parameters: it keeps the values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, TypeVar, assert_never

import yaml

from discover.policy import (
    INLINE_ROLE_POLICIES_QUOTA,
    MANAGED_POLICY_QUOTA,
    POLICY_VERSION,
    PolicyDocument,
    split_for_quota,
)
from discover.portable import (
    Param,
    PortableError,
    PortableStatement,
    Text,
    Where,
    is_parametrised,
    parameters_used,
    portable_statements,
    render_sub,
)


class Format(str, Enum):
    """Where the policy goes: ``--format`` of the run command."""

    JSON = "json"
    TERRAFORM = "terraform"
    CLOUDFORMATION = "cloudformation"
    SERVERLESS = "serverless"


def render(policy: PolicyDocument, fmt: Format, *, name: str, where: Where | None = None) -> str:
    """``policy`` as ``fmt``; ``name`` (the stack name) names the resources it declares.

    ``where``: portable, the stage, region and account it knows as parameters (not in JSON).
    """
    if fmt is Format.JSON:
        return policy.render_json()
    if fmt is Format.TERRAFORM:
        return render_terraform(policy, name=name, where=where)
    if fmt is Format.CLOUDFORMATION:
        return render_cloudformation(policy, name=name, where=where)
    if fmt is Format.SERVERLESS:
        return render_serverless_role(policy, name=name, where=where)
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


def _statements(part: PolicyDocument, where: Where | None) -> tuple[PortableStatement, ...]:
    """The part's statements; portable with ``where``, else each value one literal."""
    if where is not None:
        return portable_statements(part, where)
    return tuple(
        PortableStatement(
            s.sid,
            s.actions,
            tuple((r,) for r in s.resources),
            tuple((op, key, tuple((v,) for v in values)) for op, key, values in s.condition),
        )
        for s in part.statements()
    )


def _named(name: str, where: Where | None) -> str:
    """What names the declared resources: portable, the service (``hello``, not ``hello-dev``)
    when the stack is the CLI's ``SERVICE-STAGE``."""
    if where is not None and where.service and name == f"{where.service}-{where.stage}":
        return where.service
    return name


def _portable_header(where: Where | None, used: frozenset[Param]) -> list[str]:
    if where is None:
        return []
    names = {Param.STAGE: "stage", Param.REGION: "region", Param.ACCOUNT: "account"}
    listed = ", ".join(names[p] for p in Param if p in used) or "nothing"
    return [
        f"Portable: {listed} as parameters (discovered with stage {where.stage}, "
        f"{where.region}, account {where.account})."
    ]


# --- Terraform -------------------------------------------------------------------------------


def _hcl_string(text: str) -> str:
    # JSON's string escapes are a subset of HCL's; "${" and "%{" would start a template.
    return json.dumps(text).replace("${", "$${").replace("%{", "%%{")


T = TypeVar("T")


def _hcl_list(values: Sequence[T], indent: str, item: Callable[[T], str]) -> list[str]:
    if len(values) == 1:
        return [f"[{item(values[0])}]"]
    inner = [f"{indent}  {item(v)}," for v in values]
    return ["[", *inner, f"{indent}]"]


def _hcl_attribute(
    key: str, values: Sequence[T], indent: str, width: int, item: Callable[[T], str]
) -> list[str]:
    rendered = _hcl_list(values, indent, item)
    first = f"{indent}{key.ljust(width)} = {rendered[0]}"
    return [first, *rendered[1:]]


# NOTE: aws_region's `name` is in every major version of the AWS provider (v6 deprecates it
# for `region`, which v5 does not have): a warning on v6 rather than an error on v5.
# https://registry.terraform.io/providers/hashicorp/aws/latest/docs/data-sources/region
_HCL_PARAMS = {
    Param.STAGE: "${var.stage}",
    Param.REGION: "${data.aws_region.current.name}",
    Param.ACCOUNT: "${data.aws_caller_identity.current.account_id}",
}


def _hcl_text(text: Text) -> str:
    """A quoted HCL string: literals escaped, parameters as interpolations."""
    out = []
    for index, part in enumerate(text):
        if isinstance(part, Param):
            out.append(_HCL_PARAMS[part])
            continue
        literal = _hcl_string(part)[1:-1]
        if literal.endswith("$") and index + 1 < len(text):
            # "$" then "${" would read as the escape "$${": the "$" as an interpolation.
            literal = literal[:-1] + '${"$"}'
        out.append(literal)
    return '"' + "".join(out) + '"'


def _terraform_statement(statement: PortableStatement) -> list[str]:
    pad = "    "
    lines = [
        "  statement {",
        f"{pad}sid       = {_hcl_string(statement.sid)}",
        f'{pad}effect    = "Allow"',
        *_hcl_attribute("actions", statement.actions, pad, 9, _hcl_string),
        *_hcl_attribute("resources", statement.resources, pad, 9, _hcl_text),
    ]
    for operator, key, values in statement.condition:
        lines += [
            "",
            f"{pad}condition {{",
            f"{pad}  test     = {_hcl_string(operator)}",
            f"{pad}  variable = {_hcl_string(key)}",
            *_hcl_attribute("values", values, pad + "  ", 8, _hcl_text),
            f"{pad}}}",
        ]
    lines.append("  }")
    return lines


def _terraform_inputs(used: frozenset[Param]) -> list[str]:
    """The variable and data sources the portable blocks read (only those they use)."""
    lines: list[str] = []
    if Param.STAGE in used:
        lines += [
            "",
            'variable "stage" {',
            '  description = "The stage the policy is for (serverless deploy --stage)"',
            "  type        = string",
            "}",
        ]
    if Param.ACCOUNT in used:
        lines += ["", 'data "aws_caller_identity" "current" {}']
    if Param.REGION in used:
        lines += ["", 'data "aws_region" "current" {}']
    return lines


def render_terraform(policy: PolicyDocument, *, name: str, where: Where | None = None) -> str:
    """``data "aws_iam_policy_document"`` blocks, one per managed-policy-sized part."""
    parts = _managed_parts(policy)
    named = _named(name, where)
    label = _terraform_label(named)
    statements = [_statements(part, where) for part in parts]
    used = parameters_used(s for group in statements for s in group)
    lines = [f"# {line}" for line in _header(policy, named, parts)]
    lines += [f"# {line}" for line in _portable_header(where, used)]
    lines.append("# Attach with aws_iam_policy (policy = data.aws_iam_policy_document.NAME.json).")
    if where is not None:
        lines += _terraform_inputs(used)
    for number, group in enumerate(statements, start=1):
        block_label = label if len(parts) == 1 else f"{label}_{number}"
        lines += ["", f'data "aws_iam_policy_document" {_hcl_string(block_label)} {{']
        lines.append(f'  version = "{POLICY_VERSION}"')
        for statement in group:
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


Value = Callable[[Text], Any]
"""How a format writes a string that may hold parameters."""


def _literal_value(text: Text) -> Any:
    """A value with no parameter (the literal policy) as it is."""
    assert not is_parametrised(text), text
    return "".join(str(part) for part in text)


def _sub_value(text: Text) -> Any:
    """CloudFormation: ``!Sub`` only where there is a parameter."""
    return _Tagged("!Sub", render_sub(text)) if is_parametrised(text) else _literal_value(text)


_SLS_PARAMS = {
    Param.STAGE: "${sls:stage}",
    Param.REGION: "${aws:region}",
    Param.ACCOUNT: "${aws:accountId}",
}


def _serverless_value(text: Text) -> Any:
    """The Serverless CLI's variables; it reads every ``${`` as one, so a literal cannot hold
    it."""
    out = []
    for part in text:
        if isinstance(part, Param):
            out.append(_SLS_PARAMS[part])
        elif "${" in part:
            msg = f"{part!r} holds '${{', which serverless.yml would read as a variable"
            raise PortableError(msg, tip="Render it with --format cloudformation or terraform.")
        else:
            out.append(part)
    return "".join(out)


def _statement_dict(statement: PortableStatement, value: Value) -> dict[str, Any]:
    resources = [value(r) for r in statement.resources]
    rendered: dict[str, Any] = {
        "Sid": statement.sid,
        "Effect": "Allow",
        "Action": list(statement.actions),
        "Resource": resources[0] if statement.resources == (("*",),) else resources,
    }
    if statement.condition:
        block: dict[str, dict[str, Any]] = {}
        for operator, key, values in sorted(statement.condition):
            rendered_values = [value(v) for v in values]
            block.setdefault(operator, {})[key] = (
                rendered_values[0] if len(rendered_values) == 1 else rendered_values
            )
        rendered["Condition"] = {op: dict(sorted(v.items())) for op, v in sorted(block.items())}
    return rendered


def _policy_document(
    part: PolicyDocument, where: Where | None = None, value: Value = _literal_value
) -> dict[str, Any]:
    return {
        "Version": POLICY_VERSION,
        "Statement": [_statement_dict(s, value) for s in _statements(part, where)],
    }


def _managed_policy_resources(
    parts: Sequence[PolicyDocument],
    name: str,
    where: Where | None = None,
    value: Value = _literal_value,
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
            "Properties": {
                "Description": description,
                "PolicyDocument": _policy_document(part, where, value),
            },
        }
    return resources


def _used(parts: Sequence[PolicyDocument], where: Where | None) -> frozenset[Param]:
    return parameters_used(s for part in parts for s in _statements(part, where))


_STAGE_PARAMETER = {
    "Type": "String",
    "Description": "The stage the policy is for (serverless deploy --stage)",
    "AllowedPattern": "^[A-Za-z0-9-]+$",
}


def render_cloudformation(policy: PolicyDocument, *, name: str, where: Where | None = None) -> str:
    """An ``AWS::IAM::ManagedPolicy`` snippet (several when over the quota), as YAML.

    Portable: ``!Sub`` with the pseudo parameters and a ``Stage`` parameter it declares.
    """
    parts = _managed_parts(policy)
    named = _named(name, where)
    used = _used(parts, where)
    stage = Param.STAGE in used
    header = [
        *_header(policy, named, parts),
        *_portable_header(where, used),
        "Add to a template's "
        + ("Parameters and Resources" if stage else "Resources")
        + "; attach with the policy's Roles, Users or Groups.",
    ]
    document: dict[str, Any] = {"Parameters": {"Stage": _STAGE_PARAMETER}} if stage else {}
    document["Resources"] = _managed_policy_resources(parts, named, where, _sub_value)
    return _yaml(document, header)


def render_serverless_role(policy: PolicyDocument, *, name: str, where: Where | None = None) -> str:
    """A CloudFormation template with a role for Serverless's ``provider.iam.deploymentRole``.

    Serverless v3 (and osls) passes that role to CloudFormation (``RoleARN``), so the role
    trusts ``cloudformation.amazonaws.com``. It holds the policy inline when the policy fits
    the role's inline quota, else as managed policies, each within theirs.

    Portable: a ``serverless.yml`` of its own, deployed once per stage, whose ``resources``
    hold the role with the CLI's ``${sls:stage}``, ``${aws:region}`` and ``${aws:accountId}``.
    """
    named = _named(name, where)
    role_id = _logical_id(named, "DeploymentRole")
    fits_inline = policy.size() <= INLINE_ROLE_POLICIES_QUOTA
    parts = (policy,) if fits_inline else _managed_parts(policy)
    value = _serverless_value if where is not None else _literal_value
    title = _title(named)
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
            {"PolicyName": "discover", "PolicyDocument": _policy_document(policy, where, value)}
        ]
    else:
        managed = _managed_policy_resources(parts, named, where, value)
        role["Properties"]["ManagedPolicyArns"] = [_Tagged("!Ref", key) for key in managed]
        resources.update(managed)
    outputs = {"DeploymentRoleArn": {"Value": _Tagged("!GetAtt", f"{role_id}.Arn")}}
    quota = (
        f"role inline quota {INLINE_ROLE_POLICIES_QUOTA:,}"
        if fits_inline
        else f"managed policy quota {MANAGED_POLICY_QUOTA:,}"
    )
    if where is not None:
        return _serverless_service(policy, named, parts, quota, resources, outputs, where)
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Deployment role for {title} (provider.iam.deploymentRole)",
        "Resources": resources,
        "Outputs": outputs,
    }
    header = [
        *_header(policy, named, parts, quota),
        "Deploy this template once, then in serverless.yml set",
        "  provider.iam.deploymentRole: <the DeploymentRoleArn output>",
        "CloudFormation then deploys with this role; whoever runs the deploy needs",
        "iam:PassRole on it (with iam:PassedToService cloudformation.amazonaws.com).",
    ]
    return _yaml(template, header)


def _serverless_service(  # noqa: PLR0917 - the pieces render_serverless_role built
    policy: PolicyDocument,
    named: str,
    parts: Sequence[PolicyDocument],
    quota: str,
    resources: dict[str, Any],
    outputs: dict[str, Any],
    where: Where,
) -> str:
    """The portable deployment role: a service of its own, one stack per stage."""
    service = f"{_title(named)}-deployment-role"
    document = {
        "service": service,
        "provider": {"name": "aws"},
        "resources": {"Resources": resources, "Outputs": outputs},
    }
    header = [
        *_header(policy, named, parts, quota),
        *_portable_header(where, _used(parts, where)),
        "A serverless.yml of its own (the role cannot be in the stack it deploys): in a folder",
        "beside the service, deploy it once per stage with serverless deploy --stage STAGE,",
        "then in the service's serverless.yml set",
        f"  provider.iam.deploymentRole: ${{cf:{service}-${{sls:stage}}.DeploymentRoleArn}}",
        "CloudFormation then deploys with this role; whoever runs the deploy needs",
        "iam:PassRole on it (with iam:PassedToService cloudformation.amazonaws.com).",
    ]
    return _yaml(document, header)
