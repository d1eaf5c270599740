"""Guard rail: whose account this is.

Before any write, the admin identity's account, the sandbox role's account and the account the
user named as the sandbox must be one and the same. Which grants need a human's yes is the
grant decision's (``discover.decision``).
"""

from __future__ import annotations

from discover.errors import DiscoverError


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
            tip=f"Pass --sandbox-account {role_account} (or set sandbox_account in your own"
            " ~/.config/discover/config.toml) to confirm that this is the account discover"
            " may write to.",
        )
    if len({admin_account, role_account, sandbox_account}) != 1:
        msg = (
            f"account mismatch: credentials are for {admin_account}, the role is in "
            f"{role_account}, the sandbox account is {sandbox_account}"
        )
        raise AccountMismatchError(
            msg, tip="Use admin credentials of the sandbox account, and a role in it."
        )
