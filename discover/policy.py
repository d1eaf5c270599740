"""The policy model: grants, statements, rendering, and IAM's size measure.

A ``PolicyDocument`` is a set of ``Grant`` s (action, resource pattern, condition). Statements
are derived, never stored: actions that share the same resource set and condition are merged,
everything is sorted, and each ``Sid`` is a hash of its content, so the same evidence always
renders to the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from discover import iamdb
from discover.errors import DiscoverError
from discover.iamdb import Action

POLICY_VERSION = "2012-10-17"
# NOTE: IAM quotas, in non-whitespace characters.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
INLINE_ROLE_POLICIES_QUOTA = 10_240
MANAGED_POLICY_QUOTA = 6_144

Condition = tuple[tuple[str, str, tuple[str, ...]], ...]
"""Sorted (operator, key, values) triples, e.g.
``(("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),)``."""


class PolicyError(DiscoverError):
    """A policy file that cannot be read, or a grant that must not be made."""

    exit_code = 2


@dataclass(frozen=True, slots=True, order=True)
class Grant:
    """Allow ``action`` on ``resource`` (an ARN pattern or ``*``), under ``condition``."""

    action: Action
    resource: str
    condition: Condition = ()

    def __post_init__(self) -> None:
        if not iamdb.is_known_action(self.action):
            msg = f"refusing to grant {self.action!r}: not an IAM action in canonical case"
            raise PolicyError(msg)


@dataclass(frozen=True, slots=True)
class Statement:
    sid: str
    actions: tuple[Action, ...]
    resources: tuple[str, ...]
    condition: Condition = ()

    def to_dict(self) -> dict[str, Any]:
        statement: dict[str, Any] = {
            "Sid": self.sid,
            "Effect": "Allow",
            "Action": list(self.actions),
            "Resource": self.resources[0] if self.resources == ("*",) else list(self.resources),
        }
        if self.condition:
            block: dict[str, dict[str, Any]] = defaultdict(dict)
            for operator, key, values in self.condition:
                block[operator][key] = values[0] if len(values) == 1 else list(values)
            statement["Condition"] = {
                op: dict(sorted(v.items())) for op, v in sorted(block.items())
            }
        return statement


def _sid(actions: tuple[Action, ...], resources: tuple[str, ...], condition: Condition) -> str:
    services = sorted({a.split(":", 1)[0] for a in actions})
    name = "".join(s.replace("-", " ").title().replace(" ", "") for s in services)[:40]
    digest = hashlib.sha256(json.dumps([actions, resources, condition]).encode()).hexdigest()
    return f"{name}{digest[:8].upper()}"


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """An identity policy as a set of grants; immutable, changes return a copy."""

    grants: frozenset[Grant] = field(default_factory=frozenset)

    def with_grants(self, grants: Iterable[Grant]) -> PolicyDocument:
        return PolicyDocument(self.grants | frozenset(grants))

    def without(self, grants: Iterable[Grant]) -> PolicyDocument:
        return PolicyDocument(self.grants - frozenset(grants))

    def allows(self, action: str, resource: str) -> bool:
        """True when some grant's action and resource pattern cover the pair (no conditions)."""
        from fnmatch import fnmatchcase

        return any(
            g.action.lower() == action.lower() and fnmatchcase(resource, g.resource)
            for g in self.grants
        )

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(sorted({g.action for g in self.grants}))

    def statements(self) -> tuple[Statement, ...]:
        by_action: dict[tuple[Action, Condition], set[str]] = defaultdict(set)
        for grant in self.grants:
            by_action[(grant.action, grant.condition)].add(grant.resource)
        grouped: dict[tuple[tuple[str, ...], Condition], list[Action]] = defaultdict(list)
        for (action, condition), resources in by_action.items():
            # "*" covers every other pattern of the same action.
            key = ("*",) if "*" in resources else tuple(sorted(resources))
            grouped[(key, condition)].append(action)
        statements = [
            Statement(
                _sid(tuple(sorted(actions)), resources, condition),
                tuple(sorted(actions)),
                resources,
                condition,
            )
            for (resources, condition), actions in grouped.items()
        ]
        return tuple(sorted(statements, key=lambda s: (s.actions, s.resources, s.condition)))

    def to_dict(self) -> dict[str, Any]:
        return {"Version": POLICY_VERSION, "Statement": [s.to_dict() for s in self.statements()]}

    def render_json(self) -> str:
        """The IAM policy document, deterministic bytes (sorted, 2-space indent, final newline)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def size(self) -> int:
        """IAM's measure: characters that are not whitespace, of the compact JSON."""
        return policy_size(self.to_dict())

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> PolicyDocument:
        """Read an IAM policy document back into grants (Allow statements only)."""
        statements = document.get("Statement")
        if isinstance(statements, Mapping):
            statements = [statements]
        if not isinstance(statements, list):
            msg = "policy has no Statement list"
            raise PolicyError(msg)
        grants: list[Grant] = []
        for statement in statements:
            if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
                msg = "only Allow statements can be read back"
                raise PolicyError(msg)
            actions = statement.get("Action")
            resources = statement.get("Resource", "*")
            actions = [actions] if isinstance(actions, str) else actions
            resources = [resources] if isinstance(resources, str) else resources
            condition = _read_condition(statement.get("Condition") or {})
            for action in actions or []:
                canonical = iamdb.canonical_action(str(action))
                if canonical is None:
                    msg = f"policy names {action!r}, which is not an IAM action"
                    raise PolicyError(msg)
                grants.extend(Grant(canonical, str(r), condition) for r in resources or [])
        return cls(frozenset(grants))


def _read_condition(block: Mapping[str, Any]) -> Condition:
    triples = []
    for operator, entries in block.items():
        for key, raw in entries.items():
            values = [raw] if isinstance(raw, str) else raw
            triples.append((str(operator), str(key), tuple(sorted(str(v) for v in values))))
    return tuple(sorted(triples))


def policy_size(document: Mapping[str, Any]) -> int:
    text = json.dumps(document, separators=(",", ":"))
    return sum(1 for ch in text if not ch.isspace())
