"""From a denied (action, resource) to the narrowest stable grant that covers it.

The resource is matched to one of the action's resource types (IAM data ARN formats); the
parts of the ARN that change from one deploy to the next (stack ids, random suffixes, build
timestamps in object keys) become ``*``; the parts that name the service and stage stay.
``*`` alone is used only where IAM has no resource type for the action, or the denial named
no resource at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from discover import iamdb
from discover.iamdb import Action
from discover.policy import Grant

# Identifier-like values that differ on every create: UUIDs, long hex or random suffixes.
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_RANDOM_SUFFIX = re.compile(r"^(?P<stem>.+?-)(?P<random>[a-z0-9]{8,})$")
_VARIABLE_SEGMENT = re.compile(r"^(?=.*\d)[0-9A-Za-z_.:-]{8,}$")
_ID_PLACEHOLDERS = frozenset({"Id", "ChangeSetId", "StackId"})


@dataclass(frozen=True, slots=True)
class Scoped:
    """A grant and, for the report, why its resource is what it is."""

    grant: Grant
    note: str


def _looks_random(value: str) -> bool:
    letters = sum(c.isalpha() for c in value)
    digits = sum(c.isdigit() for c in value)
    return letters > 0 and digits > 0 and len(value) >= 8


def _generalise_value(name: str, value: str) -> str:
    if value == "*" or value.endswith("/*"):
        return value
    if name in _ID_PLACEHOLDERS or _UUID.match(value):
        return "*"
    if name == "ObjectName":
        # Keep the key's stable prefix (serverless/SERVICE/STAGE/), drop the build folder on.
        kept: list[str] = []
        for segment in value.split("/"):
            if _VARIABLE_SEGMENT.match(segment) or "." in segment:
                break
            kept.append(segment)
        return "/".join([*kept, "*"])
    match = _RANDOM_SUFFIX.match(value)
    if match and _looks_random(match.group("random")) and name.endswith("Name"):
        return match.group("stem") + "*"
    return value


def generalise(action: Action, arn: str) -> tuple[str, str]:
    """``arn`` generalised within its resource type's format, and a note saying how."""
    for rt in iamdb.resource_types(action):
        found = rt.matching_format(arn)
        if found is None:
            continue
        arn_format, match = found
        values = match.groupdict()
        result = arn_format
        for name, value in values.items():
            result = result.replace("${" + name + "}", _generalise_value(name, value), 1)
        # Placeholders that repeat (rare) or were not captured fall back to the concrete value.
        if "${" in result:
            return arn, f"exact {rt.key} ARN (format not fully resolved)"
        if result == arn:
            return arn, f"exact {rt.key} ARN"
        return result, f"{rt.key}: deploy-specific parts of {arn} replaced by *"
    return arn, "as denied (no IAM resource type format matched)"


def scope(action: Action, resource: str | None) -> Scoped | None:
    """The grant for a denial of ``action`` on ``resource`` (None when the text named none).

    Returns None when the resource is not something to grant on: a wildcard inside a name
    (AWS writes only a trailing ``/*`` for a stack that does not exist yet) comes from text
    someone chose, and is never taken as a pattern.
    """
    types = iamdb.resource_types(action)
    if not types:
        return Scoped(Grant(action, "*"), "IAM defines no resource type for this action")
    if resource is None or resource == "*":
        return Scoped(Grant(action, "*"), "the denial named no resource")
    if "*" in resource.removesuffix("/*") or "?" in resource:
        return None
    if not resource.startswith("arn:"):
        return Scoped(Grant(action, "*"), f"resource {resource!r} is not an ARN")
    pattern, note = generalise(action, resource)
    return Scoped(Grant(action, pattern), note)
