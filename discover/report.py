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
from discover.loop import Evidence, rebuild_evidence
from discover.policy import Grant, PolicyDocument, check_quota, covers
from discover.risks import md_code, md_text, render_flags, review_flags

__all__ = ["render_report", "review_flags"]

_POLICY_EVENTS = frozenset({"granted", "policy_applied"})


def _fenced(text: str, info: str = "") -> list[str]:
    """A fenced code block that no run of backticks inside ``text`` can close."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    body = "".join(c for c in text if c in "\n\t" or c.isprintable()).rstrip("\n")
    return [f"{fence}{info}", *body.split("\n"), fence]


def _source(source: str) -> str:
    if source == "output":
        return "the deploy's output"
    if source == "stack-event":
        return "a CloudFormation stack event"
    if source.startswith("cli-message"):
        call = source.removeprefix("cli-message").strip(" ()")
        return f"a CLI message discover recognised ({md_text(call)})"
    return md_text(source)


def _policy(records: Sequence[Mapping[str, Any]]) -> PolicyDocument:
    applied = [r for r in records if r.get("event") in _POLICY_EVENTS and "policy" in r]
    return PolicyDocument.from_dict(applied[-1]["policy"]) if applied else PolicyDocument()


def _header(records: Sequence[Mapping[str, Any]], policy: PolicyDocument) -> list[str]:
    started = next((r for r in records if r.get("event") == "started"), {})
    stopped = next((r for r in reversed(records) if r.get("event") == "stopped"), None)
    lines = [f"# Permissions review: {md_code(str(started.get('stack_name', '?')))}", ""]
    if stopped is None:
        lines.append("**Outcome:** the run did not finish (interrupted, or still running).")
    else:
        reason, detail = str(stopped.get("reason")), str(stopped.get("detail", ""))
        lines.append(f"**Outcome:** {md_text(reason)} ({md_text(detail)}).")
    command = " ".join(str(part) for part in started.get("command", []))
    lines += [
        "",
        f"- Sandbox role: {md_code(str(started.get('role_arn', '?')))}",
        f"- Inline policy: {md_code(str(started.get('policy_name', '?')))}",
        f"- Deploy command: {md_code(command or '?')}",
        f"- Region: {md_code(str(started.get('region', '?')))}",
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
                f"- Granted after run {item.iteration}, denied in {_source(item.denial.source)}:"
            )
            lines += ["", *_fenced(item.denial.message, "text"), ""]
        if lines[-1] == "":
            lines.pop()
    return lines


def _runs_section(records: Sequence[Mapping[str, Any]]) -> list[str]:
    by_run: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        if "iteration" in record and record.get("event") != "policy_applied":
            by_run[int(record["iteration"])].append(record)
    stopped = next((r for r in reversed(records) if r.get("event") == "stopped"), None)
    finished = [r for r in records if r.get("event") == "run_finished"]
    lines = [
        "## Runs",
        "",
        "| Run | Duration (s) | Exit code | Outcome |",
        "| --- | --- | --- | --- |",
    ]
    total = 0.0
    for record in finished:
        number = int(record["iteration"])
        duration = float(record.get("duration_s") or 0.0)
        total += duration
        code = "-" if record.get("timed_out") else str(record.get("returncode"))
        outcome = _run_outcome(
            record, by_run[number], is_last=record is finished[-1], stopped=stopped
        )
        lines.append(f"| {number} | {duration:.1f} | {code} | {outcome} |")
    lines += ["", f"{len(finished)} run(s), {total:.1f} s of deploys in all."]
    return lines


def _run_outcome(
    finished: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    *,
    is_last: bool,
    stopped: Mapping[str, Any] | None,
) -> str:
    if finished.get("timed_out"):
        return "timed out"
    if finished.get("returncode") == 0:
        return "deployed"
    kinds = {str(e.get("event")): e for e in events}
    denied = len(kinds.get("denials", {}).get("denials", []))
    parts = [f"denied {denied}" if denied else "failed without a denial"]
    if "granted" in kinds:
        actions = sorted({str(g["action"]) for g in kinds["granted"].get("grants", [])})
        parts.append("granted " + ", ".join(md_code(a, in_table=True) for a in actions))
    if "propagation_wait" in kinds:
        parts.append(f"waited {kinds['propagation_wait'].get('seconds')} s for IAM to propagate")
    if "session_expired" in kinds:
        parts.append("session expired, renewed")
    if is_last and stopped is not None and "granted" not in kinds:
        parts.append(f"stopped: {md_text(str(stopped.get('reason')))}")
    return "; ".join(parts)


def render_report(records: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown report for one journal."""
    policy = _policy(records)
    evidence = rebuild_evidence(records)
    flags = review_flags(policy, evidence)
    quota = check_quota(policy)
    lines = _header(records, policy)
    lines += ["", "## For the reviewer", ""]
    nothing = "- Nothing flagged: no escalation path, no wildcard, no IAM write."
    lines += render_flags(flags) or [nothing]
    lines += ["", *review_section(records, policy)]
    lines += ["", "## Size", "", quota.describe()]
    lines += ["", "## Policy", "", *_fenced(policy.render_json(), "json")]
    if len(quota.parts) > 1:
        for number, part in enumerate(quota.parts, start=1):
            lines += ["", f"Managed policy {number} of {len(quota.parts)} ({part.size():,}):", ""]
            lines += _fenced(part.render_json(), "json")
    lines += ["", *_evidence_section(policy, evidence)]
    lines += ["", *_runs_section(records)]
    return "\n".join(lines) + "\n"
