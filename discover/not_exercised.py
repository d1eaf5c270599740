"""What an update or a delete discover did not make may need: the "not exercised" list.

discover learns what the phases it runs need: the create, an update that changes what a code
change changes, a no-op update, the remove. Another update (a property changed, a resource
replaced) calls what the resource types' update handlers call, and a stack never removed has
not shown what the delete handlers call. The CloudFormation registry schemas (cfn-lint ships
them, read by ``discover.template.schema``) list each handler's permissions
(``handlers.update.permissions``, ``handlers.delete.permissions``); what they list for the
template's types, that the policy does not hold and no run of the phases needed, is shown to
the reviewer as "not exercised": never granted, since no run showed it is needed.

A replacement is the create handler of the new resource and the delete handler of the old
one: the create phase exercised the first, the remove phase the second.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from discover import iamdb
from discover.fence import read_packaged_template
from discover.iamdb import Action
from discover.policy import PolicyDocument
from discover.risks import md_code, md_text
from discover.run_events import Event, RunFinished, step_of_runs
from discover.template import schema


class Handler(str, Enum):
    """The registry schema handlers whose permissions a later change may need."""

    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Unexercised:
    """One resource type's handler: the permissions it lists that the policy does not hold."""

    resource_type: str
    logical_ids: tuple[str, ...]
    handler: Handler
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Exercised:
    """Which of the phases after the create passed in a run's journal."""

    updated: bool  # an update step succeeded (deploy --force: the functions' code)
    removed: bool  # a remove step succeeded: every resource went through its delete handler


def exercised(events: Sequence[Event]) -> Exercised:
    """What the journal's steps show: an update and a remove that succeeded."""
    steps = step_of_runs(events)
    passed = {
        steps[e.iteration].step
        for e in events
        if isinstance(e, RunFinished) and e.returncode == 0 and e.iteration in steps
    }
    return Exercised(updated="update" in passed, removed="remove" in passed)


def template_types(template: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """The template's resource types, each with its logical ids (sorted)."""
    found: dict[str, list[str]] = defaultdict(list)
    resources = template.get("Resources") if template else None
    if not isinstance(resources, Mapping):
        return {}
    for logical_id, resource in resources.items():
        kind = resource.get("Type") if isinstance(resource, Mapping) else None
        if isinstance(kind, str):
            found[kind].append(str(logical_id))
    return {kind: tuple(sorted(ids)) for kind, ids in sorted(found.items())}


def handler_permissions(resource_type: str, handler: Handler) -> tuple[Action, ...] | None:
    """The IAM actions the type's handler lists (names that are not IAM actions dropped);
    None when the type has no registry schema or no such handler."""
    found = schema(resource_type)
    handlers = found.get("handlers") if found else None
    entry = handlers.get(handler.value) if isinstance(handlers, Mapping) else None
    if not isinstance(entry, Mapping):
        return None
    names = entry.get("permissions", [])
    actions = {iamdb.canonical_action(str(n)) for n in names if isinstance(n, str)}
    return tuple(sorted(a for a in actions if a is not None))


def not_exercised(
    types: Mapping[str, Sequence[str]], policy: PolicyDocument, done: Exercised
) -> tuple[Unexercised, ...]:
    """Per type and handler, what the handler lists that the policy does not hold.

    Every update handler is listed: no update discover makes changes every property. A delete
    handler only when no remove passed (a remove deletes every resource of the stack).
    """
    held = {a.lower() for a in policy.actions}
    handlers = (Handler.UPDATE,) if done.removed else (Handler.UPDATE, Handler.DELETE)
    found = []
    for kind, logical_ids in sorted(types.items()):
        for handler in handlers:
            listed = handler_permissions(kind, handler)
            missing = tuple(a for a in listed or () if a.lower() not in held)
            if missing:
                found.append(Unexercised(kind, tuple(logical_ids), handler, missing))
    return tuple(found)


def without_schema(types: Iterable[str]) -> tuple[str, ...]:
    """The types the registry has no schema for (custom resources, ...): nothing to list."""
    return tuple(sorted(t for t in types if schema(t) is None))


def render_section(
    types: Mapping[str, Sequence[str]], policy: PolicyDocument, done: Exercised
) -> list[str]:
    """The report's "Not exercised" section; none without a template."""
    if not types:
        return []
    items = not_exercised(types, policy, done)
    lines = [
        "## Not exercised",
        "",
        "What the CloudFormation registry schemas' update and delete handlers may call for the "
        "template's resource types, that the policy does not hold and no run needed. An update "
        "discover did not make (a property change, a replaced resource) may need it: listed for "
        "review, never granted.",
        "",
        "- Update: "
        + (
            "an update passed, changing only what discover's update changes (for the Serverless "
            "CLI, new artifacts: the functions' code and versions); no other property."
            if done.updated
            else "no update phase passed: no update handler was exercised."
        ),
        "- Delete: "
        + (
            "the remove phase deleted every resource, so the delete handlers were exercised."
            if done.removed
            else "no remove phase passed: no delete handler was exercised."
        ),
    ]
    missing = without_schema(types)
    if missing:
        lines.append(f"- No registry schema: {', '.join(md_code(t) for t in missing)}.")
    if not items:
        lines += ["", "Nothing: the policy holds every permission these handlers list."]
        return lines
    lines += [
        "",
        "| Resource type | Resources | Handler | Not in the policy |",
        "| --- | --- | --- | --- |",
    ]
    for item in items:
        ids = ", ".join(md_code(i, in_table=True) for i in item.logical_ids)
        actions = ", ".join(md_code(a, in_table=True) for a in item.actions)
        lines.append(
            f"| {md_code(item.resource_type, in_table=True)} | {ids} | "
            f"{md_text(item.handler.value)} | {actions} |"
        )
    return lines


def template_of(service_dir: Path, template: Path | None = None) -> Mapping[str, Any] | None:
    """The template the run deployed: ``--template``, else the one the CLI left packaged."""
    if template is not None:
        import json

        try:
            data = json.loads(template.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None
    return read_packaged_template(service_dir)
