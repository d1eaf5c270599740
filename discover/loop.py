"""The discovery loop: deploy, read the denials, grant, repeat, until it converges or must stop.

Pure orchestration over the ports (``ports.py``): a ``Deployer`` (runs the deploy command
with a given session), a ``Sandbox`` (the role's policy, the stack, its events), ``Sessions``
(temporary credentials) and an ``EventSink`` (the journal, the live view, the log: every step
is a typed event of ``run_events``). It never imports boto3 or subprocess and reads no file,
so it is tested with fakes and drives real AWS and the local sandbox alike.

Two seams for what comes next:

- which planned grants a run makes is the ``strategy`` (``GrantStrategy``; the default makes
  them all): one-at-a-time, observed or predicting strategies plug in there;
- grants known before the first run (a prediction from the template) go in
  ``LoopSettings.initial_policy``; the loop applies it and journals it as ``PolicyApplied``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from discover.denials import Denial, Reason, dedupe, denial_from_decoded, parse_denials
from discover.errors import DiscoverError
from discover.iamdb import Action
from discover.known_messages import KnownMessage, Target, find_known_messages
from discover.ownership import Owner, attribute
from discover.policy import PolicyDocument
from discover.ports import (
    Deployer,
    DeployResult,
    EventSink,
    Sandbox,
    Sessions,
    StackCleanupError,
)
from discover.run_events import (
    DenialsFound,
    Event,
    Evidence,
    Granted,
    GrantPlanned,
    PhaseStarted,
    PolicyApplied,
    PropagationWait,
    Resumed,
    RunFinished,
    RunStarted,
    ServiceRoleGranted,
    SessionRenewed,
    Started,
    Stopped,
    StopReason,
    last_policy,
)
from discover.scoping import scope
from discover.service_role import ServiceRolePolicy
from discover.stack_events import denials_from_events


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


class GrantStrategy(Protocol):
    """Which of a run's planned grants to make now (the rest wait for a later run)."""

    def choose(self, planned: Sequence[Evidence], denials: Sequence[Denial]) -> list[Evidence]: ...


class GrantAll:
    """The default strategy: every grant a run's denials call for, at once."""

    def choose(self, planned: Sequence[Evidence], denials: Sequence[Denial]) -> list[Evidence]:
        return list(planned)


@dataclass(frozen=True, slots=True)
class LoopSettings:
    max_iterations: int = 20
    propagation_waits_s: tuple[float, ...] = (5.0, 15.0, 45.0)
    initial_policy: PolicyDocument = field(default_factory=PolicyDocument)
    first_iteration: int = 1
    session_arn: str | None = None  # this run's session: only its denials are its own
    # False for a step of a longer workflow (a phase): its success is not the end of the run,
    # so no ``Stopped`` is emitted for it (the workflow emits the last one).
    announce_success: bool = True


def foreign(denial: Denial, session: str | None) -> bool:
    """Another principal's denial (``ownership``): reported, never granted."""
    return attribute(denial, session) is Owner.FOREIGN


def _is_expired_token(result: DeployResult) -> bool:
    text = result.output
    return "ExpiredToken" in text or "security token included in the request is expired" in text


def collect_denials(result: DeployResult, sandbox: Sandbox, since: datetime) -> tuple[Denial, ...]:
    """Every denial this run produced: the CLI's output, the stack's events, known messages.

    A stack event's denial comes first: the CLI often repeats the same refusal, and the event's
    copy carries the resource's logical id and type that scoping decides with.
    """
    output = (
        list(result.denials)
        if result.denials is not None
        else list(parse_denials(result.output, source="output"))
    )
    found = [*denials_from_events(sandbox.stack_events_since(since), since), *output]
    if not found:  # a change set that FAILED keeps its reason to itself
        found += parse_denials(
            "\n".join(sandbox.change_set_reasons_since(since)), source="change-set"
        )
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
    denials: Iterable[Denial],
    role_arn: str,
    policy: PolicyDocument,
    iteration: int,
    *,
    session: str | None = None,
) -> tuple[list[Evidence], list[Denial], list[Denial]]:
    """Split denials into new grants, unfixable ones, and ones that cannot be granted."""
    grants: list[Evidence] = []
    unfixable: list[Denial] = []
    unresolved: list[Denial] = []
    for denial in denials:
        if foreign(denial, session):
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
            "a grant was refused, or needs a confirmation nobody gave (--allow ACTION, --yes)",
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


def discover(  # noqa: PLR0915 - the loop reads top to bottom as one decision per run
    deployer: Deployer,
    sandbox: Sandbox,
    sessions: Sessions,
    events: EventSink,
    settings: LoopSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    refuse: Callable[[list[Evidence]], list[Evidence]] = lambda evidence: [],
    strategy: GrantStrategy | None = None,
    refine: Callable[[list[Evidence], PolicyDocument], list[Evidence]] = lambda e, _: e,
    service: ServiceRolePolicy | None = None,
) -> Outcome:
    """Run the loop until the deploy succeeds or a stop condition holds.

    Every step is emitted to ``events``. ``strategy`` chooses which planned grants a run makes
    (default: all). ``refine`` may narrow them (a ``*`` to the template's resources);
    ``refuse`` sees each batch of chosen grants before it is applied and returns those that
    must not be made (the grant decision's refusals, and confirmations nobody gave); any
    refusal stops the loop. With a CloudFormation ``service`` role, the denials its session
    meets grow its policy instead (all of them at once), in the same runs.
    """
    strategy = strategy if strategy is not None else GrantAll()
    policy = settings.initial_policy
    iterations: list[Iteration] = []
    waits = list(settings.propagation_waits_s)
    number = settings.first_iteration
    last = settings.first_iteration + settings.max_iterations - 1

    def stop(reason: StopReason, detail: str, blocking: Iterable[Denial] = ()) -> Outcome:
        outcome = Outcome(tuple(iterations), policy, reason, detail, tuple(blocking))
        return _stop(events, outcome, announce=settings.announce_success)

    try:
        sandbox.apply_policy(policy)
        events.emit(PolicyApplied(number - 1, policy))
        expired_retries = 0
        while number <= last:
            started = now()
            result, session = _run_once(
                deployer, sandbox, sessions, events, number, last=last, learn_cleanup=bool(service)
            )
            session = session or settings.session_arn
            if result.succeeded or result.timed_out:
                iterations.append(Iteration(number, result, (), (), policy))
                if result.timed_out:
                    return stop(StopReason.DEPLOY_FAILED, "the deploy timed out")
                return stop(StopReason.SUCCEEDED, f"deployed after {len(iterations)} run(s)")
            if _is_expired_token(result) and expired_retries < 2:
                # The session ran out mid-deploy: not a permission problem; same iteration again.
                expired_retries += 1
                events.emit(SessionRenewed(number))
                sessions.renew()
                continue
            expired_retries = 0
            denials = collect_denials(result, sandbox, started)
            events.emit(DenialsFound(number, denials))
            routed = _route(denials, service)
            planned, unfixable, unresolved = plan_grants(
                routed.caller, sandbox.role_arn, policy, number, session=session
            )
            if service is not None:
                planned = [replace(e, grant=service.role.pass_role(e.grant)) for e in planned]
            evidence = refine(strategy.choose(planned, denials), policy) if planned else []
            for_service, service_unfixable, service_unresolved = _plan_service(
                routed.service, service, number, refine
            )
            unfixable += service_unfixable
            unresolved += service_unresolved
            others = [d for d in routed.caller if foreign(d, session)]
            chosen = evidence + for_service
            refused = refuse(chosen) if chosen and not unfixable else []
            verdict = judge(
                denials,
                chosen,
                unfixable,
                unresolved,
                can_wait=bool(waits),
                foreign=others,
                refused=refused,
            )
            if verdict.stop is not None or verdict.wait:
                iterations.append(Iteration(number, result, denials, (), policy))
            if verdict.stop is not None:
                return stop(verdict.stop, verdict.detail, verdict.blocking)
            if verdict.wait:
                wait = waits.pop(0)
                events.emit(PropagationWait(number, wait))
                sleep(wait)
            else:
                waits = list(settings.propagation_waits_s)
                _grant_service(service, for_service, events, number)
                if evidence or not for_service:
                    policy = _grant(policy, evidence, sandbox, events, number)
                iterations.append(Iteration(number, result, denials, tuple(evidence), policy))
            number += 1
        return stop(StopReason.LIMIT, f"not converged after {settings.max_iterations} run(s)")
    except KeyboardInterrupt:
        return stop(StopReason.INTERRUPTED, "interrupted; the role has the policy granted so far")
    except Exception as exc:
        # Not ours to handle (AWS down, the admin session gone): record it, then let it rise.
        text = str(exc).splitlines()
        events.emit(Stopped(StopReason.ERROR, text[0][:500] if text else type(exc).__name__))
        raise


@dataclass(frozen=True, slots=True)
class _Routed:
    """A run's denials by the policy that can answer them."""

    caller: tuple[Denial, ...]
    service: tuple[Denial, ...] = ()


def _route(denials: tuple[Denial, ...], service: ServiceRolePolicy | None) -> _Routed:
    """The service role's denials (its session's, from the stack's events) apart."""
    if service is None:
        return _Routed(denials)
    return _Routed(
        tuple(d for d in denials if not service.role.owns(d)),
        tuple(d for d in denials if service.role.owns(d)),
    )


def _plan_service(
    denials: tuple[Denial, ...],
    service: ServiceRolePolicy | None,
    number: int,
    refine: Callable[[list[Evidence], PolicyDocument], list[Evidence]],
) -> tuple[list[Evidence], list[Denial], list[Denial]]:
    """The service role's grants for its denials (every one: its runs are the caller's)."""
    if service is None or not denials:
        return [], [], []
    planned, unfixable, unresolved = plan_grants(
        denials, service.role.arn, service.policy, number, session=service.role.session
    )
    return (refine(planned, service.policy) if planned else []), unfixable, unresolved


def _grant_service(
    service: ServiceRolePolicy | None, evidence: list[Evidence], events: EventSink, number: int
) -> None:
    if not evidence or service is None:
        return
    granted = service.grant([e.grant for e in evidence])
    events.emit(ServiceRoleGranted(number, service.role.arn, tuple(evidence), granted))


def _stop(events: EventSink, outcome: Outcome, *, announce: bool) -> Outcome:
    if outcome.reason is not StopReason.SUCCEEDED or announce:
        events.emit(Stopped(outcome.reason, outcome.detail, outcome.blocking))
    return outcome


def _grant(
    policy: PolicyDocument,
    evidence: list[Evidence],
    sandbox: Sandbox,
    events: EventSink,
    number: int,
) -> PolicyDocument:
    planned = policy.with_grants(e.grant for e in evidence)
    # Journal first: a run killed during the apply resumes from the planned policy.
    events.emit(GrantPlanned(number, planned, tuple(evidence)))
    sandbox.apply_policy(planned)
    events.emit(Granted(number, tuple(evidence), planned))
    return planned


def _run_once(
    deployer: Deployer,
    sandbox: Sandbox,
    sessions: Sessions,
    events: EventSink,
    number: int,
    *,
    last: int,
    learn_cleanup: bool = False,
) -> tuple[DeployResult, str | None]:
    """One deploy run, and the ARN of the session it ran as (when STS named it).

    ``learn_cleanup``: a stack that could not be deleted before the run is the run's failure
    (with a service role its delete needs the role's permissions; the stack's events say
    which), not an error.
    """
    try:
        sandbox.prepare()
    except StackCleanupError as failed:
        if not learn_cleanup:
            raise
        events.emit(RunStarted(number, last))
        result = DeployResult(1, f"{failed}\n", 0.0, timed_out=False)
        events.emit(RunFinished(number, 1, 0.0, False, None, str(failed)[:300]))
        return result, None
    credentials = sessions.current()
    events.emit(RunStarted(number, last))
    result = deployer.deploy(credentials, number)
    events.emit(
        RunFinished(
            number,
            result.returncode,
            result.duration_s,
            result.timed_out,
            str(result.log_path) if result.log_path else None,
            result.last_line[:300],
        )
    )
    return result, credentials.arn


@dataclass(frozen=True, slots=True)
class ResumeState:
    """Where an interrupted run stopped: its last policy, its last run's number, and the step
    (of a phased workflow) it was in, if any."""

    policy: PolicyDocument
    last_iteration: int
    step: str | None = None


def resume_state(events: Sequence[Event], *, stack_name: str) -> ResumeState:
    """Read an interrupted run's events; refuse one that is not resumable."""
    started = next((e for e in events if isinstance(e, Started)), None)
    if started is None:
        msg = "no interrupted run to resume: the journal is empty or has no start"
        raise DiscoverError(msg, tip="Run without --resume.")
    if started.stack_name != stack_name:
        msg = f"the journal is for stack {started.stack_name}, not {stack_name}"
        raise DiscoverError(msg, tip="Resume with the same options as the interrupted run.")
    final = events[-1]
    if isinstance(final, Stopped) and final.reason is StopReason.SUCCEEDED:
        msg = "the run in the journal already converged"
        raise DiscoverError(msg, tip="Run without --resume to discover again.")
    runs = [e.iteration for e in events if isinstance(e, RunStarted)]
    steps = [e.step for e in events if isinstance(e, PhaseStarted)]
    return ResumeState(last_policy(events), max(runs, default=0), steps[-1] if steps else None)


__all__ = [
    "Deployer",
    "Evidence",
    "GrantAll",
    "GrantStrategy",
    "Iteration",
    "LoopSettings",
    "Outcome",
    "Resumed",
    "Sandbox",
    "Sessions",
    "StopReason",
    "discover",
    "foreign",
    "resume_state",
]
