"""The log sink: one structured log line per run event, for CI and other non-terminals.

The same typed events the journal writes, rendered as structlog key/value lines on stderr
(JSON with ``--log-format json``): the event's kind is the log event name, its fields are
summarised so a line stays one line (a policy becomes its action count, a denial its action,
resource and source; the deploy's output is never logged, it is in the run's log file).
"""

from __future__ import annotations

from typing import Any

from discover.policy import PolicyDocument
from discover.run_events import (
    Backup,
    DenialsFound,
    Event,
    Granted,
    GrantPlanned,
    Stopped,
    encode,
)


def _denial(raw: dict[str, Any]) -> dict[str, Any]:
    keep = ("action", "resource", "reason", "source", "logical_id")
    return {k: raw[k] for k in keep if raw.get(k) is not None}


def log_fields(event: Event) -> dict[str, Any]:
    """The event's fields, summarised for one log line."""
    fields: dict[str, Any] = {
        k: v for k, v in encode(event).items() if k not in {"event", "policy"}
    }
    policy = getattr(event, "policy", None)
    if isinstance(policy, PolicyDocument):
        fields["actions"] = len(policy.actions)
    if isinstance(event, DenialsFound | Stopped):
        key = "denials" if isinstance(event, DenialsFound) else "blocking"
        raw: list[dict[str, Any]] = fields.pop(key, None) or []
        if raw:
            fields[key] = [_denial(d) for d in raw]
    if isinstance(event, Granted | GrantPlanned):
        fields["grants"] = [
            {"action": e.grant.action, "resource": e.grant.resource} for e in event.grants
        ]
    if isinstance(event, Backup):
        fields["backup"] = {
            "inline": sorted(event.backup.get("inline", {})),
            "attached": list(event.backup.get("attached", [])),
        }
    return fields


class LogSink:
    """An ``EventSink`` writing each event as one structlog line (a warning for a bad stop)."""

    def __init__(self, logger: Any) -> None:
        self._log = logger

    def emit(self, event: Event) -> None:
        if isinstance(event, GrantPlanned):
            return  # the Granted line right after says the same; the journal keeps both
        fields = log_fields(event)
        if isinstance(event, Stopped) and event.reason.exit_code != 0:
            self._log.warning(event.kind, **fields)
        else:
            self._log.info(event.kind, **fields)
