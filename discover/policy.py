"""The policy model: grants, statements, rendering, and IAM's size measure and quotas.

A ``PolicyDocument`` is a set of ``Grant`` s (action, resource pattern, condition). Statements
are derived, never stored: actions that share the same resource set and condition are merged,
everything is sorted, and each ``Sid`` is a hash of its content, so the same evidence always
renders to the same bytes. A policy too large for IAM is split into several documents, each
within the managed-policy quota, holding exactly the same grants: never widened to fit.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from discover import iamdb
from discover.errors import DiscoverError
from discover.iamdb import Action

POLICY_VERSION = "2012-10-17"
# NOTE: IAM quotas, in characters that are not whitespace.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
INLINE_ROLE_POLICIES_QUOTA = 10_240  # all inline policies of one role, together
MANAGED_POLICY_QUOTA = 6_144  # one managed policy
MANAGED_POLICIES_PER_ROLE = 10  # default quota; AWS raises it to 20 on request

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
    """One rendered statement: actions sharing the same resources and condition."""

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
            statement["Condition"] = condition_block(self.condition)
        return statement


def condition_block(condition: Condition) -> dict[str, dict[str, str | list[str]]]:
    """The IAM JSON ``Condition`` block of ``condition`` (sorted; one value as a string)."""
    block: dict[str, dict[str, str | list[str]]] = defaultdict(dict)
    for operator, key, values in condition:
        block[operator][key] = values[0] if len(values) == 1 else list(values)
    return {op: dict(sorted(v.items())) for op, v in sorted(block.items())}


def _sid(actions: tuple[Action, ...], resources: tuple[str, ...], condition: Condition) -> str:
    services = sorted({a.split(":", 1)[0] for a in actions})
    name = "".join(s.replace("-", " ").title().replace(" ", "") for s in services)[:40]
    digest = hashlib.sha256(json.dumps([actions, resources, condition]).encode()).hexdigest()
    return f"{name}{digest[:8].upper()}"


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    # IAM's wildcards: "*" any run of characters (slashes too), "?" one character; nothing else
    # (unlike fnmatch, "[" is an ordinary character in an ARN).
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def resource_matches(pattern: str, resource: str) -> bool:
    """True when IAM's ``Resource`` ``pattern`` covers ``resource``."""
    return _glob_regex(pattern).fullmatch(resource) is not None


def covers(pattern: str, other: str) -> bool:
    """True when every resource ``other`` matches is certainly matched by ``pattern`` too.

    Sufficient, not exhaustive: ``*``; ``PREFIX*`` over what starts with that literal prefix;
    and, segment by segment between the slashes, ``*`` or the very same text.
    """
    if pattern == other:
        return False
    if pattern == "*":
        return True
    head = pattern[:-1]
    if pattern.endswith("*") and not set(head) & {"*", "?"} and other.startswith(head):
        return True
    ours, theirs = pattern.split("/"), other.split("/")
    return len(ours) == len(theirs) and all(
        a in ("*", b) for a, b in zip(ours, theirs, strict=True)
    )


def _uncovered(resources: Iterable[str]) -> tuple[str, ...]:
    """``resources`` without those another one of them covers, sorted."""
    patterns = set(resources)
    wild = [p for p in patterns if "*" in p]  # only a wildcard covers anything
    return tuple(sorted(r for r in patterns if not any(covers(p, r) for p in wild)))


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
        return any(
            g.action.lower() == action.lower() and resource_matches(g.resource, resource)
            for g in self.grants
        )

    def effective(self) -> PolicyDocument:
        """The grants the rendered document holds: those no other grant of the same action
        and condition covers (``*`` over a name, ``/restapis/*`` over ``/restapis/abc``)."""
        return PolicyDocument(
            frozenset(
                g
                for g in self.grants
                if not any(
                    o.action == g.action
                    and o.condition == g.condition
                    and covers(o.resource, g.resource)
                    for o in self.grants
                    if "*" in o.resource
                )
            )
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
            grouped[(_uncovered(resources), condition)].append(action)
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
    def from_dict(cls, document: object) -> PolicyDocument:
        """Read an IAM policy document back into grants (Allow statements only).

        Anything this model cannot hold exactly (Deny, NotAction, NotResource, wildcard
        actions) is refused with a ``PolicyError`` rather than read approximately.
        """
        if not isinstance(document, Mapping):
            msg = "not a policy document (a JSON object with a Statement list)"
            raise PolicyError(msg)
        statements = document.get("Statement")
        if isinstance(statements, Mapping):
            statements = [statements]
        if not isinstance(statements, list):
            msg = "policy has no Statement list"
            raise PolicyError(msg)
        grants: list[Grant] = []
        for number, statement in enumerate(statements, start=1):
            grants.extend(_read_statement(statement, number))
        return cls(frozenset(grants))


def _strings(value: Any, what: str, number: int) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        msg = f"statement {number}: {what} must be a string or a non-empty list of strings"
        raise PolicyError(msg)
    return list(values)


def _read_statement(statement: Any, number: int) -> Iterator[Grant]:
    if not isinstance(statement, Mapping):
        msg = f"statement {number} is not an object"
        raise PolicyError(msg)
    if statement.get("Effect") != "Allow":
        msg = f"statement {number}: only Allow statements can be read back"
        raise PolicyError(msg)
    for unsupported in ("NotAction", "NotResource", "Principal", "NotPrincipal"):
        if unsupported in statement:
            msg = f"statement {number}: {unsupported} is not part of an identity policy read here"
            raise PolicyError(msg)
    actions = _strings(statement.get("Action"), "Action", number)
    resources = _strings(statement.get("Resource"), "Resource", number)
    condition = _read_condition(statement.get("Condition", {}), number)
    for action in actions:
        canonical = iamdb.canonical_action(action)
        if canonical is None:
            msg = f"statement {number} names {action!r}, which is not an IAM action"
            raise PolicyError(msg)
        for resource in resources:
            yield Grant(canonical, resource, condition)


def _read_condition(block: Any, number: int) -> Condition:
    if not isinstance(block, Mapping):
        msg = f"statement {number}: Condition must be an object"
        raise PolicyError(msg)
    triples = []
    for operator, entries in block.items():
        if not isinstance(entries, Mapping):
            msg = f"statement {number}: Condition {operator} must be an object"
            raise PolicyError(msg)
        for key, raw in entries.items():
            values = _strings(raw, f"Condition {operator} {key}", number)
            triples.append((str(operator), str(key), tuple(sorted(values))))
    return tuple(sorted(triples))


def policy_size(document: Mapping[str, Any]) -> int:
    """IAM's size measure of a policy document: its characters that are not whitespace."""
    text = json.dumps(document, separators=(",", ":"))
    return sum(1 for ch in text if not ch.isspace())


# --- quotas -----------------------------------------------------------------------------------


def split_for_quota(
    policy: PolicyDocument, limit: int = MANAGED_POLICY_QUOTA
) -> tuple[PolicyDocument, ...]:
    """``policy`` as documents each within ``limit`` characters, together the same grants.

    ``(policy,)`` when it fits. Otherwise whole statements are packed first-fit, in the
    statements' sorted order, so the parts are deterministic; a statement too large on its own
    is cut by resources, then by actions. Nothing is widened: the parts' grants are exactly
    ``policy``'s. A single grant over ``limit`` is refused.
    """
    if policy.size() <= limit:
        return (policy,)
    parts: list[frozenset[Grant]] = []
    for chunk in _chunks(policy, limit):
        for index, part in enumerate(parts):
            if PolicyDocument(part | chunk).size() <= limit:
                parts[index] = part | chunk
                break
        else:
            parts.append(chunk)
    return tuple(PolicyDocument(part) for part in parts)


def _chunks(policy: PolicyDocument, limit: int) -> Iterator[frozenset[Grant]]:
    """Each statement's grants; a statement over ``limit`` in pieces that each fit."""
    for statement in policy.statements():
        grants = frozenset(
            g
            for g in policy.grants
            if g.action in statement.actions and g.condition == statement.condition
        )
        yield from _pieces(grants, limit)


def _pieces(grants: frozenset[Grant], limit: int) -> Iterator[frozenset[Grant]]:
    """``grants`` cut into as few pieces within ``limit`` as a greedy fill gives.

    Cut by resources first (each piece keeps all the actions, so it stays one statement),
    then, for one resource with too many actions, by actions.
    """
    if PolicyDocument(grants).size() <= limit:
        yield grants
        return
    resources = sorted({g.resource for g in grants})
    if len(resources) > 1:
        yield from _fill(grants, resources, lambda g: g.resource, limit)
        return
    actions: list[str] = sorted({g.action for g in grants})
    if len(actions) > 1:
        yield from _fill(grants, actions, lambda g: g.action, limit)
        return
    (grant,) = grants
    size = PolicyDocument(grants).size()
    msg = f"{grant.action} on {grant.resource} alone is {size} characters, over the quota {limit}"
    raise PolicyError(msg, tip="Shorten the resource pattern by hand; discover never widens it.")


def _fill(
    grants: frozenset[Grant], keys: list[str], key: Callable[[Grant], str], limit: int
) -> Iterator[frozenset[Grant]]:
    current: set[str] = set()
    for item in keys:
        candidate = current | {item}
        piece = frozenset(g for g in grants if key(g) in candidate)
        if current and PolicyDocument(piece).size() > limit:
            yield from _pieces(frozenset(g for g in grants if key(g) in current), limit)
            current = {item}
        else:
            current = candidate
    yield from _pieces(frozenset(g for g in grants if key(g) in current), limit)


@dataclass(frozen=True, slots=True)
class QuotaCheck:
    """How a policy sits within IAM's quotas, and how it is split when it does not fit."""

    size: int
    parts: tuple[PolicyDocument, ...]  # managed-policy-sized; one when the policy fits 6,144

    @property
    def fits_inline(self) -> bool:
        return self.size <= INLINE_ROLE_POLICIES_QUOTA

    @property
    def fits_managed(self) -> bool:
        return self.size <= MANAGED_POLICY_QUOTA

    def describe(self) -> str:
        """One paragraph for the report and the command line."""
        head = (
            f"{self.size:,} non-whitespace characters: "
            f"{'within' if self.fits_inline else 'over'} the role inline quota "
            f"({INLINE_ROLE_POLICIES_QUOTA:,}, all inline policies together), "
            f"{'within' if self.fits_managed else 'over'} the managed policy quota "
            f"({MANAGED_POLICY_QUOTA:,})."
        )
        if self.fits_managed:
            return head
        sizes = ", ".join(f"{p.size():,}" for p in self.parts)
        text = (
            f"{head} As managed policies it is split in {len(self.parts)} "
            f"(sizes {sizes}), the same grants, none widened."
        )
        if len(self.parts) > MANAGED_POLICIES_PER_ROLE:
            text += (
                f" That is more than the {MANAGED_POLICIES_PER_ROLE} managed policies a role"
                " may have by default: ask AWS to raise the quota."
            )
        return text


def check_quota(policy: PolicyDocument) -> QuotaCheck:
    """``policy``'s size, and its managed-policy parts (split only when it is over 6,144)."""
    return QuotaCheck(policy.size(), split_for_quota(policy, MANAGED_POLICY_QUOTA))


def load_policy(path: Path) -> PolicyDocument:
    """The policy in the JSON file at ``path``; a ``PolicyError`` naming the file otherwise."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"{path}: no such file"
        raise PolicyError(msg) from exc
    except IsADirectoryError as exc:
        msg = f"{path}: a folder, not a policy file"
        raise PolicyError(msg) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"{path}: not a JSON policy document ({exc})"
        raise PolicyError(msg) from exc
    except OSError as exc:
        msg = f"{path}: cannot read it ({exc.strerror})"
        raise PolicyError(msg) from exc
    try:
        return PolicyDocument.from_dict(document)
    except PolicyError as exc:
        msg = f"{path}: {exc.msg}"
        raise PolicyError(msg, tip=exc.tip) from exc
