"""What happens in a run, as typed events: one vocabulary for the journal, the live view and logs.

The loop and the workflows emit these frozen events to an ``EventSink`` (``ports``); the journal
writes each as one JSON line and reads them back into the same types, the live view draws
them, the log sink prints one structured line per event. The JSON encoding is here and only
here: ``encode`` and ``decode`` (a record is ``{"event": KIND, **fields}``; the journal adds
``time`` and ``schema``). Unknown kinds decode to None, so an older discover can read a newer
journal.

Also here, because they are what the events carry: ``StopReason`` (why a run stopped) and
``Evidence`` (why a grant is in the policy), and the one rule for "the last policy"
(``last_policy``) and for the evidence of a run (``evidence_of``).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from discover.denials import Denial, Reason
from discover.iamdb import Action
from discover.policy import Grant, PolicyDocument


class StopReason(str, Enum):
    """Why the loop stopped; each has the exit code the CLI returns."""

    SUCCEEDED = "succeeded"
    LIMIT = "limit"
    NO_PROGRESS = "no-progress"
    UNFIXABLE = "unfixable"
    REFUSED = "refused"  # a high-risk grant was not confirmed
    UNRESOLVED = "unresolved"  # denied, but the text does not say what to grant
    DEPLOY_FAILED = "deploy-failed"
    INTERRUPTED = "interrupted"
    ERROR = "error"  # an error that is not the deploy's (AWS unreachable, the admin gone)

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
    StopReason.ERROR: 2,
}


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a grant is in the policy: the denial it answers, and how its resource was scoped."""

    grant: Grant
    denial: Denial
    iteration: int
    note: str


# --- the events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """A fresh discovery began (what it runs, where, against which role)."""

    kind: ClassVar[str] = "started"
    role_arn: str
    policy_name: str
    stack_name: str
    region: str
    stage: str
    command: tuple[str, ...]
    local: bool
    max_iterations: int


@dataclass(frozen=True, slots=True)
class Backup:
    """The role's policies as they were before discover changed anything (for ``--restore``)."""

    kind: ClassVar[str] = "backup"
    role_arn: str
    backup: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Resumed:
    """An interrupted discovery goes on, from run ``iteration``."""

    kind: ClassVar[str] = "resumed"
    iteration: int


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    """A step of a phase (create, update, no-op update, remove) begins at run ``iteration``."""

    kind: ClassVar[str] = "phase_started"
    phase: str
    step: str
    iteration: int


@dataclass(frozen=True, slots=True)
class PolicyApplied:
    """The policy the role starts with (before run ``iteration + 1``)."""

    kind: ClassVar[str] = "policy_applied"
    iteration: int
    policy: PolicyDocument


@dataclass(frozen=True, slots=True)
class RunStarted:
    """Deploy run ``iteration`` (of at most ``limit``) began."""

    kind: ClassVar[str] = "run_started"
    iteration: int
    limit: int = 0  # the last run number allowed; 0 when not known (older journals)


@dataclass(frozen=True, slots=True)
class RunFinished:
    """Deploy run ``iteration`` ended."""

    kind: ClassVar[str] = "run_finished"
    iteration: int
    returncode: int
    duration_s: float
    timed_out: bool
    log: str | None = None
    last_line: str = ""

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and not self.timed_out


@dataclass(frozen=True, slots=True)
class DenialsFound:
    """The denials read from run ``iteration`` (output, stack events, known CLI messages)."""

    kind: ClassVar[str] = "denials"
    iteration: int
    denials: tuple[Denial, ...]


@dataclass(frozen=True, slots=True)
class GrantPlanned:
    """The policy about to be put on the role (written before it is applied, so a run killed
    during the apply resumes from it)."""

    kind: ClassVar[str] = "grant_planned"
    iteration: int
    policy: PolicyDocument
    grants: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Granted:
    """The role now has ``policy``: ``grants`` were added after run ``iteration``."""

    kind: ClassVar[str] = "granted"
    iteration: int
    grants: tuple[Evidence, ...]
    policy: PolicyDocument


@dataclass(frozen=True, slots=True)
class ServiceRoleGranted:
    """The CloudFormation service role now has ``policy``: ``grants`` were added after run
    ``iteration`` (the resources' denials, which name the role's session)."""

    kind: ClassVar[str] = "service_role_granted"
    iteration: int
    role_arn: str
    grants: tuple[Evidence, ...]
    policy: PolicyDocument


@dataclass(frozen=True, slots=True)
class PropagationWait:
    """Granted already, denied again: waiting ``seconds`` for IAM to propagate."""

    kind: ClassVar[str] = "propagation_wait"
    iteration: int
    seconds: float


@dataclass(frozen=True, slots=True)
class SessionRenewed:
    """The session expired during run ``iteration``; a new one was assumed, the run repeats."""

    kind: ClassVar[str] = "session_expired"
    iteration: int


@dataclass(frozen=True, slots=True)
class Stopped:
    """The discovery stopped, and why."""

    kind: ClassVar[str] = "stopped"
    reason: StopReason
    detail: str = ""
    blocking: tuple[Denial, ...] = ()


@dataclass(frozen=True, slots=True)
class Approved:
    """A person approved ``grants`` before they were made (``how``: each, batch, always)."""

    kind: ClassVar[str] = "approved"
    iteration: int
    grants: tuple[Evidence, ...]
    by: str
    how: str = "each"


@dataclass(frozen=True, slots=True)
class Refused:
    """A person refused ``grants``; ``go_on``: the loop went on without them, else it stopped."""

    kind: ClassVar[str] = "refused"
    iteration: int
    grants: tuple[Evidence, ...]
    by: str
    go_on: bool = False


@dataclass(frozen=True, slots=True)
class Proposed:
    """``--propose``: ``policy`` was written to ``path`` for someone else to apply."""

    kind: ClassVar[str] = "proposed"
    iteration: int
    policy: PolicyDocument
    grants: tuple[Evidence, ...] = ()
    path: str = ""


@dataclass(frozen=True, slots=True)
class AppliedOutOfBand:
    """The role was found to hold the proposal, put there by ``by`` (its policies' names)."""

    kind: ClassVar[str] = "applied_out_of_band"
    iteration: int
    by: str


@dataclass(frozen=True, slots=True)
class ProposalMissing:
    """The role was read and does not hold all of the proposal: ``missing`` of ``total``."""

    kind: ClassVar[str] = "proposal_missing"
    iteration: int
    missing: tuple[str, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Predicted:
    """What the template predicts the deploy needs (each as the grant, the reason in
    ``denial.message``, ``denial.source`` "prediction"), and the high-risk ones refused."""

    kind: ClassVar[str] = "predicted"
    predictions: tuple[Evidence, ...]
    refused: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class TrailRead:
    """Run ``iteration``'s CloudTrail events were read (``complete``: the watermark arrived)."""

    kind: ClassVar[str] = "trail_read"
    iteration: int
    session: str
    events: int
    used: int
    complete: bool
    waited_s: float


@dataclass(frozen=True, slots=True)
class PredictionsDropped:
    """Predictions no run used: not in the policy."""

    kind: ClassVar[str] = "dropped"
    grants: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class RemovalTest:
    """Run ``iteration`` deploys without ``grant``: a denial of it proves it is needed."""

    kind: ClassVar[str] = "removal_test"
    iteration: int
    grant: Evidence


@dataclass(frozen=True, slots=True)
class FenceDrawn:
    """The service's fence as the grant decision sees it now (``fence.Fence.describe``)."""

    kind: ClassVar[str] = "fence"
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GrantsDecided:
    """The grant decision on a batch of planned grants (``gate``): one record per grant."""

    kind: ClassVar[str] = "grant_decisions"
    decisions: tuple[Mapping[str, Any], ...]


Event = (
    Started
    | Backup
    | Resumed
    | PhaseStarted
    | PolicyApplied
    | RunStarted
    | RunFinished
    | DenialsFound
    | GrantPlanned
    | Granted
    | ServiceRoleGranted
    | PropagationWait
    | SessionRenewed
    | Stopped
    | Approved
    | Refused
    | Proposed
    | AppliedOutOfBand
    | ProposalMissing
    | Predicted
    | TrailRead
    | PredictionsDropped
    | RemovalTest
    | FenceDrawn
    | GrantsDecided
)

EVENT_TYPES: tuple[type[Event], ...] = (
    Started,
    Backup,
    Resumed,
    PhaseStarted,
    PolicyApplied,
    RunStarted,
    RunFinished,
    DenialsFound,
    GrantPlanned,
    Granted,
    ServiceRoleGranted,
    PropagationWait,
    SessionRenewed,
    Stopped,
    Approved,
    Refused,
    Proposed,
    AppliedOutOfBand,
    ProposalMissing,
    Predicted,
    TrailRead,
    PredictionsDropped,
    RemovalTest,
    FenceDrawn,
    GrantsDecided,
)
_BY_KIND: dict[str, type[Event]] = {t.kind: t for t in EVENT_TYPES}


# --- sinks that only route ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast:
    """An ``EventSink`` that hands every event to each of its sinks, in order."""

    sinks: tuple[Any, ...] = field(default_factory=tuple)

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)


# --- encoding -------------------------------------------------------------------------------


def denial_record(denial: Denial) -> dict[str, object]:
    """A denial as JSON (the journal's, and ``discover parse``'s core fields)."""
    record: dict[str, object] = {
        "action": denial.action,
        "resource": denial.resource,
        "principal": denial.principal,
        "reason": denial.reason.value,
        "source": denial.source,
        "message": denial.message,
    }
    for name in ("encoded", "logical_id", "resource_type", "physical_id", "basis"):
        value = getattr(denial, name)
        if value is not None:
            record[name] = value
    return record


def denial_from_record(raw: Mapping[str, Any]) -> Denial:
    return Denial(
        action=raw.get("action"),
        resource=raw.get("resource"),
        principal=raw.get("principal"),
        reason=Reason(raw["reason"]),
        source=str(raw.get("source", "")),
        message=str(raw.get("message", "")),
        encoded=raw.get("encoded"),
        logical_id=raw.get("logical_id"),
        resource_type=raw.get("resource_type"),
        physical_id=raw.get("physical_id"),
        basis=raw.get("basis"),
    )


def _evidence_record(evidence: Evidence) -> dict[str, object]:
    return {
        "action": evidence.grant.action,
        "resource": evidence.grant.resource,
        "condition": [list(c) for c in evidence.grant.condition],
        "note": evidence.note,
        "iteration": evidence.iteration,
        "denial": denial_record(evidence.denial),
    }


def _evidence_from_record(raw: Mapping[str, Any], iteration: int) -> Evidence:
    grant = Grant(
        Action(raw["action"]),
        raw["resource"],
        tuple((c[0], c[1], tuple(c[2])) for c in raw.get("condition", [])),
    )
    number = int(raw.get("iteration", iteration))
    return Evidence(grant, denial_from_record(raw["denial"]), number, str(raw.get("note", "")))


def _encode_value(value: object) -> object:  # noqa: PLR0911 - one return per type
    if isinstance(value, PolicyDocument):
        return value.to_dict()
    if isinstance(value, Denial):
        return denial_record(value)
    if isinstance(value, Evidence):
        return _evidence_record(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return value


def encode(event: Event) -> dict[str, object]:
    """The event as a JSON-ready record: ``{"event": KIND, **fields}``."""
    record: dict[str, object] = {"event": event.kind}
    for item in dataclasses.fields(event):
        record[item.name] = _encode_value(getattr(event, item.name))
    return record


def _decode_value(hint: Any, raw: Any, iteration: int) -> Any:  # noqa: PLR0911 - one per type
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        if raw is None:
            return None
        (inner,) = [a for a in get_args(hint) if a is not type(None)]
        return _decode_value(inner, raw, iteration)
    if origin is tuple:
        return tuple(_decode_value(get_args(hint)[0], v, iteration) for v in raw or ())
    if hint is PolicyDocument:
        return PolicyDocument.from_dict(raw)
    if hint is Denial:
        return denial_from_record(raw)
    if hint is Evidence:
        return _evidence_from_record(raw, iteration)
    if origin is not None and issubclass(origin, Mapping):
        return dict(raw or {})
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(raw)
    if hint in (int, float, str, bool):
        return hint(raw)
    return raw


def decode(record: Mapping[str, Any]) -> Event | None:
    """The event a record holds; None for a kind this version does not know.

    Raises ``ValueError`` (or ``KeyError``/``TypeError``) for a record of a known kind that is
    malformed; the journal skips such a line as it skips a torn one.
    """
    cls = _BY_KIND.get(str(record.get("event")))
    if cls is None:
        return None
    hints = _hints(cls)
    iteration = int(record.get("iteration", 0) or 0)
    values = {}
    for item in dataclasses.fields(cls):
        if item.name in record:
            values[item.name] = _decode_value(hints[item.name], record[item.name], iteration)
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            msg = f"{cls.kind} event without {item.name}"
            raise ValueError(msg)
    event: Event = cls(**values)
    return event


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


# --- reading a run back -------------------------------------------------------------------

_POLICY_EVENTS = (PolicyApplied, GrantPlanned, Granted)


def last_policy(events: Iterable[Event]) -> PolicyDocument:
    """The policy the role was last given (or was being given when the run died).

    The one rule, for the report, ``--resume`` and the outputs of a run that failed: the last
    ``PolicyApplied``, ``GrantPlanned`` or ``Granted``. A planned policy counts: it is written
    before the apply and carries its evidence, so what may be on the role is never missing.
    """
    policy = PolicyDocument()
    for event in events:
        if isinstance(event, _POLICY_EVENTS):
            policy = event.policy
    return policy


def last_service_role_policy(events: Iterable[Event]) -> PolicyDocument | None:
    """The policy the CloudFormation service role was last given (None: no service role)."""
    policy: PolicyDocument | None = None
    for event in events:
        if isinstance(event, ServiceRoleGranted):
            policy = event.policy
    return policy


def evidence_of(events: Iterable[Event]) -> tuple[Evidence, ...]:
    """The evidence of every grant the run planned or made, once each, in order."""
    found: dict[tuple[Grant, int], Evidence] = {}
    for event in events:
        if isinstance(event, GrantPlanned | Granted):
            for item in event.grants:
                found.setdefault((item.grant, item.iteration), item)
    return tuple(found.values())


def step_of_runs(events: Iterable[Event]) -> dict[int, PhaseStarted]:
    """The step each run belonged to (runs of a journal without phases belong to none)."""
    found: dict[int, PhaseStarted] = {}
    current: PhaseStarted | None = None
    for event in events:
        if isinstance(event, PhaseStarted):
            current = event
        elif isinstance(event, RunStarted) and current is not None:
            found[event.iteration] = current
    return found


def last_stop(events: Sequence[Event]) -> Stopped | None:
    return next((e for e in reversed(events) if isinstance(e, Stopped)), None)


def first_start(events: Sequence[Event]) -> Started | None:
    return next((e for e in events if isinstance(e, Started)), None)


__all__ = [
    "EVENT_TYPES",
    "AppliedOutOfBand",
    "Approved",
    "Backup",
    "Broadcast",
    "DenialsFound",
    "Event",
    "Evidence",
    "GrantPlanned",
    "Granted",
    "PhaseStarted",
    "PolicyApplied",
    "Predicted",
    "PredictionsDropped",
    "PropagationWait",
    "ProposalMissing",
    "Proposed",
    "Refused",
    "RemovalTest",
    "Resumed",
    "RunFinished",
    "RunStarted",
    "ServiceRoleGranted",
    "SessionRenewed",
    "Started",
    "StopReason",
    "Stopped",
    "TrailRead",
    "decode",
    "denial_from_record",
    "denial_record",
    "encode",
    "evidence_of",
    "last_policy",
    "last_service_role_policy",
    "last_stop",
]
