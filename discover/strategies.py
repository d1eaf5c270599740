"""Strategies: how the deploy runs' denials (and predictions) become the policy.

- ``one-at-a-time``: grant only the first denial of each run, as a person does by hand (the
  baseline the benchmark compares against);
- ``observed``: grant every denial a run shows;
- ``predicted`` (the default): predict what the deploy needs from its template, deploy once
  with that, read from CloudTrail what the run used, keep only that (and what has other
  evidence), prove the permissions CloudTrail cannot show by removal tests, then verify the
  result with a deploy from scratch; a denial at any point is learned as ``observed`` does.

Every permission of a ``predicted`` policy has evidence: denied (the run and the message),
used (the run and the CloudTrail event id), implied by a used call (``iam:PassRole`` of the
role a used ``CreateFunction`` names), or removal-tested (a run without it was denied it).
``--keep-predicted`` keeps predictions nothing proved, marked as such, and skips the removal
tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

from discover.denials import Denial, Reason
from discover.loop import Iteration, LoopSettings, Outcome, discover
from discover.policy import Grant, PolicyDocument, resource_matches
from discover.ports import (
    Credentials,
    Deployer,
    DeployResult,
    EventSink,
    Sandbox,
    Template,
    Trail,
)
from discover.predict import Prediction, predict
from discover.run_events import (
    Evidence,
    Granted,
    Predicted,
    PredictionsDropped,
    RemovalTest,
    StopReason,
    TrailRead,
)
from discover.trail import TrailEvent
from discover.trail import TrailRead as TrailAnswer


class Strategy(str, Enum):
    ONE_AT_A_TIME = "one-at-a-time"
    OBSERVED = "observed"
    PREDICTED = "predicted"


DEFAULT_STRATEGY = Strategy.PREDICTED


class ProofKind(str, Enum):
    """Why a permission is in the final policy."""

    DENIED = "denied"
    USED = "used"
    IMPLIED = "implied"  # a documented dependency of a used call
    REMOVAL_TESTED = "removal-tested"
    UNPROVEN = "unproven"  # kept with --keep-predicted only


# --- the ports this strategy needs besides the loop's -------------------------------------------


class StackSandbox(Sandbox, Protocol):
    def delete_stack(self) -> None:
        """Delete the configured stack (a deploy from scratch follows)."""


class SessionFactory(Protocol):
    def __call__(self, session_name: str) -> Credentials: ...


# --- one session per run ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One deploy run of the predicted strategy: its session, and when its calls ended."""

    iteration: int
    session_name: str
    started: datetime
    watermark: datetime | None


class PerRunSessions:
    """``Sessions`` with a new session name for every run, so a run's CloudTrail events are
    exactly its session's (CloudTrail's ``Username``)."""

    def __init__(self, assume: SessionFactory, prefix: str) -> None:
        self._assume = assume
        self._prefix = prefix
        self._count = 0
        self._current: Credentials | None = None
        self.names: dict[str, str] = {}  # access key id -> session name

    def current(self) -> Credentials:
        # The loop asks once per run (and again after renew()): every ask is a new session.
        self._count += 1
        name = f"{self._prefix}-r{self._count:02d}"
        self._current = self._assume(name)
        self.names[self._current.access_key_id] = name
        return self._current

    def renew(self) -> Credentials:
        return self.current()


class TrackedDeployer:
    """The loop's ``Deployer``, recording each run's session and making its watermark call."""

    def __init__(
        self,
        deployer: Deployer,
        sessions: PerRunSessions,
        trail: Trail,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._deployer = deployer
        self._sessions = sessions
        self._trail = trail
        self._now = now
        self.runs: list[RunRecord] = []

    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
        started = self._now()
        result = self._deployer.deploy(credentials, iteration)
        watermark: datetime | None = None
        try:
            watermark = self._trail.mark(credentials)
        except Exception:  # without a watermark the run's events cannot be told complete
            watermark = None
        name = self._sessions.names.get(credentials.access_key_id, "")
        self.runs.append(RunRecord(iteration, name, started, watermark))
        return result


# --- deciding what stays -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proof:
    grant: Grant
    kind: ProofKind
    run: int
    detail: str  # the CloudTrail event id, the denial, the call that implies it
    prediction: Prediction | None = None


def _used_by(
    grant: Grant, events: Iterable[tuple[int, TrailEvent]]
) -> tuple[int, TrailEvent] | None:
    """The first authorized call of ``grant``'s action on a resource it covers."""
    for run, event in events:
        if grant.action not in event.actions or not event.authorized:
            continue
        if not event.resources or any(resource_matches(grant.resource, r) for r in event.resources):
            return run, event
    return None


def _action_used(
    action: str, events: Iterable[tuple[int, TrailEvent]]
) -> tuple[int, TrailEvent] | None:
    for run, event in events:
        if action in event.actions and event.authorized:
            return run, event
    return None


def _describe(run: int, event: TrailEvent) -> str:
    via = f", invoked by {event.invoked_by}" if event.invoked_by else ""
    on = f" on {event.resources[0]}" if event.resources else ""
    return f"run {run}: CloudTrail event {event.event_id} ({event.source} {event.name}{on}{via})"


@dataclass(frozen=True, slots=True)
class Sorted:
    """The predictions after the trail: proven, to remove-test, and dropped."""

    proofs: tuple[Proof, ...]
    to_test: tuple[Prediction, ...]
    dropped: tuple[Prediction, ...]


def sort_predictions(
    predictions: Sequence[Prediction],
    reads: Sequence[tuple[int, TrailAnswer]],
    *,
    learned: frozenset[Grant],
) -> Sorted:
    """Which predictions the runs' trails prove, which need a removal test, which go (pure)."""
    events = [(run, e) for run, read in reads for e in read.used()]
    complete = all(read.complete for _, read in reads)
    proofs: list[Proof] = []
    to_test: list[Prediction] = []
    dropped: list[Prediction] = []
    for prediction in predictions:
        grant = prediction.grant
        if grant in learned:
            continue  # denied in a run: that is its evidence
        if prediction.implied_by is not None:
            found = _action_used(prediction.implied_by, events)
            if found is not None:
                run, event = found
                detail = (
                    f"{prediction.why}; implied by {prediction.implied_by}, {_describe(run, event)}"
                )
                proofs.append(Proof(grant, ProofKind.IMPLIED, run, detail, prediction))
            else:
                dropped.append(prediction)
            continue
        found = _used_by(grant, events)
        if found is not None:
            proofs.append(Proof(grant, ProofKind.USED, found[0], _describe(*found), prediction))
        elif not prediction.provable_by_trail or not complete:
            to_test.append(prediction)  # CloudTrail cannot show it (or did not finish)
        else:
            dropped.append(prediction)
    return Sorted(tuple(proofs), tuple(to_test), tuple(dropped))


# --- the strategy ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PredictedSettings:
    loop: LoopSettings
    keep_predicted: bool = False
    cli: str | None = "serverless"
    # The step predicted: the resources' handler (create, update, delete) and the CLI command
    # (deploy, remove). A step after the create deploys the stack first (its deployer does).
    operation: str = "create"
    command: str = "deploy"


@dataclass
class _Runs:
    """The runs so far, across phases, and the budget left."""

    budget: int
    next_number: int
    iterations: list[Iteration] = field(default_factory=list)

    def take(self, outcome: Outcome) -> None:
        self.iterations += outcome.iterations
        self.budget -= len(outcome.iterations)
        self.next_number += len(outcome.iterations)


def _prediction_evidence(
    prediction: Prediction, *, source: str = "prediction", message: str = "", run: int = 0
) -> Evidence:
    """A prediction (or its proof) as the events carry evidence: the grant, and why."""
    denial = Denial(
        action=prediction.grant.action,
        resource=prediction.grant.resource,
        principal=None,
        reason=Reason.UNSPECIFIED,
        source=source,
        message=message or prediction.why,
    )
    return Evidence(prediction.grant, denial, run, prediction.note)


def _proof_evidence(proof: Proof) -> Evidence:
    assert proof.prediction is not None
    return _prediction_evidence(
        proof.prediction, source=f"proof:{proof.kind.value}", message=proof.detail, run=proof.run
    )


@dataclass(frozen=True, slots=True)
class PredictedPorts:
    """What the predicted strategy works with, besides where its events go."""

    deployer: Deployer
    sandbox: StackSandbox
    assume: SessionFactory
    trail: Trail
    template: Template
    session_prefix: str


class _Predicted:
    """One discovery with the predicted strategy; each phase a method, runs shared."""

    def __init__(
        self,
        ports: PredictedPorts,
        events: EventSink,
        settings: PredictedSettings,
        *,
        refuse: Callable[[list[Evidence]], list[Evidence]],
        sleep: Callable[[float], None],
        now: Callable[[], datetime],
    ) -> None:
        self.ports = ports
        self.events = events
        self.settings = settings
        self.refuse = refuse
        self.sleep = sleep
        self.now = now
        self.sessions = PerRunSessions(ports.assume, ports.session_prefix)
        self.tracked = TrackedDeployer(ports.deployer, self.sessions, ports.trail, now)
        loop = settings.loop
        self.runs = _Runs(loop.max_iterations, loop.first_iteration)
        self.learned: set[Grant] = set()
        self.kept: set[Grant] = set(loop.initial_policy.grants)
        self.proofs: list[Proof] = []

    def phase(self, policy: PolicyDocument, budget: int) -> Outcome:
        """Deploy from scratch with ``policy``; learn denials as ``observed`` does."""
        self.ports.sandbox.delete_stack()
        settings = replace(
            self.settings.loop,
            initial_policy=policy,
            max_iterations=budget,
            first_iteration=self.runs.next_number,
        )
        outcome = discover(
            self.tracked,
            self.ports.sandbox,
            self.sessions,
            self.events,
            settings,
            sleep=self.sleep,
            now=self.now,
            refuse=self.refuse,
        )
        self.runs.take(outcome)
        learned = {e.grant for e in outcome.evidence}
        self.learned |= learned
        self.kept |= learned
        return outcome

    def finish(self, outcome: Outcome, detail: str | None = None) -> Outcome:
        return Outcome(
            tuple(self.runs.iterations),
            outcome.policy,
            outcome.reason,
            detail or outcome.detail,
            outcome.blocking,
        )

    def predictions(self) -> list[Prediction]:
        """The template's predictions; high-risk ones only as the same confirmation allows."""
        base = self.settings.loop.initial_policy
        found = predict(
            self.ports.template.load(),
            cli=self.settings.cli,
            operation=self.settings.operation,
            command=self.settings.command,
        )
        fresh = [p for p in found if p.grant not in base.grants]
        refused = {e.grant for e in self.refuse([_prediction_evidence(p) for p in fresh])}
        allowed = [p for p in fresh if p.grant not in refused]
        self.events.emit(
            Predicted(
                tuple(_prediction_evidence(p) for p in allowed),
                tuple(_prediction_evidence(p) for p in fresh if p.grant in refused),
            )
        )
        return allowed

    def read_trail(self) -> list[tuple[int, TrailAnswer]]:
        reads: list[tuple[int, TrailAnswer]] = []
        for record in self.tracked.runs:
            if record.watermark is None or not record.session_name:
                continue
            read = self.ports.trail.read(
                record.session_name, started=record.started, watermark=record.watermark
            )
            self.events.emit(
                TrailRead(
                    record.iteration,
                    record.session_name,
                    len(read.events),
                    len(read.used()),
                    read.complete,
                    round(read.waited_s, 3),
                )
            )
            reads.append((record.iteration, read))
        return reads

    def keep(self, decided: Sorted) -> tuple[Prediction, ...]:
        """Keep the proven predictions; the ones to remove-test, unless they are all kept."""
        self.proofs += decided.proofs
        self.kept |= {p.grant for p in decided.proofs}
        self.events.emit(
            PredictionsDropped(tuple(_prediction_evidence(p) for p in decided.dropped))
        )
        if not self.settings.keep_predicted:
            return decided.to_test
        for prediction in (*decided.to_test, *decided.dropped):
            detail = f"{prediction.why} (predicted; nothing proved it)"
            self.proofs.append(Proof(prediction.grant, ProofKind.UNPROVEN, 0, detail, prediction))
            self.kept.add(prediction.grant)
        return ()

    def removal_test(self, prediction: Prediction, pending: set[Grant]) -> Outcome:
        """One run without ``prediction``'s grant (and with the others still untested)."""
        trial = PolicyDocument(frozenset(self.kept | pending))
        self.events.emit(RemovalTest(self.runs.next_number, _prediction_evidence(prediction)))
        outcome = self.phase(trial, 1)
        grant = prediction.grant
        denied = [
            e
            for e in outcome.evidence
            if e.grant.action == grant.action
            and (e.denial.resource is None or resource_matches(grant.resource, e.denial.resource))
        ]
        if denied:
            self.kept.add(grant)
            run = outcome.iterations[-1].number
            detail = f"{prediction.why}; run {run}, without it, was denied it"
            self.proofs.append(Proof(grant, ProofKind.REMOVAL_TESTED, run, detail, prediction))
        return outcome

    def record_proofs(self, final: PolicyDocument) -> None:
        """The evidence of the predictions that stay, as the journal's grants (the report's)."""
        staying = [p for p in self.proofs if p.grant in final.grants]
        for run in sorted({p.run for p in staying}):
            grants = tuple(_proof_evidence(p) for p in staying if p.run == run)
            self.events.emit(Granted(run, grants, final))

    def run(self) -> Outcome:
        allowed = self.predictions()
        base = self.settings.loop.initial_policy
        first = self.phase(base.with_grants(p.grant for p in allowed), self.runs.budget)
        if first.reason is not StopReason.SUCCEEDED:
            return self.finish(first)
        decided = sort_predictions(allowed, self.read_trail(), learned=frozenset(self.learned))
        to_test = self.keep(decided)
        pending = {p.grant for p in to_test}
        for prediction in to_test:
            pending.discard(prediction.grant)
            while prediction.grant not in self.kept:
                if self.runs.budget < 2:  # one run stays for the verify
                    return self.finish(first, "no runs left for the removal tests and the verify")
                outcome = self.removal_test(prediction, pending)
                if outcome.reason is StopReason.SUCCEEDED:
                    break  # deployed without it: not needed
                if outcome.reason is not StopReason.LIMIT:
                    return self.finish(outcome)
                # Denied something else first (now granted): the test has not reached it yet.
        final = PolicyDocument(frozenset(self.kept))
        self.record_proofs(final)
        verify = self.phase(final, self.runs.budget)
        detail = None
        if verify.reason is StopReason.SUCCEEDED:
            runs = len(self.runs.iterations)
            detail = f"deployed from scratch with only the proven policy; {runs} run(s) in all"
        return self.finish(verify, detail)


def discover_predicted(
    ports: PredictedPorts,
    events: EventSink,
    settings: PredictedSettings,
    *,
    refuse: Callable[[list[Evidence]], list[Evidence]] = lambda evidence: [],
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Outcome:
    """Predict, deploy, keep what was used, remove-test what CloudTrail cannot show, verify.

    Each phase deploys from scratch (the configured stack is deleted first), so what a run
    needs is what a first deploy of the service needs.
    """
    return _Predicted(ports, events, settings, refuse=refuse, sleep=sleep, now=now).run()


class FirstDenialOnly:
    """``one-at-a-time`` (the loop's ``GrantStrategy``): of a run's planned grants, only the
    first denial's, as a person granting by hand does."""

    def choose(self, planned: Sequence[Evidence], denials: Sequence[Denial]) -> list[Evidence]:
        return list(planned[:1])


__all__ = [
    "DEFAULT_STRATEGY",
    "FirstDenialOnly",
    "PerRunSessions",
    "PredictedPorts",
    "PredictedSettings",
    "Proof",
    "ProofKind",
    "Strategy",
    "Trail",
    "discover_predicted",
    "sort_predictions",
]
