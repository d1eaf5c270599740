"""The review report: the policy, the evidence for every permission, the runs, the flags.

Rendered from the journal alone, so ``discover report`` can re-render it at any time and the
report never says more than the run recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from discover import iamdb
from discover.loop import Evidence, rebuild_evidence
from discover.policy import PolicyDocument

# Combinations a reviewer must look at: each lets the role gain more than it is given.
# https://bishopfox.com/blog/privilege-escalation-in-aws (PassRole + compute, policy writes)
ESCALATION_COMBINATIONS: tuple[tuple[frozenset[str], str], ...] = (
    (
        frozenset({"iam:PassRole", "lambda:CreateFunction"}),
        "can create a function that runs as any role it may pass",
    ),
    (
        frozenset({"iam:PassRole", "cloudformation:CreateStack"}),
        "can create a stack that runs as any role it may pass",
    ),
    (frozenset({"iam:PutRolePolicy"}), "can write inline policies on the roles it may name"),
    (frozenset({"iam:AttachRolePolicy"}), "can attach managed policies to the roles it may name"),
    (frozenset({"iam:CreateRole", "iam:PassRole"}), "can create a role and hand it to a service"),
)


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell (deploy output is untrusted)."""
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def review_flags(policy: PolicyDocument, evidence: Iterable[Evidence]) -> list[str]:
    """What a reviewer must look at in ``policy``, one sentence each."""
    flags: list[str] = []
    actions = set(policy.actions)
    for combination, risk in ESCALATION_COMBINATIONS:
        if combination <= actions:
            scoped = sorted(
                f"{g.action} on {g.resource}" for g in policy.grants if g.action in combination
            )
            names = " + ".join(sorted(combination))
            flags.append(f"Privilege escalation: {names} {risk} ({'; '.join(scoped)}).")
    notes = {(e.grant.action, e.grant.resource): e.note for e in evidence}
    for grant in sorted(policy.grants):
        if grant.resource == "*":
            why = notes.get((grant.action, grant.resource), "no recorded reason")
            flags.append(f"`{grant.action}` on `*`: {why}.")
    iam_writes = sorted(
        {
            g.action
            for g in policy.grants
            if g.action.startswith("iam:")
            and _access_level(g.action) in {"Write", "Permissions management"}
        }
    )
    if iam_writes:
        flags.append(f"Write access to IAM: {', '.join(iam_writes)}.")
    return flags


def _access_level(action: str) -> str:
    return iamdb.access_level(iamdb.Action(action))


def render_report(records: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown report for one journal."""
    started = next((r for r in records if r["event"] == "started"), {})
    stopped = next((r for r in reversed(records) if r["event"] == "stopped"), None)
    policies = [r for r in records if "policy" in r and r["event"] in {"granted", "policy_applied"}]
    policy = PolicyDocument.from_dict(policies[-1]["policy"]) if policies else PolicyDocument()
    evidence = rebuild_evidence(records)
    lines = [f"# Permissions review: `{_md(str(started.get('stack_name', '?')))}`", ""]
    if stopped is None:
        lines += ["**Outcome:** the run did not finish (interrupted or still running).", ""]
    else:
        lines += [f"**Outcome:** {stopped['reason']} ({_md(str(stopped.get('detail', '')))}).", ""]
    lines += [
        f"- Sandbox role: `{started.get('role_arn', '?')}`",
        f"- Inline policy: `{started.get('policy_name', '?')}`",
        f"- Deploy command: `{_md(' '.join(started.get('command', [])))}`",
        f"- IAM data version: `{iamdb.data_version()}`",
        f"- Policy size: {policy.size()} of {10240} non-whitespace characters (role inline quota)",
        "",
        "## Policy",
        "",
        "```json",
        policy.render_json().rstrip(),
        "```",
        "",
        "## Why each permission is there",
        "",
        "| Action | Resource | Run | Seen in | Scoping | Message |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for item in sorted(evidence, key=lambda e: (e.grant.action, e.grant.resource)):
        lines.append(
            f"| `{item.grant.action}` | `{_md(item.grant.resource)}` | {item.iteration} | "
            f"{_md(item.denial.source)} | {_md(item.note)} | {_md(item.denial.message)[:400]} |"
        )
    lines += [
        "",
        "## Runs",
        "",
        "| Run | Duration (s) | Exit code | Denials | Granted |",
        "| --- | --- | --- | --- | --- |",
    ]
    denials_by_run = {
        int(r["iteration"]): len(r.get("denials", [])) for r in records if r["event"] == "denials"
    }
    grants_by_run = {
        int(r["iteration"]): len(r.get("grants", [])) for r in records if r["event"] == "granted"
    }
    for record in records:
        if record["event"] != "run_finished":
            continue
        number = int(record["iteration"])
        code = "timed out" if record.get("timed_out") else record.get("returncode")
        lines.append(
            f"| {number} | {record.get('duration_s')} | {code} | "
            f"{denials_by_run.get(number, 0)} | {grants_by_run.get(number, 0)} |"
        )
    flags = review_flags(policy, evidence)
    lines += ["", "## For the reviewer", ""]
    lines += [f"- {flag}" for flag in flags] or ["- Nothing flagged."]
    return "\n".join(lines) + "\n"
