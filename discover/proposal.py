"""``--propose``: discover never writes IAM; it proposes, someone else's pipeline applies.

A ``ProposingSandbox`` stands in for the sandbox in the loop. Where the loop would put a
policy on the role, it reads the role's own policies instead (every inline and attached one:
in this mode the policy lives wherever the IaC pipeline puts it) and, when they do not hold
every grant of the policy yet, writes the proposal into the state folder:

- ``proposed.json`` (IAM JSON) and, with ``--format``, ``proposed.tf`` / ``proposed.yml``;
- ``proposed.diff``: what the proposal adds to what the role has now (``discover.diff``);
- ``proposed.md``: the evidence of every new grant.

Then it waits: on a terminal until the person says it is applied (it reads the role again,
and says what is still missing); without one it raises ``ProposalPendingError`` (exit code 5), and
``discover --propose --resume`` goes on once the pipeline has applied it. Reading the role
again before that next run is the same check: a proposal not (or only partly) applied is
said so, grant by grant.
"""

from __future__ import annotations

import fnmatch
import json
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from discover.approval import printable
from discover.diff import diff_policies, render_diff
from discover.errors import DiscoverError
from discover.formats import Format, render
from discover.known_messages import Target
from discover.policy import Grant, PolicyDocument, PolicyError, resource_matches
from discover.ports import AdminSandbox, EventSink
from discover.run_events import (
    AppliedOutOfBand,
    Event,
    Evidence,
    PolicyApplied,
    ProposalMissing,
    Proposed,
    RunStarted,
)

PENDING_EXIT_CODE = 5
_SUFFIX = {Format.TERRAFORM: "tf", Format.CLOUDFORMATION: "yml", Format.SERVERLESS: "yml"}


class ProposalPendingError(DiscoverError):
    """The proposal is written and not applied yet: apply it, then ``--resume``."""

    exit_code = PENDING_EXIT_CODE


@dataclass(frozen=True, slots=True)
class Allow:
    """One (action pattern, resource pattern, condition) an Allow statement of the role grants."""

    action: str
    resource: str
    condition: str  # the statement's Condition block as canonical JSON ("" when none)
    source: str  # the policy it is in


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def allows_of(document: Mapping[str, Any], source: str) -> list[Allow]:
    """Every Allow of a policy document, as written (wildcards kept; Deny and Not* ignored:
    they never make a grant of the proposal hold)."""
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    found = []
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement or "NotResource" in statement:
            continue
        condition = statement.get("Condition")
        block = json.dumps(condition, sort_keys=True) if condition else ""
        for action in _as_list(statement.get("Action")):
            for resource in _as_list(statement.get("Resource")):
                found.append(Allow(action, resource, block, source))
    return found


def _condition_json(grant: Grant) -> str:
    if not grant.condition:
        return ""
    from discover.policy import condition_block

    return json.dumps(condition_block(grant.condition), sort_keys=True)


def holder(grant: Grant, allows: Sequence[Allow]) -> Allow | None:
    """The role's Allow that grants ``grant`` (no condition, or the very same one)."""
    wanted = _condition_json(grant)
    for allow in allows:
        if allow.condition and allow.condition != wanted:
            continue
        if not fnmatch.fnmatchcase(grant.action.lower(), allow.action.lower()):
            continue
        if allow.resource == grant.resource or resource_matches(allow.resource, grant.resource):
            return allow
    return None


@dataclass(frozen=True, slots=True)
class RoleCheck:
    """What the role holds of a proposal."""

    total: int
    missing: tuple[Grant, ...]
    sources: tuple[str, ...]  # the policies the held grants are in

    @property
    def applied(self) -> bool:
        return not self.missing


def describe_grant(grant: Grant) -> str:
    text = f"{grant.action} on {printable(grant.resource)}"
    for operator, key, values in grant.condition:
        text += f" if {operator} {key} {printable(' | '.join(values))}"
    return text


@dataclass
class ProposingSandbox:
    """The loop's sandbox in ``--propose`` mode: reads the role, writes proposals, never IAM."""

    inner: AdminSandbox
    state_dir: Path
    events: EventSink
    fmt: Format = Format.JSON
    name: str = "discover"
    wait: Callable[[str], str] | None = None  # asks the person at the terminal; None: exit
    say: Callable[[str], None] = field(default=lambda text: None)
    _iteration: int = 0
    _proposed: PolicyDocument | None = None

    def __post_init__(self) -> None:
        # Resumed: the last run of the journal is the run the proposal followed.
        from discover.journal import read_events

        journal = self.state_dir / "journal.jsonl"
        if journal.exists():
            runs = [e.iteration for e in read_events(journal) if isinstance(e, RunStarted)]
            self._iteration = max(runs, default=0)

    # --- the loop's port, read-only on IAM -----------------------------------------------

    @property
    def role_arn(self) -> str:
        return self.inner.role_arn

    def prepare(self) -> None:
        self.inner.prepare()

    def stack_events_since(self, since: datetime) -> tuple[dict[str, object], ...]:
        return self.inner.stack_events_since(since)

    def locate(self, target: Target) -> str | None:
        return self.inner.locate(target)

    def decode_authorization_message(self, encoded: str) -> str | None:
        return self.inner.decode_authorization_message(encoded)

    def change_set_reasons_since(self, since: datetime) -> tuple[str, ...]:
        return self.inner.change_set_reasons_since(since)

    # --- the stack, for the steps after the create (CloudFormation only, never IAM) ---------

    def deployed(self) -> bool:
        return self.inner.deployed()

    def delete_stack(self) -> None:
        self.inner.delete_stack()

    # --- the proposal ---------------------------------------------------------------------

    def role_allows(self) -> list[Allow]:
        """Every Allow on the role now: its inline policies and its attached managed ones."""
        backup = self.inner.backup()
        allows = []
        for name, document in backup.get("inline", {}).items():
            allows += allows_of(document, f"inline policy {name}")
        for arn in backup.get("attached", []):
            document = self._managed_document(arn)
            if document is not None:
                allows += allows_of(document, f"managed policy {arn}")
        return allows

    def _managed_document(self, arn: str) -> Mapping[str, Any] | None:
        """An attached managed policy's default version (read with the admin's IAM client)."""
        iam = getattr(self.inner, "iam", None)
        if iam is None:
            return None
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"][
            "Document"
        ]
        if isinstance(document, str):
            document = json.loads(urllib.parse.unquote(document))
        return document if isinstance(document, Mapping) else None

    def check(self, policy: PolicyDocument) -> RoleCheck:
        allows = self.role_allows()
        grants = sorted(policy.effective().grants)
        missing, sources = [], set()
        for grant in grants:
            found = holder(grant, allows)
            if found is None:
                missing.append(grant)
            else:
                sources.add(found.source)
        return RoleCheck(len(grants), tuple(missing), tuple(sorted(sources)))

    def current_policy(self) -> PolicyDocument:
        """What the role grants now, as far as it reads back exactly (for the diff)."""
        grants: list[Grant] = []
        for allow in self.role_allows():
            try:
                statement: dict[str, Any] = {
                    "Effect": "Allow",
                    "Action": allow.action,
                    "Resource": allow.resource,
                }
                if allow.condition:
                    statement["Condition"] = json.loads(allow.condition)
                grants += PolicyDocument.from_dict({"Statement": [statement]}).grants
            except PolicyError:
                continue  # a wildcard action: holds grants, but is not one itself
        return PolicyDocument(frozenset(grants))

    def apply_policy(self, policy: PolicyDocument) -> None:
        """Not a write: see whether the role holds ``policy``; if not, propose it and wait."""
        check = self.check(policy)
        pending = self._pending_from_journal(policy)
        if check.applied:
            if pending and check.total:
                self._applied(check)
            return
        if pending and not self._proposed:
            self._missing(check)  # a proposal of an earlier run, not (or partly) applied
        else:
            self._write(policy, check)
        self._proposed = policy
        self._wait_for(policy, check)

    def _pending_from_journal(self, policy: PolicyDocument) -> bool:
        written = self.state_dir / "proposed.json"
        if self._proposed is not None:
            return True
        if not written.exists():
            return False
        try:
            return PolicyDocument.from_dict(json.loads(written.read_text("utf-8"))) == policy
        except (ValueError, PolicyError):
            return False

    def emit(self, event: Event) -> None:
        """An ``EventSink`` too: it learns which run it proposes after."""
        if isinstance(event, RunStarted | PolicyApplied):
            self._iteration = event.iteration

    def _write(self, policy: PolicyDocument, check: RoleCheck) -> None:
        state = self.state_dir
        state.mkdir(parents=True, exist_ok=True)
        path = state / "proposed.json"
        path.write_text(policy.render_json(), encoding="utf-8")
        written = [str(path)]
        if self.fmt is not Format.JSON:
            other = state / f"proposed.{_SUFFIX[self.fmt]}"
            other.write_text(render(policy, self.fmt, name=self.name), encoding="utf-8")
            written.append(str(other))
        diff = diff_policies(self.current_policy(), policy)
        (state / "proposed.diff").write_text(
            render_diff(diff, "the role now", "proposed"), encoding="utf-8"
        )
        evidence = self._evidence(policy)
        (state / "proposed.md").write_text(_evidence_text(evidence, check), encoding="utf-8")
        self.events.emit(Proposed(self._iteration, policy, tuple(evidence), str(path)))
        self.say(
            f"discover: proposed {len(check.missing)} new grant(s) of {check.total}: "
            f"{', '.join(written)} (diff: {state / 'proposed.diff'}, evidence: "
            f"{state / 'proposed.md'})"
        )

    def _evidence(self, policy: PolicyDocument) -> list[Evidence]:
        from discover.journal import read_events
        from discover.run_events import evidence_of

        journal = self.state_dir / "journal.jsonl"
        known = evidence_of(read_events(journal)) if journal.exists() else ()
        return [e for e in known if e.grant in policy.grants]

    def _missing(self, check: RoleCheck) -> None:
        self.events.emit(
            ProposalMissing(
                self._iteration, tuple(describe_grant(g) for g in check.missing), check.total
            )
        )
        how = "not applied" if len(check.missing) == check.total else "only partly applied"
        self.say(
            f"discover: the proposal is {how}: the role lacks {len(check.missing)} of "
            f"{check.total} grant(s):"
        )
        for grant in check.missing:
            self.say(f"  - {describe_grant(grant)}")

    def _applied(self, check: RoleCheck) -> None:
        by = ", ".join(check.sources) or "the role's policies"
        self.events.emit(AppliedOutOfBand(self._iteration, by))
        self.say(f"discover: the proposal is in effect (found in {by}); deploying again")
        self._proposed = None

    def _wait_for(self, policy: PolicyDocument, check: RoleCheck) -> None:
        while True:
            if self.wait is None:
                msg = (
                    f"proposal written to {self.state_dir / 'proposed.json'}: the role lacks "
                    f"{len(check.missing)} of {check.total} grant(s)"
                )
                raise ProposalPendingError(
                    msg,
                    tip="Apply it through your pipeline, then run discover --propose --resume.",
                )
            answer = self.wait(
                "discover: apply the proposal, then press Enter (q to stop; --resume goes on) "
            )
            if answer.strip().lower() in {"q", "quit"}:
                self.wait = None
                continue
            check = self.check(policy)
            if check.applied:
                self._applied(check)
                return
            self._missing(check)


def _evidence_text(evidence: Sequence[Evidence], check: RoleCheck) -> str:
    missing = set(check.missing)
    lines = ["# Proposed grants and their evidence", ""]
    if not evidence:
        lines.append("No new evidence in this proposal.")
    for item in evidence:
        flag = "new" if item.grant in missing else "held"
        lines.append(f"- ({flag}) `{describe_grant(item.grant)}`")
        denial = item.denial
        lines.append(
            f"  - denied after run {item.iteration} in {printable(denial.source)}: "
            f"{printable((denial.message or '')[:300])}"
        )
        if item.note:
            lines.append(f"  - scoping: {printable(item.note)}")
    return "\n".join(lines) + "\n"


__all__ = [
    "PENDING_EXIT_CODE",
    "Allow",
    "ProposalPendingError",
    "ProposingSandbox",
    "RoleCheck",
    "allows_of",
    "holder",
]
