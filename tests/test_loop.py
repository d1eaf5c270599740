"""The discovery loop, driven through its Protocols by fakes, with a real journal on disk."""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discover import iamdb
from discover.credentials import Credentials
from discover.denials import Denial, Reason
from discover.errors import DiscoverError
from discover.iamdb import Action
from discover.journal import Journal, read_events, read_journal
from discover.known_messages import Target
from discover.loop import (
    Evidence,
    LoopSettings,
    Outcome,
    StopReason,
    collect_denials,
    discover,
    judge,
    plan_grants,
    resume_state,
)
from discover.policy import Grant, PolicyDocument
from discover.ports import DeployResult
from discover.run_events import Started, decode, evidence_of

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sandbox"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/sandbox/discover-20240501T120000"
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

STACK = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/*"
BUCKET = "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-1a2b3c4d5e6f"
ARTIFACT = f"{BUCKET}/serverless/demo/dev/1714564800000-2024-05-01T12:00:00.000Z/demo.zip"
LAMBDA_ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-dev-us-east-1-lambdaRole"
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-hello"

BECAUSE_NO_ALLOW = "because no identity-based policy allows the {action} action"


def denied(
    action: str,
    resource: str | None = None,
    *,
    principal: str | None = SESSION,
    because: str = BECAUSE_NO_ALLOW,
) -> str:
    """AWS's message for a refused call, as a CLI prints it."""
    who = f"User: {principal} " if principal else ""
    on = f" on resource: {resource}" if resource else ""
    why = " " + because.format(action=action) if because else ""
    return f"{who}is not authorized to perform: {action}{on}{why}"


def failed(*lines: str, returncode: int = 1) -> DeployResult:
    output = "\n".join(["Deploying demo to stage dev (us-east-1)", *lines, "Error: deploy failed"])
    return DeployResult(
        returncode=returncode, output=output + "\n", duration_s=1.0, timed_out=False
    )


def succeeded() -> DeployResult:
    return DeployResult(
        returncode=0, output="Service deployed to stack demo-dev\n", duration_s=1.0, timed_out=False
    )


def timed_out() -> DeployResult:
    return DeployResult(returncode=-15, output="Deploying...\n", duration_s=2.0, timed_out=True)


# --- fakes ----------------------------------------------------------------------------------


@dataclass
class FakeSandbox:
    """Records every policy applied; serves scripted stack events (by run) and locations."""

    role_arn: str = ROLE
    events_by_run: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    locations: dict[Target, str | None] = field(default_factory=dict)
    applied: list[PolicyDocument] = field(default_factory=list)
    prepared: int = 0
    located: list[Target] = field(default_factory=list)
    decoded: dict[str, str] = field(default_factory=dict)  # blob -> decoded JSON (else refused)

    def prepare(self) -> None:
        self.prepared += 1

    def apply_policy(self, policy: PolicyDocument) -> None:
        self.applied.append(policy)

    def stack_events_since(self, since: datetime) -> tuple[dict[str, object], ...]:
        return tuple(self.events_by_run.get(self.prepared, []))

    def locate(self, target: Target) -> str | None:
        self.located.append(target)
        return self.locations.get(target)

    def decode_authorization_message(self, encoded: str) -> str | None:
        return self.decoded.get(encoded)

    def change_set_reasons_since(self, since: datetime) -> tuple[str, ...]:
        return ()

    @property
    def policy(self) -> PolicyDocument:
        return self.applied[-1] if self.applied else PolicyDocument()


@dataclass
class FakeSessions:
    """Hands out numbered sessions; counts ``current`` and ``renew`` calls."""

    generation: int = 1
    current_calls: int = 0
    renew_calls: int = 0

    def _session(self) -> Credentials:
        return Credentials(
            f"ASIA{self.generation}",
            "secret",
            f"token-{self.generation}",
            T0 + timedelta(hours=1),
            arn=SESSION,
        )

    def current(self) -> Credentials:
        self.current_calls += 1
        return self._session()

    def renew(self) -> Credentials:
        self.renew_calls += 1
        self.generation += 1
        return self._session()


@dataclass
class ScriptedDeployer:
    """Returns (or raises) the scripted results in order, recording what it was called with."""

    script: list[DeployResult | BaseException]
    calls: list[tuple[int, str]] = field(default_factory=list)

    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
        self.calls.append((iteration, credentials.access_key_id))
        if not self.script:
            pytest.fail(f"deploy called more often than scripted (iteration {iteration})")
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


@dataclass
class PolicyDeployer:
    """A deploy that needs ``needs``: denied the first one the sandbox's policy lacks."""

    sandbox: FakeSandbox
    needs: Sequence[tuple[str, str | None]]
    calls: list[int] = field(default_factory=list)

    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
        self.calls.append(iteration)
        for action, resource in self.needs:
            if not self.sandbox.policy.allows(action, resource or "*"):
                return failed(denied(action, resource))
        return succeeded()


class Clock:
    """``now`` for the loop: a minute later on every call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return T0 + timedelta(minutes=self.calls)


@dataclass
class Run:
    outcome: Outcome
    sandbox: FakeSandbox
    sessions: FakeSessions
    sleeps: list[float]
    journal: Path

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(read_journal(self.journal))

    @property
    def granted_actions(self) -> set[str]:
        return {g.action for g in self.outcome.policy.grants}


def run_loop(
    tmp_path: Path,
    deployer: Any,
    sandbox: FakeSandbox | None = None,
    *,
    max_iterations: int = 10,
    waits: tuple[float, ...] = (),
    sessions: FakeSessions | None = None,
    **settings: Any,
) -> Run:
    sandbox = sandbox if sandbox is not None else FakeSandbox()
    sessions = sessions if sessions is not None else FakeSessions()
    sleeps: list[float] = []
    journal = Journal(tmp_path / ".discover" / "journal.jsonl")
    outcome = discover(
        deployer,
        sandbox,
        sessions,
        journal,
        LoopSettings(
            max_iterations=max_iterations,
            propagation_waits_s=waits,
            session_arn=SESSION,
            **settings,
        ),
        sleep=sleeps.append,
        now=Clock(),
    )
    return Run(outcome, sandbox, sessions, sleeps, journal.path)


# --- the loop, end to end over fakes --------------------------------------------------------


def test_converges_growing_the_policy_one_run_at_a_time(tmp_path: Path) -> None:
    """Each denial is granted and applied before the next run; the deploy then succeeds."""
    sandbox = FakeSandbox()
    needs = [
        ("cloudformation:ValidateTemplate", None),
        ("cloudformation:CreateChangeSet", STACK),
        ("s3:PutObject", ARTIFACT),
        ("lambda:CreateFunction", FUNCTION),
    ]
    deployer = PolicyDeployer(sandbox, needs)
    run = run_loop(tmp_path, deployer, sandbox)

    assert run.outcome.reason is StopReason.SUCCEEDED
    assert run.outcome.reason.exit_code == 0
    assert deployer.calls == [1, 2, 3, 4, 5]
    assert sandbox.prepared == 5  # the stack is made deployable before every run
    assert [len(p.grants) for p in sandbox.applied] == [0, 1, 2, 3, 4]
    for before, after in zip(sandbox.applied, sandbox.applied[1:], strict=False):
        assert before.grants < after.grants
    assert run.outcome.policy == sandbox.applied[-1]
    assert run.granted_actions == {a for a, _ in needs}
    assert all(run.outcome.policy.allows(a, r or "*") for a, r in needs)
    assert [it.number for it in run.outcome.iterations] == [1, 2, 3, 4, 5]
    assert run.sleeps == []
    assert run.events[-1]["event"] == "stopped"
    assert run.events[-1]["reason"] == "succeeded"
    assert [e["event"] for e in run.events].count("granted") == 4


def test_granted_resources_are_scoped_not_wildcards(tmp_path: Path) -> None:
    """A denial on a deploy-specific ARN is granted on its stable pattern, never on ``*``."""
    sandbox = FakeSandbox()
    run = run_loop(tmp_path, PolicyDeployer(sandbox, [("s3:PutObject", ARTIFACT)]), sandbox)
    (grant,) = run.outcome.policy.grants
    assert grant.action == "s3:PutObject"
    assert grant.resource != "*"
    assert grant.resource.startswith("arn:aws:s3:::demo-dev-serverlessdeploymentbucket-")


def test_journal_evidence_rebuilds_to_the_outcomes_evidence(tmp_path: Path) -> None:
    """``evidence_of`` reads back from the journal exactly the evidence the run had."""
    sandbox = FakeSandbox()
    needs = [("cloudformation:CreateChangeSet", STACK), ("iam:CreateRole", LAMBDA_ROLE)]
    run = run_loop(tmp_path, PolicyDeployer(sandbox, needs), sandbox)
    assert run.outcome.reason is StopReason.SUCCEEDED
    assert evidence_of(read_events(run.journal)) == run.outcome.evidence
    assert [e.iteration for e in run.outcome.evidence] == [1, 2]


def test_limit_stops_after_max_iterations(tmp_path: Path) -> None:
    """A deploy that keeps needing more stops at the limit (exit 1), with what it granted."""
    script: list[DeployResult | BaseException] = [
        failed(denied("cloudformation:CreateChangeSet", STACK)),
        failed(denied("iam:CreateRole", LAMBDA_ROLE)),
        failed(denied("lambda:CreateFunction", FUNCTION)),
    ]
    deployer = ScriptedDeployer(script)
    run = run_loop(tmp_path, deployer, max_iterations=3)
    assert run.outcome.reason is StopReason.LIMIT
    assert run.outcome.reason.exit_code == 1
    assert [n for n, _ in deployer.calls] == [1, 2, 3]
    assert run.granted_actions == {
        "cloudformation:CreateChangeSet",
        "iam:CreateRole",
        "lambda:CreateFunction",
    }
    assert run.events[-1]["reason"] == "limit"


def test_no_progress_after_propagation_waits_are_used_up(tmp_path: Path) -> None:
    """The same denial after its grant waits for IAM, each wait once; then NO_PROGRESS."""
    same = failed(denied("iam:CreateRole", LAMBDA_ROLE))
    deployer = ScriptedDeployer([same, same, same, same])
    run = run_loop(tmp_path, deployer, waits=(0.25, 0.5))
    assert run.outcome.reason is StopReason.NO_PROGRESS
    assert run.outcome.reason.exit_code == 1
    assert run.sleeps == [0.25, 0.5]
    assert len(deployer.calls) == 4
    assert len(run.sandbox.applied) == 2  # the empty policy, then the one grant
    assert [d.action for d in run.outcome.blocking] == ["iam:CreateRole"]
    waits = [e["seconds"] for e in run.events if e["event"] == "propagation_wait"]
    assert waits == [0.25, 0.5]


def test_propagation_wait_then_success(tmp_path: Path) -> None:
    """A grant IAM had not propagated yet: one wait, the next run succeeds."""
    same = failed(denied("iam:CreateRole", LAMBDA_ROLE))
    run = run_loop(tmp_path, ScriptedDeployer([same, same, succeeded()]), waits=(0.25, 0.5))
    assert run.outcome.reason is StopReason.SUCCEEDED
    assert run.sleeps == [0.25]


def test_waits_start_over_after_a_new_grant(tmp_path: Path) -> None:
    """Each new grant gets the full series of propagation waits again."""
    a = failed(denied("iam:CreateRole", LAMBDA_ROLE))
    b = failed(denied("lambda:CreateFunction", FUNCTION))
    run = run_loop(tmp_path, ScriptedDeployer([a, a, b, b, succeeded()]), waits=(0.25, 0.5))
    assert run.outcome.reason is StopReason.SUCCEEDED
    assert run.sleeps == [0.25, 0.25]


UNFIXABLE_BECAUSE = [
    (
        "explicit deny, identity policy",
        "with an explicit deny in an identity-based policy",
        Reason.EXPLICIT_DENY_IDENTITY,
    ),
    (
        "explicit deny, SCP",
        "with an explicit deny in a service control policy",
        Reason.EXPLICIT_DENY_SCP,
    ),
    (
        "explicit deny, boundary",
        "with an explicit deny in a permissions boundary",
        Reason.EXPLICIT_DENY_BOUNDARY,
    ),
    (
        "explicit deny, resource policy",
        "with an explicit deny in a resource-based policy",
        Reason.EXPLICIT_DENY_RESOURCE,
    ),
    (
        "no boundary allows",
        "because no permissions boundary allows the {action} action",
        Reason.NO_BOUNDARY,
    ),
    (
        "no session policy allows",
        "because no session policy allows the {action} action",
        Reason.NO_SESSION_POLICY,
    ),
]


@pytest.mark.parametrize(("name", "because", "reason"), UNFIXABLE_BECAUSE)
def test_unfixable_denial_stops_without_granting(
    tmp_path: Path, name: str, because: str, reason: Reason
) -> None:
    """A denial no Allow can fix stops the loop (exit 3) and grants nothing, not even the
    fixable denial beside it."""
    result = failed(
        denied("iam:CreateRole", LAMBDA_ROLE, because=because),
        denied("lambda:CreateFunction", FUNCTION),
    )
    run = run_loop(tmp_path, ScriptedDeployer([result]))
    assert run.outcome.reason is StopReason.UNFIXABLE, name
    assert run.outcome.reason.exit_code == 3
    assert run.outcome.policy.grants == frozenset()
    assert run.sandbox.applied == [PolicyDocument()]
    assert [(d.action, d.reason) for d in run.outcome.blocking] == [("iam:CreateRole", reason)]


def test_deploy_failure_without_a_denial(tmp_path: Path) -> None:
    """A failure that is not about permissions stops with DEPLOY_FAILED (exit 4)."""
    result = failed("Error: Stack:arn:... is in ROLLBACK_COMPLETE state and can not be updated.")
    run = run_loop(tmp_path, ScriptedDeployer([result]))
    assert run.outcome.reason is StopReason.DEPLOY_FAILED
    assert run.outcome.reason.exit_code == 4
    assert run.outcome.policy.grants == frozenset()
    assert run.outcome.iterations[-1].result is result


def test_timed_out_run_stops(tmp_path: Path) -> None:
    """A run that hit the timeout is a failed deploy (exit 4), said to have timed out."""
    run = run_loop(tmp_path, ScriptedDeployer([timed_out()]))
    assert run.outcome.reason is StopReason.DEPLOY_FAILED
    assert run.outcome.reason.exit_code == 4
    assert "timed out" in run.outcome.detail
    assert run.events[-1]["event"] == "stopped"


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("an action IAM does not have", denied("madeup:DoThing", "arn:aws:madeup:::thing")),
        (
            "a wildcard inside a resource name",
            denied("s3:GetObject", "arn:aws:s3:::demo-*/serverless/x.zip"),
        ),
        ("a wildcard bucket", denied("s3:ListBucket", "arn:aws:s3:::*")),
        (
            "a bare S3 Access Denied",
            "An error occurred (AccessDenied) when calling the X operation: Access Denied",
        ),
    ],
)
def test_unresolved_denial_grants_nothing(tmp_path: Path, name: str, line: str) -> None:
    """Denied, but the text does not say what to grant: UNRESOLVED (exit 1), nothing granted."""
    run = run_loop(tmp_path, ScriptedDeployer([failed(line)]))
    assert run.outcome.reason is StopReason.UNRESOLVED, name
    assert run.outcome.reason.exit_code == 1
    assert run.outcome.policy.grants == frozenset()
    assert run.sandbox.applied == [PolicyDocument()]
    assert run.outcome.blocking


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("wildcard action on *", "x is not authorized to perform: iam:* on resource: *"),
        ("wildcard action, own session", denied("iam:*", "*")),
        ("all actions", denied("*", "*")),
        ("wildcard service", denied("*:PassRole", LAMBDA_ROLE)),
        ("partial wildcard", denied("iam:Pass*", LAMBDA_ROLE)),
        ("question mark", denied("iam:PassRol?", LAMBDA_ROLE)),
    ],
)
def test_adversarial_wildcards_grant_nothing(tmp_path: Path, name: str, line: str) -> None:
    """Text that asks for a wildcard action never gets anything granted."""
    run = run_loop(tmp_path, ScriptedDeployer([failed(line)]))
    assert run.outcome.reason is not StopReason.SUCCEEDED, name
    assert run.outcome.policy.grants == frozenset()
    assert run.sandbox.applied == [PolicyDocument()]
    assert all("*" not in (d.action or "") for it in run.outcome.iterations for d in it.denials)


def test_foreign_principal_is_never_granted(tmp_path: Path) -> None:
    """Another principal's denial is reported, not granted; the run's own denial is granted."""
    result = failed(
        denied("s3:DeleteBucket", BUCKET, principal=ADMIN),
        denied("iam:CreateRole", LAMBDA_ROLE),
    )
    run = run_loop(tmp_path, ScriptedDeployer([result, succeeded()]))
    assert run.outcome.reason is StopReason.SUCCEEDED
    assert run.granted_actions == {"iam:CreateRole"}
    first = run.outcome.iterations[0]
    assert "s3:DeleteBucket" in {d.action for d in first.denials}


def test_only_foreign_denials_stop_at_once(tmp_path: Path) -> None:
    """When every denial is another principal's, nothing is granted and no propagation wait
    is spent on it: no grant on the sandbox role can help."""
    result = failed(denied("s3:DeleteBucket", BUCKET, principal=ADMIN))
    run = run_loop(tmp_path, ScriptedDeployer([result]), waits=(0.25, 0.5))
    assert run.outcome.reason is StopReason.UNRESOLVED
    assert run.sleeps == []
    assert run.outcome.policy.grants == frozenset()
    assert [d.principal for d in run.outcome.blocking] == [ADMIN]


def test_denial_without_a_principal_is_the_runs_own(tmp_path: Path) -> None:
    """A message that names no principal (many CLIs trim it) is taken as this run's."""
    result = failed(denied("lambda:CreateFunction", FUNCTION, principal=None, because=""))
    run = run_loop(tmp_path, ScriptedDeployer([result, succeeded()]))
    assert run.outcome.reason is StopReason.SUCCEEDED
    assert run.granted_actions == {"lambda:CreateFunction"}


def test_expired_token_renews_the_session_and_runs_again(tmp_path: Path) -> None:
    """ExpiredToken is not a denial: the session is renewed, the same iteration re-runs with
    the new session, and nothing is granted for it."""
    expired = failed(
        "An error occurred (ExpiredToken) when calling the DescribeStacks operation: "
        "The security token included in the request is expired"
    )
    deployer = ScriptedDeployer([expired, succeeded()])
    run = run_loop(tmp_path, deployer)
    assert run.outcome.reason is StopReason.SUCCEEDED
    assert run.sessions.renew_calls == 1
    assert run.sessions.current_calls == 2
    assert deployer.calls == [(1, "ASIA1"), (1, "ASIA2")]
    assert run.outcome.policy.grants == frozenset()
    assert run.sandbox.applied == [PolicyDocument()]
    assert "session_expired" in [e["event"] for e in run.events]


def test_expired_token_that_keeps_coming_back_is_not_retried_forever(tmp_path: Path) -> None:
    """After two renewals the run is judged like any other failure."""
    expired = failed("ExpiredToken: The security token included in the request is expired")
    deployer = ScriptedDeployer([expired, expired, expired])
    run = run_loop(tmp_path, deployer)
    assert run.sessions.renew_calls == 2
    assert len(deployer.calls) == 3
    assert run.outcome.reason is StopReason.DEPLOY_FAILED


def test_keyboard_interrupt_stops_with_state_saved(tmp_path: Path) -> None:
    """Ctrl-C during a deploy: INTERRUPTED (130), the grants so far kept, the journal closed
    with a ``stopped`` event."""
    deployer = ScriptedDeployer(
        [failed(denied("iam:CreateRole", LAMBDA_ROLE)), KeyboardInterrupt()]
    )
    run = run_loop(tmp_path, deployer)
    assert run.outcome.reason is StopReason.INTERRUPTED
    assert run.outcome.reason.exit_code == 130
    assert run.granted_actions == {"iam:CreateRole"}
    assert run.events[-1]["event"] == "stopped"
    assert run.events[-1]["reason"] == "interrupted"


def test_stack_event_denials_are_granted(tmp_path: Path) -> None:
    """A resource CloudFormation failed to create for want of a permission is granted; an
    event from before the run is not."""
    reason = denied("iam:CreateRole", LAMBDA_ROLE)
    old = denied("lambda:CreateFunction", FUNCTION)
    sandbox = FakeSandbox(
        events_by_run={
            1: [
                {
                    "LogicalResourceId": "IamRoleLambdaExecution",
                    "ResourceType": "AWS::IAM::Role",
                    "ResourceStatus": "CREATE_FAILED",
                    "ResourceStatusReason": f'Resource handler returned message: "{reason}"',
                    "Timestamp": T0 + timedelta(minutes=1, seconds=20),
                },
                {
                    "LogicalResourceId": "HelloLambdaFunction",
                    "ResourceType": "AWS::Lambda::Function",
                    "ResourceStatus": "CREATE_FAILED",
                    "ResourceStatusReason": old,
                    "Timestamp": T0 - timedelta(days=1),
                },
            ]
        }
    )
    stack_failed = failed("Error: CREATE_FAILED: IamRoleLambdaExecution (AWS::IAM::Role)")
    run = run_loop(tmp_path, ScriptedDeployer([stack_failed, succeeded()]), sandbox)
    assert run.outcome.reason is StopReason.SUCCEEDED
    assert run.granted_actions == {"iam:CreateRole"}
    (evidence,) = run.outcome.evidence
    assert evidence.denial.source == "stack-event"


BUCKET_MESSAGE = (
    "Could not access the deployment bucket. Make sure you have sufficient permissions to "
    "access it."
)
OBJECTS_MESSAGE = (
    "Could not access objects in the deployment bucket. Make sure you have sufficient "
    "permissions to access it."
)


@pytest.mark.parametrize(
    ("name", "message", "action", "probe"),
    [
        ("head bucket", BUCKET_MESSAGE, "s3:ListBucket", BUCKET),
        ("head object", OBJECTS_MESSAGE, "s3:GetObject", f"{BUCKET}/serverless/demo/dev/x.zip"),
    ],
)
def test_known_cli_message_is_granted_on_the_located_bucket(
    tmp_path: Path, name: str, message: str, action: str, probe: str
) -> None:
    """A CLI sentence that names no action is mapped to its call, on the bucket the sandbox
    locates."""
    sandbox = FakeSandbox(
        locations={Target.DEPLOYMENT_BUCKET: BUCKET, Target.DEPLOYMENT_OBJECTS: BUCKET}
    )
    run = run_loop(tmp_path, ScriptedDeployer([failed(message), succeeded()]), sandbox)
    assert run.outcome.reason is StopReason.SUCCEEDED, name
    assert run.granted_actions == {action}
    assert run.outcome.policy.allows(action, probe)
    assert not run.outcome.policy.allows(action, "arn:aws:s3:::someone-elses-bucket/x")
    (evidence,) = run.outcome.evidence
    assert evidence.denial.source.startswith("cli-message")


def test_known_message_is_ignored_when_a_real_denial_is_there(tmp_path: Path) -> None:
    """The CLI's vague sentence is a fallback: a denial AWS spelled out is used instead."""
    sandbox = FakeSandbox(locations={Target.DEPLOYMENT_BUCKET: BUCKET})
    result = failed(BUCKET_MESSAGE, denied("s3:ListBucket", BUCKET))
    denials = collect_denials(result, sandbox, T0)
    assert [d.source for d in denials] == ["output"]
    assert sandbox.located == []


def test_resumed_loop_starts_from_the_given_policy_and_number(tmp_path: Path) -> None:
    """``initial_policy`` and ``first_iteration`` continue a run: first apply, then numbers."""
    start = PolicyDocument(frozenset({Grant(Action("iam:CreateRole"), LAMBDA_ROLE)}))
    deployer = ScriptedDeployer([failed(denied("lambda:CreateFunction", FUNCTION)), succeeded()])
    run = run_loop(tmp_path, deployer, initial_policy=start, first_iteration=4, max_iterations=2)
    assert run.outcome.reason is StopReason.SUCCEEDED
    assert [n for n, _ in deployer.calls] == [4, 5]
    assert run.sandbox.applied[0] == start
    assert run.granted_actions == {"iam:CreateRole", "lambda:CreateFunction"}


# --- the pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "principal", "owned"),
    [
        ("no principal: not foreign (the grant decision weighs it)", None, True),
        ("this run's session", SESSION, True),
        (
            "another session of the role",
            f"arn:aws:sts::{ACCOUNT}:assumed-role/sandbox/other",
            False,
        ),
        ("this session with a suffix", SESSION + ":x/ops", False),
        ("the role itself", ROLE, False),
        ("an IAM user", ADMIN, False),
    ],
)
def test_only_this_runs_session_is_not_foreign(
    name: str, principal: str | None, owned: bool
) -> None:
    """plan_grants keeps the denials of this run's exact session and principal-less ones."""
    denial = make_denial("lambda:CreateFunction", FUNCTION, principal=principal)
    planned, _, _ = plan_grants([denial], ROLE, PolicyDocument(), 1, session=SESSION)
    assert bool(planned) is owned, name


def make_denial(
    action: str | None,
    resource: str | None = None,
    *,
    principal: str | None = SESSION,
    reason: Reason = Reason.NO_IDENTITY_POLICY,
) -> Denial:
    return Denial(action, resource, principal, reason, "output", f"denied {action}")


@pytest.mark.parametrize(
    ("name", "denial", "expected"),
    [
        ("a fixable denial", make_denial("iam:CreateRole", LAMBDA_ROLE), "grant"),
        ("no resource: *", make_denial("cloudformation:ValidateTemplate"), "grant"),
        (
            "explicit deny",
            make_denial("iam:CreateRole", LAMBDA_ROLE, reason=Reason.EXPLICIT_DENY_SCP),
            "unfixable",
        ),
        ("encoded message, not decoded", make_denial(None, reason=Reason.ENCODED), "unresolved"),
        ("no action named", make_denial(None, reason=Reason.S3_OPAQUE), "unresolved"),
        ("unknown action", make_denial("madeup:DoThing"), "unresolved"),
        ("action in the wrong case", make_denial("IAM:createrole", LAMBDA_ROLE), "unresolved"),
        (
            "wildcard in the resource",
            make_denial("s3:GetObject", "arn:aws:s3:::b*/k"),
            "unresolved",
        ),
        (
            "already granted",
            make_denial("iam:CreateRole", "arn:aws:iam::111122223333:role/old"),
            "nothing",
        ),
        (
            "another principal",
            make_denial("iam:CreateRole", LAMBDA_ROLE, principal=ADMIN),
            "nothing",
        ),
        (
            "another principal's explicit deny",
            make_denial(
                "iam:CreateRole", LAMBDA_ROLE, principal=ADMIN, reason=Reason.EXPLICIT_DENY_SCP
            ),
            "nothing",
        ),
    ],
)
def test_plan_grants(name: str, denial: Denial, expected: str) -> None:
    """Each denial is a new grant, unfixable, unresolved, or nothing to do."""
    policy = PolicyDocument(
        frozenset({Grant(Action("iam:CreateRole"), "arn:aws:iam::111122223333:role/old")})
    )
    grants, unfixable, unresolved = plan_grants([denial], ROLE, policy, 7, session=SESSION)
    kinds = {
        "grant": (len(grants), 0, 0),
        "unfixable": (0, 1, 0),
        "unresolved": (0, 0, 1),
        "nothing": (0, 0, 0),
    }
    assert (len(grants), len(unfixable), len(unresolved)) == kinds[expected], name
    for evidence in grants:
        assert evidence.denial is denial
        assert evidence.iteration == 7
        assert evidence.grant.action == denial.action


def evidence_for(denial: Denial) -> Evidence:
    assert denial.action is not None
    return Evidence(Grant(Action(denial.action), "*"), denial, 1, "test")


FIXABLE = make_denial("iam:CreateRole", LAMBDA_ROLE)
UNFIXABLE = make_denial("iam:CreateRole", LAMBDA_ROLE, reason=Reason.EXPLICIT_DENY_SCP)
UNKNOWN = make_denial("madeup:DoThing")
FOREIGN = make_denial("s3:DeleteBucket", BUCKET, principal=ADMIN)


@pytest.mark.parametrize(
    (
        "name",
        "denials",
        "evidence",
        "unfixable",
        "unresolved",
        "foreign",
        "can_wait",
        "stop",
        "wait",
    ),
    [
        (
            "unfixable wins over grants",
            (UNFIXABLE, FIXABLE),
            [evidence_for(FIXABLE)],
            [UNFIXABLE],
            [],
            [],
            True,
            StopReason.UNFIXABLE,
            False,
        ),
        ("grants go on", (FIXABLE,), [evidence_for(FIXABLE)], [], [], [], True, None, False),
        (
            "grants go on beside an unresolved one",
            (FIXABLE, UNKNOWN),
            [evidence_for(FIXABLE)],
            [],
            [UNKNOWN],
            [],
            True,
            None,
            False,
        ),
        ("only unresolved", (UNKNOWN,), [], [], [UNKNOWN], [], True, StopReason.UNRESOLVED, False),
        ("no denial at all", (), [], [], [], [], True, StopReason.DEPLOY_FAILED, False),
        ("granted already: wait", (FIXABLE,), [], [], [], [], True, None, True),
        (
            "granted already, waits used up",
            (FIXABLE,),
            [],
            [],
            [],
            [],
            False,
            StopReason.NO_PROGRESS,
            False,
        ),
        (
            "only foreign denials",
            (FOREIGN,),
            [],
            [],
            [],
            [FOREIGN],
            True,
            StopReason.UNRESOLVED,
            False,
        ),
    ],
)
def test_judge(  # noqa: PLR0917 - one argument per column of the table
    name: str,
    denials: tuple[Denial, ...],
    evidence: list[Evidence],
    unfixable: list[Denial],
    unresolved: list[Denial],
    foreign: list[Denial],
    can_wait: bool,
    stop: StopReason | None,
    wait: bool,
) -> None:
    """What a failed run's denials mean: stop (and why), wait for IAM, or grant and go on."""
    verdict = judge(denials, evidence, unfixable, unresolved, can_wait=can_wait, foreign=foreign)
    assert (verdict.stop, verdict.wait) == (stop, wait), name


@pytest.mark.parametrize(
    ("name", "reason", "code"),
    [
        ("succeeded", StopReason.SUCCEEDED, 0),
        ("limit", StopReason.LIMIT, 1),
        ("no progress", StopReason.NO_PROGRESS, 1),
        ("unresolved", StopReason.UNRESOLVED, 1),
        ("unfixable", StopReason.UNFIXABLE, 3),
        ("refused", StopReason.REFUSED, 3),
        ("deploy failed", StopReason.DEPLOY_FAILED, 4),
        ("interrupted", StopReason.INTERRUPTED, 130),
    ],
)
def test_exit_codes(name: str, reason: StopReason, code: int) -> None:
    """Each stop reason maps to the documented exit code."""
    assert reason.exit_code == code, name


def test_every_stop_reason_has_an_exit_code() -> None:
    """No stop reason is left without an exit code."""
    for reason in StopReason:
        assert isinstance(reason.exit_code, int)


def test_refused_grant_stops_before_it_is_applied(tmp_path: Path) -> None:
    """A grant the ``refuse`` hook rejects (high risk, unconfirmed) is never applied: REFUSED,
    exit 3, the denial named as the blocker."""
    sandbox = FakeSandbox()
    sleeps: list[float] = []
    journal = Journal(tmp_path / "journal.jsonl")
    outcome = discover(
        ScriptedDeployer([failed(denied("iam:PassRole", LAMBDA_ROLE))]),
        sandbox,
        FakeSessions(),
        journal,
        LoopSettings(propagation_waits_s=(), session_arn=SESSION),
        sleep=sleeps.append,
        now=Clock(),
        refuse=lambda evidence: [e for e in evidence if e.grant.action == "iam:PassRole"],
    )
    assert outcome.reason is StopReason.REFUSED
    assert outcome.reason.exit_code == 3
    assert sandbox.applied == [PolicyDocument()]
    assert outcome.policy.grants == frozenset()
    assert [d.action for d in outcome.blocking] == ["iam:PassRole"]


def test_evidence_reads_conditions_and_skips_other_events() -> None:
    """A ``granted`` record with a condition reads back to the same grant; other events and
    their fields are ignored."""
    records: list[dict[str, Any]] = [
        {"event": "backup", "role_arn": ROLE, "backup": {"inline": {}, "attached": []}},
        {"event": "denials", "iteration": 2, "denials": []},
        {
            "event": "granted",
            "iteration": 2,
            "grants": [
                {
                    "action": "iam:PassRole",
                    "resource": LAMBDA_ROLE,
                    "condition": [
                        ["StringEquals", "iam:PassedToService", ["lambda.amazonaws.com"]]
                    ],
                    "note": "exact role ARN",
                    "denial": {
                        "action": "iam:PassRole",
                        "resource": LAMBDA_ROLE,
                        "principal": SESSION,
                        "reason": "no-identity-policy",
                        "source": "stack-event",
                        "message": "denied",
                    },
                }
            ],
            "policy": {"Version": "2012-10-17", "Statement": []},
        },
    ]
    (evidence,) = evidence_of(e for r in records if (e := decode(r)) is not None)
    assert evidence.iteration == 2
    assert evidence.grant == Grant(
        Action("iam:PassRole"),
        LAMBDA_ROLE,
        (("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),),
    )
    assert evidence.denial.reason is Reason.NO_IDENTITY_POLICY
    assert evidence.denial.source == "stack-event"
    assert evidence.note == "exact role ARN"


def test_interrupted_run_resumes_from_its_journal(tmp_path: Path) -> None:
    """``resume_state`` of an interrupted run gives its last policy and last run number."""
    deployer = ScriptedDeployer(
        [
            failed(denied("iam:CreateRole", LAMBDA_ROLE)),
            failed(denied("lambda:CreateFunction", FUNCTION)),
            KeyboardInterrupt(),
        ]
    )
    journal = Journal(tmp_path / "journal.jsonl")
    journal.emit(STARTED)
    outcome = discover(
        deployer,
        FakeSandbox(),
        FakeSessions(),
        journal,
        LoopSettings(propagation_waits_s=(), session_arn=SESSION),
        sleep=lambda _: None,
        now=Clock(),
    )
    assert outcome.reason is StopReason.INTERRUPTED
    state = resume_state(read_events(journal.path), stack_name="demo-dev")
    assert state.policy == outcome.policy
    assert state.last_iteration == 3


def started(stack_name: str) -> dict[str, Any]:
    """A journal's ``started`` record for ``stack_name``."""
    return {
        "event": "started",
        "role_arn": ROLE,
        "policy_name": "discover",
        "stack_name": stack_name,
        "region": "us-east-1",
        "stage": "dev",
        "command": ["serverless", "deploy"],
        "local": False,
        "max_iterations": 10,
    }


STARTED = decode(started("demo-dev"))
assert isinstance(STARTED, Started)


@pytest.mark.parametrize(
    ("name", "records", "fragment"),
    [
        ("empty journal", [], "no interrupted run"),
        ("no start", [{"event": "run_started", "iteration": 1}], "no interrupted run"),
        ("another stack", [started("other-dev")], "other-dev"),
        (
            "already converged",
            [started("demo-dev"), {"event": "stopped", "reason": "succeeded"}],
            "converged",
        ),
    ],
)
def test_resume_refuses_a_journal_it_cannot_continue(
    name: str, records: list[dict[str, Any]], fragment: str
) -> None:
    """Resuming needs an unfinished run of the same stack; anything else is a clear error."""
    with pytest.raises(DiscoverError) as caught:
        resume_state([e for r in records if (e := decode(r)) is not None], stack_name="demo-dev")
    assert fragment in caught.value.msg, name


# --- properties of the loop over any sequence of outputs ------------------------------------

OWN_LINES = (
    denied("iam:CreateRole", LAMBDA_ROLE),
    denied("lambda:CreateFunction", FUNCTION),
    denied("cloudformation:CreateChangeSet", STACK),
    denied("s3:PutObject", ARTIFACT, principal=None, because=""),
    denied("cloudformation:ValidateTemplate"),
)
OTHER_LINES = (
    denied("s3:DeleteBucket", BUCKET, principal=ADMIN),
    denied("iam:PassRole", LAMBDA_ROLE, because="with an explicit deny in a permissions boundary"),
    denied("madeup:DoThing", "arn:aws:madeup:::x"),
    "x is not authorized to perform: iam:* on resource: *",
    denied("iam:Pass*", "*"),
    "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied",
    "An error occurred (ExpiredToken): The security token included in the request is expired",
    BUCKET_MESSAGE,
    "Error: Stack demo-dev is in ROLLBACK_COMPLETE state and can not be updated.",
)
OWN_ACTIONS = {
    "iam:CreateRole",
    "lambda:CreateFunction",
    "cloudformation:CreateChangeSet",
    "s3:PutObject",
    "cloudformation:ValidateTemplate",
    "s3:ListBucket",  # from the known message, on the located bucket
}

run_outputs = st.lists(
    st.one_of(
        st.just(None),  # a successful run
        st.lists(st.sampled_from(OWN_LINES + OTHER_LINES), min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs=run_outputs, max_iterations=st.integers(1, 6))
def test_loop_invariants_hold_for_any_outputs(
    outputs: list[list[str] | None], max_iterations: int
) -> None:
    """Whatever the deploys print: the policy only grows, every applied grant is a real,
    non-wildcard action the run itself was denied, the journal ends with ``stopped``, and the
    exit code is a documented one."""
    script: list[DeployResult | BaseException] = [
        succeeded() if lines is None else failed(*lines) for lines in outputs
    ]
    script += [succeeded()] * 20  # the loop may re-run (ExpiredToken) more than scripted
    sandbox = FakeSandbox(locations={Target.DEPLOYMENT_BUCKET: BUCKET})
    with tempfile.TemporaryDirectory() as folder:
        run = run_loop(
            Path(folder),
            ScriptedDeployer(script),
            sandbox,
            max_iterations=max_iterations,
            waits=(0.25,),
        )
        events = run.events
    for before, after in itertools.pairwise(sandbox.applied):
        assert before.grants <= after.grants
    assert run.outcome.policy == sandbox.applied[-1]
    for grant in run.outcome.policy.grants:
        assert iamdb.is_known_action(grant.action)
        assert "*" not in grant.action
        assert grant.action in OWN_ACTIONS
    assert events[-1]["event"] == "stopped"
    assert run.outcome.reason.exit_code in {0, 1, 3, 4, 130}
    assert len(run.outcome.iterations) <= max_iterations


# --- encoded authorization failure messages -------------------------------------------------

BLOB = "Xk3Fq0S9aBcD-eFgH_iJkLmNoPqRsTuVwXyZ0123456789abcdEFGHijklMNOP"
ENCODED_LINE = (
    "An error occurred (UnauthorizedOperation) when calling the RunInstances operation: You are"
    " not authorized to perform this operation. Encoded authorization failure message: "
    f"{BLOB}"
)


def _decoded(action: str, resource: str, *, explicit: bool) -> str:
    return json.dumps(
        {
            "allowed": False,
            "explicitDeny": explicit,
            "context": {"principal": {"arn": SESSION}, "action": action, "resource": resource},
        }
    )


@pytest.mark.parametrize(
    ("name", "decoded", "reason", "granted"),
    [
        (
            "decoded implicit deny is granted",
            _decoded(
                "ec2:RunInstances",
                "arn:aws:ec2:us-east-1:123456789012:volume/vol-0abc123def4567890",
                explicit=False,
            ),
            StopReason.LIMIT,
            {"ec2:RunInstances"},
        ),
        (
            "decoded explicit deny stops as unfixable",
            _decoded(
                "ec2:RunInstances",
                "arn:aws:ec2:us-east-1:123456789012:volume/vol-0abc123def4567890",
                explicit=True,
            ),
            StopReason.UNFIXABLE,
            set(),
        ),
        ("admin may not decode: stop, nothing granted", None, StopReason.UNRESOLVED, set()),
    ],
)
def test_encoded_message_is_decoded_by_the_admin(
    tmp_path: Path, name: str, decoded: str | None, reason: StopReason, granted: set[str]
) -> None:
    """An encoded failure is decoded with sts:DecodeAuthorizationMessage (admin); its action is
    granted when the decoded reason is fixable, and the run stops when it cannot be decoded."""
    sandbox = FakeSandbox(decoded={BLOB: decoded} if decoded else {})
    deployer = ScriptedDeployer([failed(ENCODED_LINE)])
    run = run_loop(tmp_path, deployer, sandbox, max_iterations=1)
    assert run.outcome.reason is reason
    assert run.granted_actions == granted
