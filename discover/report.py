"""The review report: the flags, the policy, the evidence for every permission, the runs.

Rendered from the journal alone, so ``discover report`` can re-render it at any time and the
report never says more than the run recorded. Everything that came from a deploy's output or
an AWS message is untrusted: it is shown verbatim only inside code blocks and spans sized so
it cannot close them, and escaped everywhere else.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from discover import iamdb
from discover.gate import review_section
from discover.not_exercised import exercised, template_types
from discover.not_exercised import render_section as render_not_exercised
from discover.policy import Grant, PolicyDocument, check_quota, covers
from discover.risks import md_code, md_text, render_flags, review_flags
from discover.run_events import (
    DenialsFound,
    Event,
    Evidence,
    Granted,
    PolicyApplied,
    PropagationWait,
    RunFinished,
    SessionRenewed,
    Stopped,
    evidence_of,
    first_start,
    last_policy,
    last_stop,
    step_of_runs,
)

__all__ = ["render_report", "review_flags"]


def _fenced(text: str, info: str = "") -> list[str]:
    """A fenced code block that no run of backticks inside ``text`` can close."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    body = "".join(c for c in text if c in "\n\t" or c.isprintable()).rstrip("\n")
    return [f"{fence}{info}", *body.split("\n"), fence]


# Evidence of the predicted strategy (discover.strategies.ProofKind), as the report says it.
_PROOFS = {
    "proof:used": "CloudTrail: the run used it",
    "proof:implied": "CloudTrail: a call the run made needs it",
    "proof:removal-tested": "a removal test: a run without it was denied it",
    "proof:unproven": "a prediction nothing proved (kept with --keep-predicted)",
}


def _source(source: str) -> str:
    if source == "output":
        return "the deploy's output"
    if source == "stack-event":
        return "a CloudFormation stack event"
    if source.startswith("proof:"):
        return _PROOFS.get(source, md_text(source))
    if source.startswith("cli-message"):
        call = source.removeprefix("cli-message").strip(" ()")
        return f"a CLI message discover recognised ({md_text(call)})"
    return md_text(source)


def _header(events: Sequence[Event], policy: PolicyDocument) -> list[str]:
    started = first_start(events)
    stopped = last_stop(events)
    stack = started.stack_name if started else "?"
    lines = [f"# Permissions review: {md_code(stack)}", ""]
    if stopped is None:
        lines.append("**Outcome:** the run did not finish (interrupted, or still running).")
    else:
        lines.append(f"**Outcome:** {md_text(stopped.reason.value)} ({md_text(stopped.detail)}).")
    command = " ".join(started.command) if started else ""
    lines += [
        "",
        f"- Sandbox role: {md_code(started.role_arn if started else '?')}",
        f"- Inline policy: {md_code(started.policy_name if started else '?')}",
        f"- Deploy command: {md_code(command or '?')}",
        f"- Region: {md_code(started.region if started else '?')}",
        f"- Permissions: {len(policy.grants)} grant(s) of {len(policy.actions)} action(s), "
        f"in {len(policy.statements())} statement(s)",
        f"- IAM data: {md_code(iamdb.data_version())}",
    ]
    return lines


def _evidence_for(grant: Grant, evidence: Sequence[Evidence]) -> list[Evidence]:
    """The denials behind ``grant``: its own, and those of the grants it came to cover."""
    return [
        e
        for e in evidence
        if e.grant == grant
        or (
            e.grant.action == grant.action
            and e.grant.condition == grant.condition
            and covers(grant.resource, e.grant.resource)
        )
    ]


def _evidence_section(policy: PolicyDocument, evidence: Sequence[Evidence]) -> list[str]:
    grants = sorted(policy.effective().grants)
    found = {grant: _evidence_for(grant, evidence) for grant in grants}
    lines = [
        "## Why each permission is there",
        "",
        "| # | Action | Resource | Run | Seen in |",
        "| --- | --- | --- | --- | --- |",
    ]
    for number, grant in enumerate(grants, start=1):
        items = found[grant]
        run = ", ".join(str(i) for i in sorted({e.iteration for e in items})) or "before"
        seen = "; ".join(sorted({_source(e.denial.source) for e in items}))
        lines.append(
            f"| {number} | {md_code(grant.action, in_table=True)} | "
            f"{md_code(grant.resource, in_table=True)} | {run} | "
            f"{seen or 'in the policy before this run'} |"
        )
    for number, grant in enumerate(grants, start=1):
        lines += ["", f"### {number}. {md_code(grant.action)}", ""]
        lines.append(f"- Resource: {md_code(grant.resource)}")
        for operator, key, values in grant.condition:
            condition = f"{operator} {key} = {' | '.join(values)}"
            lines.append(f"- Condition: {md_code(condition)}")
        if not found[grant]:
            lines.append("- No denial recorded in this journal: it was in the starting policy.")
        for item in found[grant]:
            if item.grant != grant:
                lines.append(f"- Earlier grant, now covered: {md_code(item.grant.resource)}")
            lines.append(f"- Scoping: {md_text(item.note)}")
            lines.append(
                f"- Granted after run {item.iteration}, "
                f"{'shown by' if item.denial.source.startswith('proof:') else 'denied in'} "
                f"{_source(item.denial.source)}:"
            )
            lines += ["", *_fenced(item.denial.message, "text"), ""]
        if lines[-1] == "":
            lines.pop()
    return lines


def _runs_section(events: Sequence[Event]) -> list[str]:
    by_run: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        number = getattr(event, "iteration", None)
        if number is not None and not isinstance(event, PolicyApplied):
            by_run[int(number)].append(event)
    stopped = last_stop(events)
    finished = [e for e in events if isinstance(e, RunFinished)]
    steps = step_of_runs(events)
    lines = [
        "## Runs",
        "",
        "| Run | Duration (s) | Exit code | Outcome |",
        "| --- | --- | --- | --- |",
    ]
    total = 0.0
    for event in finished:
        total += event.duration_s
        code = "-" if event.timed_out else str(event.returncode)
        outcome = run_outcome(
            event, by_run[event.iteration], is_last=event is finished[-1], stopped=stopped
        )
        step = steps.get(event.iteration)
        if step is not None:
            outcome = f"{md_text(step.step)}: {outcome}"
        lines.append(f"| {event.iteration} | {event.duration_s:.1f} | {code} | {outcome} |")
    lines += ["", f"{len(finished)} run(s), {total:.1f} s of deploys in all."]
    return lines


def run_outcome(
    finished: RunFinished,
    events: Sequence[Event],
    *,
    is_last: bool,
    stopped: Stopped | None,
) -> str:
    """One run's outcome in a few words (Markdown: actions in code spans)."""
    if finished.timed_out:
        return "timed out"
    if finished.returncode == 0:
        return "deployed"
    denials = [e for e in events if isinstance(e, DenialsFound)]
    granted = [e for e in events if isinstance(e, Granted)]
    waits = [e for e in events if isinstance(e, PropagationWait)]
    denied = len(denials[-1].denials) if denials else 0
    parts = [f"denied {denied}" if denied else "failed without a denial"]
    if granted:
        actions = sorted({g.grant.action for g in granted[-1].grants})
        parts.append("granted " + ", ".join(md_code(a, in_table=True) for a in actions))
    if waits:
        parts.append(f"waited {waits[-1].seconds} s for IAM to propagate")
    if any(isinstance(e, SessionRenewed) for e in events):
        parts.append("session expired, renewed")
    if is_last and stopped is not None and not granted:
        parts.append(f"stopped: {md_text(stopped.reason.value)}")
    return "; ".join(parts)


def _phases_section(events: Sequence[Event], evidence: Sequence[Evidence]) -> list[str]:
    """The actions each step of a phased run needed first (none for a journal without steps)."""
    steps = step_of_runs(events)
    if not steps:
        return []
    needed: dict[str, set[str]] = {}
    for step in steps.values():
        needed.setdefault(step.step, set())
    for item in evidence:
        during = steps.get(item.iteration)
        if during is not None:
            needed[during.step].add(item.grant.action)
    lines = ["## Permissions by phase", ""]
    for name, actions in needed.items():
        listed = ", ".join(md_code(a) for a in sorted(actions)) or "nothing new"
        lines.append(f"- {md_text(name)}: {listed}")
    return ["", *lines]


def render_report(events: Sequence[Event], template: Mapping[str, Any] | None = None) -> str:
    """The Markdown report for one journal's events.

    ``template`` (the one the run deployed): its types' update and delete handler permissions
    the run did not exercise, listed under "Not exercised" (``discover.not_exercised``).
    """
    policy = last_policy(events)
    evidence = evidence_of(events)
    flags = review_flags(policy, evidence)
    quota = check_quota(policy)
    lines = _header(events, policy)
    lines += ["", "## For the reviewer", ""]
    nothing = "- Nothing flagged: no escalation path, no wildcard, no IAM write."
    lines += render_flags(flags) or [nothing]
    lines += ["", *review_section(events, policy)]
    lines += ["", "## Size", "", quota.describe()]
    lines += ["", "## Policy", "", *_fenced(policy.render_json(), "json")]
    if len(quota.parts) > 1:
        for number, part in enumerate(quota.parts, start=1):
            lines += ["", f"Managed policy {number} of {len(quota.parts)} ({part.size():,}):", ""]
            lines += _fenced(part.render_json(), "json")
    lines += _phases_section(events, evidence)
    unexercised = render_not_exercised(template_types(template), policy, exercised(events))
    lines += ["", *unexercised] if unexercised else []
    lines += ["", *_evidence_section(policy, evidence)]
    from discover.who_decided import render_decisions

    decisions = render_decisions(events)
    lines += ["", *decisions] if decisions else []
    lines += _service_role_section(events)
    lines += ["", *_runs_section(events)]
    return "\n".join(lines) + "\n"


def _service_role_section(events: Sequence[Event]) -> list[str]:
    """The CloudFormation service role's policy and its evidence (``service_role``)."""
    from discover.run_events import ServiceRoleGranted

    granted = [e for e in events if isinstance(e, ServiceRoleGranted)]
    if not granted:
        return []
    policy = granted[-1].policy
    evidence = tuple(item for e in granted for item in e.grants)
    why = _evidence_section(policy, evidence)
    why = [
        "### Why each permission of the service role is there"
        if line.startswith("## ")
        else f"#{line}"
        if line.startswith("### ")
        else line
        for line in why
    ]
    return [
        "",
        "## The CloudFormation service role's policy",
        "",
        f"CloudFormation deployed with {md_code(granted[-1].role_arn)}; these are the calls its "
        "resource handlers made as that role (the denials name its session), written to "
        "`service-role-policy.json`. The policy above is the caller's.",
        "",
        *_fenced(policy.render_json(), "json"),
        "",
        *why,
    ]
