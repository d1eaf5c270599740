"""The grant decision: each planned grant is ``allow``, ``confirm`` or ``refuse``, with why.

One table, read top to bottom (``decide``):

``refuse``, whatever the flags say:
  - a resource or condition holding control characters or a policy variable (``${...}``);
  - a write on the sandbox role itself (inline and managed policy writes, boundaries, its
    trust policy, tags, ...), ``sts:AssumeRole`` or ``iam:PassRole`` of it, or a write on a
    managed policy it holds (policy versions): the role would grow itself;
  - the same on the CloudFormation service role, for either policy, except the caller's
    ``iam:PassRole`` of it with ``iam:PassedToService: cloudformation.amazonaws.com``;
  - a denial no principal claims, read from the deploy's output, outside the fence: it is
    reported, never granted.

``confirm`` (a yes at the prompt, ``--allow ACTION``, or ``--yes``):
  - an action on the high-risk list (``high_risk``);
  - any ``sts:AssumeRole``, and key policies (``kms:PutKeyPolicy``);
  - ``*`` for an action IAM can scope (after deriving the resource from the template);
  - IAM writes on roles, users, groups and policies the template does not create, and
    ``iam:PassRole`` of a role it does not create;
  - a resource in another account (``--allow-account ID`` pre-approves that account);
  - anything else outside the service's fence.

``allow`` otherwise: the grant is inside the fence and none of the above holds.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import Enum
from fnmatch import fnmatchcase

from discover import iamdb
from discover.fence import IAM_IDENTITY_KINDS, Fence, locate
from discover.iamdb import Action
from discover.ownership import Owner
from discover.policy import Grant, resource_matches

# Actions that let a role create identities, hand out keys, or reach beyond the account.
# Matched case-insensitively; "*" matches within the action name only.
DEFAULT_HIGH_RISK: tuple[str, ...] = (
    "iam:CreateUser",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AttachUserPolicy",
    "iam:PutUserPolicy",
    "iam:AddUserToGroup",
    "iam:AttachGroupPolicy",
    "iam:PutGroupPolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "organizations:*",
    "account:*",
    "sts:AssumeRole",
)
KEY_POLICY_ACTIONS = frozenset({"kms:PutKeyPolicy"})
# Creating a role cannot change one that exists: these are not writes on the sandbox role.
_CREATES = frozenset({"iam:CreateRole", "iam:CreateServiceLinkedRole"})
_WRITE_LEVELS = ("Write", "Permissions management", "Tagging")
_CLOUDFORMATION = "cloudformation.amazonaws.com"


class Verdict(str, Enum):
    ALLOW = "allow"
    CONFIRM = "confirm"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one grant, and every reason the table found."""

    grant: Grant
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    approved_by: str = ""  # "--allow", "--yes" or "prompt" when a confirm was pre-approved

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "inside the service's fence"


@dataclass(frozen=True, slots=True)
class Rules:
    """The decision's inputs besides the grant: whose role, what the service owns, the flags."""

    role_arn: str
    fence: Fence
    role_policies: frozenset[str] = frozenset()  # managed policies attached to the role
    high_risk: tuple[str, ...] = DEFAULT_HIGH_RISK
    allow: tuple[str, ...] = ()
    allow_accounts: frozenset[str] = frozenset()
    yes: bool = False
    # The CloudFormation service role the run also grows (``service_role``): never granted
    # on either, except the caller's iam:PassRole of it to CloudFormation.
    service_role_arn: str | None = None


def is_write(action: Action) -> bool:
    level = iamdb.access_level(action)
    return any(w in level for w in _WRITE_LEVELS)


def _levels(action: Action) -> set[str]:
    return {level.strip() for level in iamdb.access_level(action).split(",")}


def unsafe_text(text: str) -> str | None:
    """Why ``text`` must never be granted on: a control character or a policy variable."""
    for char in text:
        if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}:
            return f"control character U+{ord(char):04X} in the resource"
    if "${" in text:
        return "a policy variable (${...}) in the resource"
    return None


def shown(text: str) -> str:
    """``text`` safe for a terminal or a report: control characters and ``${`` escaped."""
    out = []
    for char in text:
        if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out).replace("${", "$\\{")


def _refusals(grant: Grant, rules: Rules, owner: Owner) -> list[str]:
    reasons = []
    texts = [grant.resource] + [v for _, key, values in grant.condition for v in (key, *values)]
    for text in texts:
        why = unsafe_text(text)
        if why is not None:
            reasons.append(why)
            break
    action = grant.action
    service = action.split(":", 1)[0]
    keys = {rt.key for rt in iamdb.resource_types(action)}
    role_write = (
        service in ("iam", "sts") and "role" in keys and is_write(action) and action not in _CREATES
    )
    if role_write and resource_matches(grant.resource, rules.role_arn):
        reasons.append(f"{action} on the sandbox role itself")
    service_role = rules.service_role_arn
    if (
        role_write
        and service_role is not None
        and resource_matches(grant.resource, service_role)
        and not (owner is not Owner.SERVICE_ROLE and _passes_service_role(grant, service_role))
    ):
        reasons.append(f"{action} on the CloudFormation service role itself")
    if service == "iam" and "policy" in keys and is_write(action):
        held = sorted(p for p in rules.role_policies if resource_matches(grant.resource, p))
        if held:
            reasons.append(f"{action} on {held[0]}, a policy the sandbox role holds")
    if owner is Owner.UNATTRIBUTED and not reasons:
        outside = rules.fence.outside(action, grant.resource)
        if outside is not None:
            reasons.append(
                f"no principal named, from the deploy's output, outside the fence ({outside})"
            )
    return reasons


def _passes_service_role(grant: Grant, service_role: str) -> bool:
    """The caller's iam:PassRole of exactly the service role, only to CloudFormation."""
    return (
        grant.action == "iam:PassRole"
        and grant.resource == service_role
        and grant.condition == (("StringEquals", "iam:PassedToService", (_CLOUDFORMATION,)),)
    )


def _confirmations(grant: Grant, rules: Rules) -> list[str]:
    if rules.service_role_arn is not None and _passes_service_role(grant, rules.service_role_arn):
        return []  # the service role the user named, passed to CloudFormation: the point
    action = grant.action
    lowered = action.lower()
    reasons = []
    if any(fnmatchcase(lowered, p.lower()) for p in rules.high_risk):
        reasons.append(f"{action} is on the high-risk list")
    if lowered.startswith("sts:assumerole"):
        reasons.append("sts:AssumeRole lets the deploy become another principal")
    if action in KEY_POLICY_ACTIONS:
        reasons.append("a key policy decides who may use the key")
    types = iamdb.resource_types(action)
    # NOTE: CloudFormation tags every taggable resource it creates with the caller's
    # permissions, and the denial of a tagging call often names no resource: tagging alone
    # on * is not confirmed (it changes no data and no permission).
    if grant.resource == "*" and types and "Tagging" not in _levels(action):
        reasons.append("every resource (*), for an action IAM can scope")
    located = locate(action, grant.resource) if grant.resource != "*" else None
    kinds = {rt.key for rt in types} & IAM_IDENTITY_KINDS
    if action.startswith("iam:") and kinds and (is_write(action) or action == "iam:PassRole"):
        name = located[3] if located else None
        kind = located_kind(action, grant.resource)
        if name is None or kind is None or not rules.fence.creates_iam(kind, name):
            what = "iam:PassRole of a role" if action == "iam:PassRole" else f"{action} on a"
            noun = "" if action == "iam:PassRole" else f" {kind or 'resource'}"
            reasons.append(f"{what}{noun} the service's template does not create")
    account = located[1] if located else None
    foreign_account = bool(account) and account != rules.fence.account
    if foreign_account and account not in rules.allow_accounts:
        reasons.append(f"a resource in another account ({account})")
    outside = rules.fence.outside(action, grant.resource)
    if outside is not None and not foreign_account and grant.resource != "*":
        reasons.append(f"outside the service's fence: {outside}")
    return reasons


def located_kind(action: Action, resource: str) -> str | None:
    """The IAM data's resource type key (``role``, ``user``, ...) ``resource`` fits."""
    rt = iamdb.match_resource_type(action, resource) if resource != "*" else None
    return rt.key if rt is not None else None


def decide(grant: Grant, rules: Rules, owner: Owner = Owner.SESSION) -> Decision:
    """The verdict on one planned grant of a denial ``owner`` is attributed to."""
    refusals = _refusals(grant, rules, owner)
    if refusals:
        return Decision(grant, Verdict.REFUSE, tuple(refusals))
    reasons = tuple(dict.fromkeys(_confirmations(grant, rules)))
    if not reasons:
        return Decision(grant, Verdict.ALLOW)
    if grant.action.lower() in {a.lower() for a in rules.allow}:
        return Decision(grant, Verdict.ALLOW, reasons, approved_by="--allow")
    if rules.yes:
        return Decision(grant, Verdict.ALLOW, reasons, approved_by="--yes")
    return Decision(grant, Verdict.CONFIRM, reasons)


def refine(grant: Grant, fence: Fence) -> tuple[Grant, ...]:
    """A ``*`` grant of an action IAM can scope, narrowed to the template's resources.

    osls's ``lambda:GetFunction`` check names no function, but the template names them all.
    Returns the grant unchanged when the template names none of the action's resources.
    """
    if grant.resource != "*" or not iamdb.resource_types(grant.action):
        return (grant,)
    if not _levels(grant.action) <= {"Read", "List"}:
        # Only reads are narrowed: a write's real resource may take another form of the ARN
        # (a log group's ``:*``) than the template's name gives.
        return (grant,)
    derived = fence.derive(grant.action)
    if not derived:
        return (grant,)
    return tuple(replace(grant, resource=arn) for arn in derived)


def decide_all(grants: Iterable[tuple[Grant, Owner]], rules: Rules) -> tuple[Decision, ...]:
    """``decide`` for each (grant, owner), in order."""
    return tuple(decide(grant, rules, owner) for grant, owner in grants)
