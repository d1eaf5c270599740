"""The discovery loop: deploy, read the denials, grant, repeat, until it converges or must stop.

Pure orchestration over three small interfaces: a ``Deployer`` (runs the deploy command with a
given session), a ``Sandbox`` (the role's policy, the stack, its events), and a ``Sessions``
(temporary credentials). It never imports boto3 or subprocess, so it is tested with fakes and
drives real AWS and the local sandbox alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from discover.credentials import Credentials
from discover.denials import Denial, Reason, dedupe, denial_from_decoded, iter_denials
from discover.events import denials_from_events
from discover.iamdb import Action
from discover.journal import Journal
from discover.known_messages import KnownMessage, Target, find_known_messages
from discover.policy import Grant, PolicyDocument
from discover.runner import DeployResult
from discover.scoping import scope


class StopReason(str, Enum):
    SUCCEEDED = "succeeded"
    LIMIT = "limit"
    NO_PROGRESS = "no-progress"
    UNFIXABLE = "unfixable"
    REFUSED = "refused"  # a high-risk grant was not confirmed
    UNRESOLVED = "unresolved"  # denied, but the text does not say what to grant
    DEPLOY_FAILED = "deploy-failed"
    INTERRUPTED = "interrupted"

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]


_EXIT_CODES = {
    StopReason.SUCCEEDED: 0,
    StopReason.LIMIT: 1,
    StopReason.NO_PROGRESS: 1,
    StopReason.UNRESOLVED: 1,
    StopReason.UNFIXABLE: 3,
    StopReason.REFUSED: 3,
    StopReason.DEPLOY_FAILED: 4,
    StopReason.INTERRUPTED: 130,
}


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a grant is in the policy: the denial it answers, and how its resource was scoped."""

    grant: Grant
    denial: Denial
    iteration: int
    note: str


@dataclass(frozen=True, slots=True)
class Iteration:
    number: int
    result: DeployResult
    denials: tuple[Denial, ...]
    granted: tuple[Evidence, ...]
    policy: PolicyDocument


@dataclass(frozen=True, slots=True)
class Outcome:
    iterations: tuple[Iteration, ...]
    policy: PolicyDocument
    reason: StopReason
    detail: str = ""
    blocking: tuple[Denial, ...] = ()  # the denials that stopped the loop, if any

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        return tuple(e for it in self.iterations for e in it.granted)


class Deployer(Protocol):
    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult: ...


class Sandbox(Protocol):
    role_arn: str

    def prepare(self) -> None:
        """Make the next deploy possible: delete the configured stack if a state blocks it."""

    def apply_policy(self, policy: PolicyDocument) -> None:
        """Put ``policy`` as discover's inline policy on the sandbox role."""

    def stack_events_since(self, since: datetime) -> tuple[dict[str, object], ...]:
        """The configured stack's events at or after ``since`` (empty if no stack)."""

    def locate(self, target: Target) -> str | None:
        """The ARN of a resource a CLI message refers to (the deployment bucket, ...)."""

    def decode_authorization_message(self, encoded: str) -> str | None:
        """``sts:DecodeAuthorizationMessage`` as the admin; None when that is not permitted."""

    def change_set_reasons_since(self, since: datetime) -> tuple[str, ...]:
        """The ``StatusReason`` of the change sets that failed since ``since``."""


class Sessions(Protocol):
    def current(self) -> Credentials: ...

    def renew(self) -> Credentials: ...


@dataclass(frozen=True, slots=True)
class LoopSettings:
    max_iterations: int = 20
    propagation_waits_s: tuple[float, ...] = (5.0, 15.0, 45.0)
    initial_policy: PolicyDocument = field(default_factory=PolicyDocument)
    first_iteration: int = 1


def owns_principal(role_arn: str, principal: str | None) -> bool:
    """True when ``principal`` is the sandbox role or one of its sessions (None: this run's)."""
    if principal is None:
        return True
    parts = role_arn.split(":", 5)
    if len(parts) < 6:
        return False
    account, role_path = parts[4], parts[5]
    role_name = role_path.rsplit("/", 1)[-1]
    if principal == role_arn:
        return True
    prefix = f"arn:{parts[1]}:sts::{account}:assumed-role/{role_name}/"
    return principal.startswith(prefix)


def _is_expired_token(result: DeployResult) -> bool:
    text = result.output
    return "ExpiredToken" in text or "security token included in the request is expired" in text


def collect_denials(result: DeployResult, sandbox: Sandbox, since: datetime) -> tuple[Denial, ...]:
    """Every denial this run produced: the CLI's output, the stack's events, known messages."""
    found = list(iter_denials(result.lines(), source="output"))
    found += denials_from_events(sandbox.stack_events_since(since), since)
    if not found:  # a change set that FAILED keeps its reason to itself
        found += iter_denials(sandbox.change_set_reasons_since(since), source="change-set")
    if not found:
        found += _resolve_known_messages(find_known_messages(result.output), sandbox)
    return dedupe(_decode(d, sandbox) for d in found)


def _decode(denial: Denial, sandbox: Sandbox) -> Denial:
    """An encoded denial, decoded with the admin's credentials when they may; else as it was."""
    if denial.reason is not Reason.ENCODED or not denial.encoded:
        return denial
    decoded = sandbox.decode_authorization_message(denial.encoded)
    if decoded is None:
        return denial
    return denial_from_decoded(decoded, denial) or denial


def _resolve_known_messages(messages: Iterable[KnownMessage], sandbox: Sandbox) -> list[Denial]:
    denials = []
    for message in messages:
        arn = sandbox.locate(message.target)
        if arn is not None and message.target is Target.DEPLOYMENT_OBJECTS:
            arn = f"{arn}/*"
        denials.append(
            Denial(
                action=message.action,
                resource=arn,
                principal=None,
                reason=Reason.UNSPECIFIED,
                source=f"cli-message ({message.call})",
                message=message.text,
            )
        )
    return denials


def plan_grants(
    denials: Iterable[Denial], role_arn: str, policy: PolicyDocument, iteration: int
) -> tuple[list[Evidence], list[Denial], list[Denial]]:
    """Split denials into new grants, unfixable ones, and ones that cannot be granted."""
    grants: list[Evidence] = []
    unfixable: list[Denial] = []
    unresolved: list[Denial] = []
    for denial in denials:
        if not owns_principal(role_arn, denial.principal):
            continue  # someone else's denial: reported, never granted to the sandbox role
        if denial.reason is Reason.ENCODED:
            unresolved.append(denial)  # still encoded: the admin may not decode it
            continue
        if not denial.reason.fixable:
            unfixable.append(denial)
            continue
        if denial.action is None or not denial.action_known:
            unresolved.append(denial)
            continue
        scoped = scope(Action(denial.action), denial.resource, origin=denial, granted=policy.grants)
        if scoped is None:
            unresolved.append(denial)
            continue
        if scoped.grant not in policy.grants:
            grants.append(Evidence(scoped.grant, denial, iteration, scoped.note))
    return grants, unfixable, unresolved


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What one failed run means: stop (with why), wait for IAM, or grant and go on."""

    stop: StopReason | None = None
    detail: str = ""
    blocking: tuple[Denial, ...] = ()
    wait: bool = False


def judge(  # noqa: PLR0911 - a decision table: one return per verdict
    denials: tuple[Denial, ...],
    evidence: list[Evidence],
    unfixable: list[Denial],
    unresolved: list[Denial],
    *,
    can_wait: bool,
    foreign: Sequence[Denial] = (),
    refused: Sequence[Evidence] = (),
) -> _Verdict:
    """Decide what a failed run's denials mean for the loop (pure).

    ``foreign`` are the denials of principals other than the sandbox role: reported, never
    granted; when they are all there is, no grant on the role can help.
    """
    if unfixable:
        return _Verdict(StopReason.UNFIXABLE, "a denial no allow can fix", tuple(unfixable))
    if refused:
        return _Verdict(
            StopReason.REFUSED,
            "a high-risk grant needs confirmation (--allow ACTION or --yes)",
            tuple(e.denial for e in refused),
        )
    if evidence:
        return _Verdict()
    if unresolved:
        return _Verdict(
            StopReason.UNRESOLVED, "denied, but nothing grantable named", tuple(unresolved)
        )
    if not denials:
        return _Verdict(StopReason.DEPLOY_FAILED, "the deploy failed without a permission denial")
    if len(foreign) == len(denials):
        return _Verdict(
            StopReason.UNRESOLVED,
            "denied for another principal; discover grants only to the sandbox role",
            tuple(foreign),
        )
    if can_wait:
        # Granted already, denied again: IAM may not have propagated yet.
        return _Verdict(wait=True)
    return _Verdict(
        StopReason.NO_PROGRESS, "the same denial came back after it was granted", denials
    )


def discover(
    deployer: Deployer,
    sandbox: Sandbox,
    sessions: Sessions,
    journal: Journal,
    settings: LoopSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    refuse: Callable[[list[Evidence]], list[Evidence]] = lambda evidence: [],
) -> Outcome:
    """Run the loop until the deploy succeeds or a stop condition holds.

    ``refuse`` sees each batch of new grants before it is applied and returns those that must
    not be made (high-risk actions nobody confirmed); any refusal stops the loop.
    """
    policy = settings.initial_policy
    iterations: list[Iteration] = []
    waits = list(settings.propagation_waits_s)
    number = settings.first_iteration
    last = settings.first_iteration + settings.max_iterations - 1

    def stop(reason: StopReason, detail: str, blocking: Iterable[Denial] = ()) -> Outcome:
        journal.append("stopped", reason=reason.value, detail=detail)
        return Outcome(tuple(iterations), policy, reason, detail, tuple(blocking))

    try:
        sandbox.apply_policy(policy)
        journal.append("policy_applied", iteration=number - 1, policy=policy.to_dict())
        expired_retries = 0
        while number <= last:
            started = now()
            result = _run_once(deployer, sandbox, sessions, journal, number)
            if result.succeeded or result.timed_out:
                iterations.append(Iteration(number, result, (), (), policy))
                if result.timed_out:
                    return stop(StopReason.DEPLOY_FAILED, "the deploy timed out")
                return stop(StopReason.SUCCEEDED, f"deployed after {len(iterations)} run(s)")
            if _is_expired_token(result) and expired_retries < 2:
                # The session ran out mid-deploy: not a permission problem; same iteration again.
                expired_retries += 1
                journal.append("session_expired", iteration=number)
                sessions.renew()
                continue
            expired_retries = 0
            denials = collect_denials(result, sandbox, started)
            journal.append(
                "denials", iteration=number, denials=[_denial_record(d) for d in denials]
            )
            evidence, unfixable, unresolved = plan_grants(denials, sandbox.role_arn, policy, number)
            foreign = [d for d in denials if not owns_principal(sandbox.role_arn, d.principal)]
            refused = refuse(evidence) if evidence and not unfixable else []
            verdict = judge(
                denials,
                evidence,
                unfixable,
                unresolved,
                can_wait=bool(waits),
                foreign=foreign,
                refused=refused,
            )
            if verdict.stop is not None or verdict.wait:
                iterations.append(Iteration(number, result, denials, (), policy))
            if verdict.stop is not None:
                return stop(verdict.stop, verdict.detail, verdict.blocking)
            if verdict.wait:
                wait = waits.pop(0)
                journal.append("propagation_wait", iteration=number, seconds=wait)
                sleep(wait)
            else:
                waits = list(settings.propagation_waits_s)
                policy = _grant(policy, evidence, sandbox, journal, number)
                iterations.append(Iteration(number, result, denials, tuple(evidence), policy))
            number += 1
        return stop(StopReason.LIMIT, f"not converged after {settings.max_iterations} run(s)")
    except KeyboardInterrupt:
        return stop(StopReason.INTERRUPTED, "interrupted; the role has the policy granted so far")
    except Exception as exc:
        # Not ours to handle (AWS down, the admin session gone): record it, then let it rise.
        journal.append("stopped", reason="error", detail=str(exc).splitlines()[0][:500])
        raise


def _grant(
    policy: PolicyDocument,
    evidence: list[Evidence],
    sandbox: Sandbox,
    journal: Journal,
    number: int,
) -> PolicyDocument:
    planned = policy.with_grants(e.grant for e in evidence)
    # Journal first: a run killed during the apply resumes from the planned policy.
    journal.append("grant_planned", iteration=number, policy=planned.to_dict())
    sandbox.apply_policy(planned)
    journal.append(
        "granted",
        iteration=number,
        grants=[_evidence_record(e) for e in evidence],
        policy=planned.to_dict(),
    )
    return planned


def _run_once(
    deployer: Deployer, sandbox: Sandbox, sessions: Sessions, journal: Journal, number: int
) -> DeployResult:
    sandbox.prepare()
    credentials = sessions.current()
    journal.append("run_started", iteration=number)
    result = deployer.deploy(credentials, number)
    journal.append(
        "run_finished",
        iteration=number,
        returncode=result.returncode,
        duration_s=result.duration_s,
        timed_out=result.timed_out,
        log=str(result.log_path) if result.log_path else None,
    )
    return result


@dataclass(frozen=True, slots=True)
class ResumeState:
    """Where an interrupted run stopped: its last policy and its last run's number."""

    policy: PolicyDocument
    last_iteration: int


_POLICY_EVENTS = frozenset({"grant_planned", "granted", "policy_applied"})


def resume_state(records: Sequence[Mapping[str, Any]], *, stack_name: str) -> ResumeState:
    """Read an interrupted run's journal; refuse one that is not resumable."""
    from discover.errors import DiscoverError

    started = next((r for r in records if r["event"] == "started"), None)
    if started is None:
        msg = "no interrupted run to resume: the journal is empty or has no start"
        raise DiscoverError(msg, tip="Run without --resume.")
    if started.get("stack_name") != stack_name:
        msg = f"the journal is for stack {started.get('stack_name')}, not {stack_name}"
        raise DiscoverError(msg, tip="Resume with the same options as the interrupted run.")
    last = records[-1]
    if last["event"] == "stopped" and last.get("reason") == StopReason.SUCCEEDED.value:
        msg = "the run in the journal already converged"
        raise DiscoverError(msg, tip="Run without --resume to discover again.")
    policy_records = [r for r in records if r["event"] in _POLICY_EVENTS and "policy" in r]
    policy = (
        PolicyDocument.from_dict(policy_records[-1]["policy"])
        if policy_records
        else PolicyDocument()
    )
    runs = [int(r["iteration"]) for r in records if r["event"] == "run_started"]
    return ResumeState(policy, max(runs, default=0))


def _denial_record(denial: Denial) -> dict[str, object]:
    return {
        "action": denial.action,
        "resource": denial.resource,
        "principal": denial.principal,
        "reason": denial.reason.value,
        "source": denial.source,
        "message": denial.message,
    }


def _evidence_record(evidence: Evidence) -> dict[str, object]:
    return {
        "action": evidence.grant.action,
        "resource": evidence.grant.resource,
        "condition": [list(c) for c in evidence.grant.condition],
        "note": evidence.note,
        "denial": _denial_record(evidence.denial),
    }


def rebuild_evidence(records: Iterable[Mapping[str, Any]]) -> tuple[Evidence, ...]:
    """The evidence of a journal's ``granted`` events (for ``discover report``)."""
    found = []
    for record in records:
        if record.get("event") != "granted":
            continue
        iteration = int(str(record["iteration"]))
        for raw in record.get("grants", []):
            denial = raw["denial"]
            grant = Grant(
                Action(raw["action"]),
                raw["resource"],
                tuple((c[0], c[1], tuple(c[2])) for c in raw.get("condition", [])),
            )
            found.append(
                Evidence(
                    grant,
                    Denial(
                        action=denial["action"],
                        resource=denial["resource"],
                        principal=denial["principal"],
                        reason=Reason(denial["reason"]),
                        source=denial["source"],
                        message=denial["message"],
                    ),
                    iteration,
                    raw.get("note", ""),
                )
            )
    return tuple(found)


__all__ = [
    "Deployer",
    "Evidence",
    "Iteration",
    "LoopSettings",
    "Outcome",
    "Sandbox",
    "Sessions",
    "StopReason",
    "discover",
    "owns_principal",
    "resume_state",
]
