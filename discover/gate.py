"""The grant gate: the grant decision applied to a run's planned grants, and its record.

Between planning a batch of grants and applying it, the gate narrows ``*`` resources to the
template's resources, attributes each grant's denial (``ownership``), decides it
(``decision``) against the fence of the moment (the packaged template appears in the service
folder after the first run), and journals the fence and every verdict; the review report
renders them (``review_section``). It also recognises discover's own inline policy: the
marker is the ``Sid`` (each statement's is a digest of its content), so a document discover
wrote renders back to itself and any other does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from discover.decision import Decision, Rules, Verdict, decide, refine, shown
from discover.denials import Denial
from discover.errors import DiscoverError
from discover.fence import Fence, build_fence, read_packaged_template
from discover.iamdb import Action
from discover.ownership import Owner, attribute
from discover.policy import Grant, PolicyDocument, PolicyError
from discover.risks import md_code, md_text
from discover.run_events import Event, FenceDrawn, GrantsDecided


class PlannedGrant(Protocol):
    """A grant the loop planned, with the denial it answers (the loop's ``Evidence``)."""

    @property
    def grant(self) -> Grant: ...

    @property
    def denial(self) -> Denial: ...

    @property
    def note(self) -> str: ...


T = TypeVar("T", bound=PlannedGrant)


class NotOursError(DiscoverError):
    """The role holds an inline policy of discover's name that discover did not write."""

    exit_code = 2


def is_discover_policy(document: object) -> bool:
    """True when ``document`` is exactly what discover renders for its grants (the marker)."""
    try:
        return PolicyDocument.from_dict(document).to_dict() == document
    except (PolicyError, TypeError, KeyError, ValueError, AttributeError):
        return False


def check_own_policy(document: object | None, *, policy_name: str, role_arn: str) -> None:
    """Refuse to overwrite or delete an inline policy ``policy_name`` discover did not write."""
    if document is None or is_discover_policy(document):
        return
    msg = (
        f"{role_arn} already has an inline policy {policy_name!r} that discover did not write;"
        " discover never deletes or overwrites it"
    )
    raise NotOursError(msg, tip="Pass --policy-name with another name, or remove that policy.")


@dataclass(frozen=True, slots=True)
class FenceInputs:
    """What the fence is built from; the template is read afresh each time (plain data)."""

    stack_name: str
    service: str | None
    stage: str
    region: str
    account: str
    service_dir: Path
    deployment_bucket: str | None = None
    template: Callable[[Path], Mapping[str, Any] | None] = read_packaged_template
    managed_stacks: tuple[str, ...] = ()

    def build(self) -> Fence:
        return build_fence(
            stack_name=self.stack_name,
            service=self.service,
            stage=self.stage,
            region=self.region,
            account=self.account,
            template=self.template(self.service_dir),
            deployment_bucket=self.deployment_bucket,
            managed_stacks=self.managed_stacks,
        )


@dataclass(slots=True)
class Gate:
    """Decides each batch of planned grants; records the fence and the verdicts."""

    fence_inputs: FenceInputs
    role_arn: str
    session: str | None
    role_policies: frozenset[str] = frozenset()
    high_risk: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    allow_accounts: frozenset[str] = frozenset()
    yes: bool = False
    record: Callable[[Event], None] = lambda event: None
    service_session: str | None = None  # the CloudFormation service role's (service_role)
    service_role_arn: str | None = None
    _last_fence: list[str] = field(default_factory=list)

    def rules(self) -> Rules:
        fence = self.fence_inputs.build()
        described = fence.describe()
        if described != self._last_fence:
            self._last_fence = described
            self.record(FenceDrawn(tuple(described)))
        return Rules(
            role_arn=self.role_arn,
            fence=fence,
            role_policies=self.role_policies,
            high_risk=self.high_risk,
            allow=self.allow,
            allow_accounts=self.allow_accounts,
            yes=self.yes,
            service_role_arn=self.service_role_arn,
        )

    def refine(self, planned: Sequence[T], policy: PolicyDocument) -> list[T]:
        """Each ``*`` grant narrowed to the template's resources, when it names them."""
        fence = self.fence_inputs.build()
        out: list[T] = []
        for item in planned:
            narrowed = refine(item.grant, fence)
            if narrowed == (item.grant,):
                out.append(item)
                continue
            note = "derived from the template: the denial named no resource"
            for grant in narrowed:
                if grant not in policy.grants:
                    out.append(replace(item, grant=grant, note=note))  # type: ignore[type-var]
        return out

    def owner(self, denial: Denial) -> Owner:
        owner = attribute(denial, self.session, self.service_session)
        if owner is Owner.FOREIGN and denial.principal is not None:
            # The loop lets a named principal's denial through only when it is exactly the
            # session that run used (``loop.plan_grants``, with the ARN STS returned); runs
            # of the predicted strategy each have their own, which ``self.session`` is not.
            return Owner.SESSION
        return owner

    def decide(self, planned: Sequence[T]) -> list[tuple[T, Decision]]:
        """The verdict on each planned grant, journaled."""
        rules = self.rules()
        decided = [(item, decide(item.grant, rules, self.owner(item.denial))) for item in planned]
        self.record(GrantsDecided(tuple(_record(i, d, self) for i, d in decided)))
        return decided

    def decide_policy(self, policy: PolicyDocument) -> list[Decision]:
        """The verdict on each grant of a policy read back (``--resume``), journaled."""
        rules = self.rules()
        decided = [decide(grant, rules, Owner.SESSION) for grant in sorted(policy.grants)]
        self.record(
            GrantsDecided(tuple(_decision_record(d, Owner.SESSION, "resume") for d in decided))
        )
        return decided


def _record(item: PlannedGrant, decision: Decision, gate: Gate) -> dict[str, object]:
    return _decision_record(decision, gate.owner(item.denial), item.denial.source)


def _decision_record(decision: Decision, owner: Owner, source: str) -> dict[str, object]:
    return {
        "action": decision.grant.action,
        "resource": decision.grant.resource,
        "verdict": decision.verdict.value,
        "reasons": list(decision.reasons),
        "approved_by": decision.approved_by,
        "owner": owner.value,
        "source": source,
    }


def prompt_line(decision: Decision) -> str:
    """The confirmation question: nothing in it printed raw."""
    return (
        f"discover: grant {shown(decision.grant.action)} on {shown(decision.grant.resource)}? "
        f"({shown(decision.reason)}) [y/N] "
    )


def refusal_line(decision: Decision) -> str:
    return (
        f"discover: refused: {shown(decision.grant.action)} on "
        f"{shown(decision.grant.resource)}: {shown(decision.reason)}"
    )


# --- the review report's section ----------------------------------------------------------


def review_section(events: Sequence[Event], policy: PolicyDocument) -> list[str]:
    """The fence, every IAM write and ``sts:AssumeRole``, and what was refused or confirmed."""
    lines = ["## Safety", ""]
    fences = [e for e in events if isinstance(e, FenceDrawn)]
    if fences:
        lines.append("The service's fence (grants inside it were made without asking):")
        lines.append("")
        lines += [f"- {md_text(line)}" for line in fences[-1].lines]
    else:
        lines.append("No fence was recorded (a journal from before the grant decision).")
    iam_writes = sorted(g for g in policy.grants if _is_iam_write(g.action))
    assume = sorted(g for g in policy.grants if g.action.startswith("sts:AssumeRole"))
    lines += ["", "Writes to IAM and `sts:AssumeRole` in the policy:", ""]
    lines += [f"- {md_code(g.action)} on {md_code(g.resource)}" for g in iam_writes + assume] or [
        "- none"
    ]
    decisions = [d for e in events if isinstance(e, GrantsDecided) for d in e.decisions]
    notable = [d for d in decisions if d.get("verdict") != "allow" or d.get("approved_by")]
    lines += ["", "Grants refused or confirmed:", ""]
    for d in notable:
        how = d.get("approved_by") or d.get("verdict")
        reasons = "; ".join(str(r) for r in d.get("reasons", []))
        lines.append(
            f"- {md_text(str(how))}: {md_code(str(d.get('action')))} on "
            f"{md_code(str(d.get('resource')))} ({md_text(reasons)})"
        )
    if not notable:
        lines.append("- none: every grant was inside the fence")
    return lines


def _is_iam_write(action: str) -> bool:
    from discover.decision import is_write

    return action.startswith("iam:") and is_write(Action(action))


def decisions_of(verdict: Verdict, decided: Iterable[tuple[Any, Decision]]) -> list[Any]:
    """The planned grants whose decision is ``verdict``."""
    return [item for item, decision in decided if decision.verdict is verdict]
