"""Permission denials: what was refused, to whom, on what, and why, read from text.

``parse_denials`` is pure: it reads text (a deploy's output, a stack event's reason, a log)
and returns every permission denial in it. The text is untrusted: it never yields a wildcard
action, and an action it yields is either canonical per the IAM data or flagged unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from discover import iamdb
from discover.iamdb import Action


class Reason(str, Enum):
    """Why a request was denied, as the message tells it (see DESIGN.md's reason table)."""

    NO_IDENTITY_POLICY = "no-identity-policy"
    UNSPECIFIED = "unspecified"
    S3_OPAQUE = "s3-opaque"
    ENCODED = "encoded"
    EXPLICIT_DENY_IDENTITY = "explicit-deny-identity"
    EXPLICIT_DENY_SCP = "explicit-deny-scp"
    EXPLICIT_DENY_RESOURCE = "explicit-deny-resource"
    EXPLICIT_DENY_BOUNDARY = "explicit-deny-boundary"
    EXPLICIT_DENY_UNSPECIFIED = "explicit-deny-unspecified"
    NO_BOUNDARY = "no-boundary"
    NO_SESSION_POLICY = "no-session-policy"
    NO_RESOURCE_POLICY = "no-resource-policy"

    @property
    def fixable(self) -> bool:
        """Can an Allow in the role's identity policy fix a denial for this reason?"""
        return self in _FIXABLE


_FIXABLE = frozenset({Reason.NO_IDENTITY_POLICY, Reason.UNSPECIFIED, Reason.S3_OPAQUE})


@dataclass(frozen=True, slots=True)
class Denial:
    """One permission denial found in text."""

    action: str | None  # canonical IAM action when known; as written when not; None if unnamed
    resource: str | None  # as given (ARN, or e.g. "role XPTO"); None when not named
    principal: str | None
    reason: Reason
    source: str  # where the text came from: "output", "stack-event", ...
    message: str  # the line(s) it was read from, for the report

    @property
    def action_known(self) -> bool:
        """True when ``action`` is a real IAM action (so it may be granted)."""
        return self.action is not None and iamdb.is_known_action(self.action)

    @property
    def key(self) -> tuple[str | None, str | None, str | None]:
        return (self.principal, self.action, self.resource)


# --- the message shapes --------------------------------------------------------------------

_ARN = r"arn:[^\s\"'`,;]+"
_PRINCIPAL = rf"(?P<principal>{_ARN}|[^\s:]+)"
_ACTION_TOKEN = r"(?P<action>[A-Za-z0-9*?-]+:[A-Za-z0-9*?]+)"
_NOT_AUTHORIZED = re.compile(
    rf"(?:(?:User|Principal):\s*{_PRINCIPAL}\s*)?is not authorized to perform:?\s*{_ACTION_TOKEN}"
    r"(?:\s+on resource:?\s*(?P<resource>\"[^\"]+\"|[^\s\"]+(?: [A-Za-z0-9_.+=@/-]+)?))?"
    r"(?P<rest>[^\n]*)"
)
_BECAUSE: tuple[tuple[re.Pattern[str], Reason], ...] = (
    (re.compile(r"explicit deny in a service control policy", re.I), Reason.EXPLICIT_DENY_SCP),
    (re.compile(r"explicit deny in a permissions boundary", re.I), Reason.EXPLICIT_DENY_BOUNDARY),
    (re.compile(r"explicit deny in a resource-based policy", re.I), Reason.EXPLICIT_DENY_RESOURCE),
    (re.compile(r"explicit deny in an identity-based policy", re.I), Reason.EXPLICIT_DENY_IDENTITY),
    (re.compile(r"explicit deny", re.I), Reason.EXPLICIT_DENY_UNSPECIFIED),
    (re.compile(r"no identity-based policy allows", re.I), Reason.NO_IDENTITY_POLICY),
    (re.compile(r"no permissions boundary allows", re.I), Reason.NO_BOUNDARY),
    (re.compile(r"no session policy allows", re.I), Reason.NO_SESSION_POLICY),
    (re.compile(r"no resource-based policy allows", re.I), Reason.NO_RESOURCE_POLICY),
)


def _reason(rest: str) -> Reason:
    for pattern, reason in _BECAUSE:
        if pattern.search(rest):
            return reason
    return Reason.UNSPECIFIED


def _clean_resource(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip().strip('"').rstrip(".,;)")
    if value.startswith("arn:"):
        value = value.split(" ", 1)[0]
    return value or None


def _canonical_or_raw(action: str) -> str | None:
    if "*" in action or "?" in action:
        return None  # never a wildcard, whatever the text says
    return iamdb.canonical_action(action) or action


def _iter_not_authorized(text: str, source: str) -> Iterator[Denial]:
    for match in _NOT_AUTHORIZED.finditer(text):
        action = _canonical_or_raw(match.group("action"))
        if action is None:
            continue
        principal = match.group("principal")
        yield Denial(
            action=action,
            resource=_clean_resource(match.group("resource")),
            principal=principal.rstrip(".,;") if principal else None,
            reason=_reason(match.group("rest") or ""),
            source=source,
            message=match.group(0).strip(),
        )


def parse_denials(text: str, *, source: str = "output") -> tuple[Denial, ...]:
    """Every distinct permission denial in ``text``, in order of first appearance."""
    return dedupe(_iter_not_authorized(text, source))


def dedupe(denials: Iterable[Denial]) -> tuple[Denial, ...]:
    """Keep the first denial of each (principal, action, resource)."""
    seen: set[tuple[str | None, str | None, str | None]] = set()
    result: list[Denial] = []
    for denial in denials:
        if denial.key not in seen:
            seen.add(denial.key)
            result.append(denial)
    return tuple(result)


__all__ = ["Action", "Denial", "Reason", "dedupe", "parse_denials"]
