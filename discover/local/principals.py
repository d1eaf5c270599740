"""Who is calling: the principal behind an access key, and the identity policies it has.

A request is signed with an IAM user's key or an STS session's key; AWS names the caller in a
denial by the user's ARN or the session's ``assumed-role`` ARN, and evaluates the identity
policies of the user (with its groups) or of the role. moto's IAM backend holds those
policies; this module reads them as plain policy documents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class PrincipalKind(str, Enum):
    USER = "user"
    ROLE = "role"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request (or the identity CloudFormation acts as)."""

    arn: str  # as AWS writes it in a denial: the user, or the role session
    account: str
    kind: PrincipalKind
    name: str  # the user's or the role's name: whose policies apply
    identity_arn: str  # the user's or the role's own ARN (aws:PrincipalArn)
    access_key_id: str | None = None  # the STS session's key, to look up its expiry

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.name)

    def context(self) -> dict[str, str]:
        """Global condition keys AWS sets for every request of this principal."""
        return {
            "aws:PrincipalArn": self.identity_arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": "AssumedRole" if self.kind is PrincipalKind.ROLE else "User",
        }


def principal_of(access_key: Any, account: str) -> Principal:
    """The principal behind one of moto's access-key objects (IAM user or assumed role)."""
    from moto.iam.access_control import AssumedRoleAccessKey

    if isinstance(access_key, AssumedRoleAccessKey):
        role_name = str(access_key._owner_role_name)
        return Principal(
            arn=str(access_key.arn),
            account=account,
            kind=PrincipalKind.ROLE,
            name=role_name,
            identity_arn=_role_arn_of(access_key, account, role_name),
            access_key_id=str(access_key._access_key_id),
        )
    user_name = str(access_key._owner_user_name)
    return Principal(
        arn=str(access_key.arn),
        account=account,
        kind=PrincipalKind.USER,
        name=user_name,
        identity_arn=str(access_key.arn),
    )


def _role_arn_of(access_key: Any, account: str, role_name: str) -> str:
    """The role's own ARN (with its path, if it has one)."""
    from moto.iam.exceptions import NotFoundException

    try:
        return str(access_key.backend.get_role(role_name).arn)
    except NotFoundException:
        return role_arn(account, role_name, str(access_key.partition))


def role_session(role: Any, session_name: str, account: str) -> Principal:
    """A session of ``role`` (a moto Role), e.g. CloudFormation acting with a service role."""
    name = str(role.name)
    return Principal(
        arn=f"arn:aws:sts::{account}:assumed-role/{name}/{session_name}",
        account=account,
        kind=PrincipalKind.ROLE,
        name=name,
        identity_arn=str(role.arn),
    )


def role_arn(account: str, role_name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:role/{role_name}"


# --- the identity policies, as moto holds them -------------------------------------------------


def _document(policy: Any) -> dict[str, Any]:
    from moto.iam.access_control import IAMPolicy

    document: dict[str, Any] = IAMPolicy(policy)._policy_json
    return document


def _role_policies(backend: Any, name: str) -> list[Any]:
    policies: list[Any] = []
    for policy_name in backend.list_role_policies(name):
        policies.append(backend.get_role_policy(name, policy_name)[1])
    attached, _ = backend.list_attached_role_policies(name)
    policies.extend(attached)
    return policies


def _user_policies(backend: Any, name: str) -> list[Any]:
    policies: list[Any] = [
        backend.get_user_policy(name, policy_name)
        for policy_name in backend.list_user_policies(name)
    ]
    attached, _ = backend.list_attached_user_policies(name)
    policies.extend(attached)
    for group in backend.get_groups_for_user(name):
        policies.extend(
            backend.get_group_policy(group.name, policy_name)
            for policy_name in backend.list_group_policies(group.name)
        )
        group_attached, _ = backend.list_attached_group_policies(group.name)
        policies.extend(group_attached)
    return policies


def current_documents(backend: Any, kind: PrincipalKind, name: str) -> tuple[str, ...]:
    """The principal's identity policies as canonical JSON strings (empty if it is gone)."""
    from moto.iam.exceptions import NotFoundException

    try:
        raw = (
            _role_policies(backend, name)
            if kind is PrincipalKind.ROLE
            else _user_policies(backend, name)
        )
    except NotFoundException:
        return ()
    return tuple(json.dumps(_document(p), sort_keys=True) for p in raw)


def all_principals(backend: Any) -> list[tuple[PrincipalKind, str]]:
    """Every role and user of an account's IAM backend."""
    roles = [(PrincipalKind.ROLE, str(r.name)) for r in backend.roles.values()]
    users = [(PrincipalKind.USER, str(name)) for name in backend.users]
    return roles + users


def documents_as_dicts(documents: tuple[str, ...]) -> list[Mapping[str, Any]]:
    return [json.loads(d) for d in documents]
