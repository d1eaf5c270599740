"""Guard rails: whose account this is, and which grants need a human's yes.

Before any write, the admin identity's account, the sandbox role's account and the account the
user named as the sandbox must be one and the same. Grants of actions that would let the
deploy role mint identities or leave the account stop the loop for confirmation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from discover.errors import DiscoverError
from discover.policy import Grant

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


class AccountMismatchError(DiscoverError):
    """The credentials, the role and the configured sandbox account disagree."""

    exit_code = 2


def check_accounts(*, admin_account: str, role_arn: str, sandbox_account: str | None) -> None:
    """Refuse (exit 2) unless the three accounts agree; a sandbox account must be named."""
    role_account = role_arn.split(":")[4]
    if sandbox_account is None:
        msg = "no sandbox account configured"
        raise AccountMismatchError(
            msg,
            tip=f"Pass --sandbox-account {role_account} (or set sandbox_account in discover.toml)"
            " to confirm that this is the account discover may write to.",
        )
    if len({admin_account, role_account, sandbox_account}) != 1:
        msg = (
            f"account mismatch: credentials are for {admin_account}, the role is in "
            f"{role_account}, the sandbox account is {sandbox_account}"
        )
        raise AccountMismatchError(
            msg, tip="Use admin credentials of the sandbox account, and a role in it."
        )


def is_high_risk(grant: Grant, patterns: Sequence[str], *, stack_name: str) -> bool:
    """True when the grant's action is on the high-risk list.

    ``sts:AssumeRole`` is high-risk only on roles the stack does not name: a deploy that
    assumes a role of its own stack is ordinary.
    """
    action = grant.action.lower()
    for pattern in patterns:
        if fnmatchcase(action, pattern.lower()):
            if action == "sts:assumerole" and stack_name and stack_name in grant.resource:
                continue
            return True
    return False


def high_risk_grants(
    grants: Iterable[Grant],
    patterns: Sequence[str],
    *,
    allowed: Iterable[str],
    stack_name: str,
) -> list[Grant]:
    """The grants that need confirmation: high-risk and not allowed by ``--allow``."""
    allowed_lower = {a.lower() for a in allowed}
    return [
        g
        for g in grants
        if g.action.lower() not in allowed_lower
        and is_high_risk(g, patterns, stack_name=stack_name)
    ]
