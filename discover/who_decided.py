"""The report's "Who decided" section: approvals, refusals, proposals and out-of-band applies.

Read from the journal's events only (as the rest of the report is), so ``discover report``
shows the same after the run.
"""

from __future__ import annotations

from collections.abc import Sequence

from discover.risks import md_code, md_text
from discover.run_events import (
    AppliedOutOfBand,
    Approved,
    Event,
    Evidence,
    ProposalMissing,
    Proposed,
    Refused,
)


def _grants(items: Sequence[Evidence]) -> str:
    return ", ".join(md_code(f"{e.grant.action} on {e.grant.resource}") for e in items)


def render_decisions(events: Sequence[Event]) -> list[str]:
    """Markdown lines, one per decision in order; empty when nobody was asked."""
    lines: list[str] = []
    for event in events:
        if isinstance(event, Approved):
            lines.append(
                f"- After run {event.iteration}, {md_text(event.by)} approved "
                f"({md_text(event.how)}): {_grants(event.grants)}"
            )
        elif isinstance(event, Refused):
            then = "went on without it" if event.go_on else "stopped the run"
            lines.append(
                f"- After run {event.iteration}, {md_text(event.by)} refused "
                f"{_grants(event.grants)} and {then}"
            )
        elif isinstance(event, Proposed):
            lines.append(
                f"- After run {event.iteration}, discover proposed "
                f"{len(event.policy.grants)} grant(s) in {md_code(event.path)} (it wrote "
                "nothing to IAM)"
            )
        elif isinstance(event, ProposalMissing):
            lines.append(
                f"- Before run {event.iteration + 1}, the role lacked {len(event.missing)} of "
                f"{event.total} proposed grant(s): " + ", ".join(md_code(m) for m in event.missing)
            )
        elif isinstance(event, AppliedOutOfBand):
            lines.append(
                f"- Before run {event.iteration + 1}, the proposal was found applied out of "
                f"band, in {md_text(event.by)}"
            )
    return ["## Who decided", "", *lines] if lines else []


__all__ = ["render_decisions"]
