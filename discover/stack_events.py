"""CloudFormation stack events -> denials, for the failed resources of one run.

When CloudFormation creates a resource, it calls the service as the caller; a refusal comes
back as a ``*_FAILED`` event whose reason holds AWS's message. Events older than the run, and
the stack-level "resources failed" summaries, are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from discover.denials import Denial, dedupe, parse_denials


def failed_events(events: Iterable[Mapping[str, Any]], since: datetime) -> list[Mapping[str, Any]]:
    """The ``*_FAILED`` events with a reason, at or after ``since``, oldest first."""
    chosen = [
        e
        for e in events
        if str(e.get("ResourceStatus", "")).endswith("_FAILED")
        and e.get("ResourceStatusReason")
        and _timestamp(e) >= since
    ]
    return sorted(chosen, key=_timestamp)


def _timestamp(event: Mapping[str, Any]) -> datetime:
    value = event.get("Timestamp")
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def denials_from_events(events: Iterable[Mapping[str, Any]], since: datetime) -> tuple[Denial, ...]:
    """Every denial named in the failed events of this run, with the resource it was about.

    The logical id, resource type and physical id go in the denial's fields (what decisions
    read); the message keeps them in front of AWS's reason only for the people reading it.
    """
    found: list[Denial] = []
    for event in failed_events(events, since):
        logical_id = _field(event, "LogicalResourceId")
        resource_type = _field(event, "ResourceType")
        physical_id = _field(event, "PhysicalResourceId")
        text = str(event["ResourceStatusReason"])
        status = event.get("ResourceStatus")
        shown = f"{logical_id or '?'} ({resource_type or '?'}) {status}: {text}"
        for denial in parse_denials(text, source="stack-event"):
            found.append(
                replace(
                    denial,
                    message=shown,
                    logical_id=logical_id,
                    resource_type=resource_type,
                    physical_id=physical_id,
                )
            )
    return dedupe(found)


def _field(event: Mapping[str, Any], name: str) -> str | None:
    value = event.get(name)
    return str(value) if value else None
