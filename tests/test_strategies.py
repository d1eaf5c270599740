"""The strategies, driven through their ports by a fake world with a real journal on disk."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from discover.iamdb import Action
from discover.journal import Journal, read_journal
from discover.loop import LoopSettings, discover
from discover.policy import Grant, PolicyDocument
from discover.ports import Credentials, DeployResult
from discover.predict import Prediction, Source
from discover.run_events import Evidence, StopReason
from discover.strategies import (
    FirstDenialOnly,
    PerRunSessions,
    PredictedPorts,
    PredictedSettings,
    ProofKind,
    discover_predicted,
    sort_predictions,
)
from discover.template import Resource, ServiceTemplate
from discover.trail import TrailEvent, TrailRead, event_actions

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/discover-sandbox"
STACK_ARN = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/0f1e2d3c-4b5a-4978"
BUCKET = "demo-dev-serverlessdeploymentbucket-1a2b3c4d5e6f7"
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-hello"
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-dev-us-east-1-lambdaRole"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Need:
    """One call the fake deploy makes: its CloudTrail name (None: CloudTrail cannot show it)."""

    action: str
    resource: str
    event: tuple[str, str] | None  # (eventSource, eventName)


# A small service: the CLI's stack calls and upload, a role, a function and its PassRole.
NEEDS = (
    Need(
        "cloudformation:DescribeStacks",
        STACK_ARN,
        ("cloudformation.amazonaws.com", "DescribeStacks"),
    ),
    Need(
        "cloudformation:CreateChangeSet",
        STACK_ARN,
        ("cloudformation.amazonaws.com", "CreateChangeSet"),
    ),
    Need("s3:PutObject", f"arn:aws:s3:::{BUCKET}/serverless/demo/dev/17000-x/demo.zip", None),
    Need("iam:CreateRole", EXEC_ROLE, ("iam.amazonaws.com", "CreateRole")),
    Need("lambda:CreateFunction", FUNCTION, ("lambda.amazonaws.com", "CreateFunction20150331")),
    Need("iam:PassRole", EXEC_ROLE, None),
)


@dataclass
class World:
    """The sandbox role's policy, the deploy that needs ``needs``, and what CloudTrail saw."""

    needs: tuple[Need, ...] = NEEDS
    role_arn: str = ROLE
    policy: PolicyDocument = field(default_factory=PolicyDocument)
    deleted: int = 0
    runs: int = 0
    trail: dict[str, list[TrailEvent]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    sessions: dict[str, str] = field(default_factory=dict)  # access key -> session name
    marks: int = 0

    # Sandbox
    def prepare(self) -> None:
        pass

    def apply_policy(self, policy: PolicyDocument) -> None:
        self.policy = policy

    def stack_events_since(self, since: datetime) -> tuple[dict[str, object], ...]:
        return ()

    def locate(self, target: object) -> str | None:
        return None

    def decode_authorization_message(self, encoded: str) -> str | None:
        return None

    def delete_stack(self) -> None:
        self.deleted += 1

    # Deployer
    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
        self.runs += 1
        session = self.sessions.get(credentials.access_key_id, "unknown")
        for need in self.needs:
            if not self.policy.allows(need.action, need.resource):
                message = (
                    f"User: arn:aws:sts::{ACCOUNT}:assumed-role/discover-sandbox/{session} is not "
                    f"authorized to perform: {need.action} on resource: {need.resource} because "
                    f"no identity-based policy allows the {need.action} action"
                )
                return DeployResult(1, message + "\n", 1.0, False)
            if need.event is not None:
                source, name = need.event
                self.trail.setdefault(session, []).append(
                    TrailEvent(
                        f"ev-{next(self.ids)}",
                        T0,
                        source,
                        name,
                        event_actions(source, name),
                        (need.resource,),
                    )
                )
        return DeployResult(0, "deployed\n", 1.0, False)

    # Session factory
    def assume(self, session_name: str) -> Credentials:
        key = f"ASIA{len(self.sessions)}"
        self.sessions[key] = session_name
        arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/discover-sandbox/{session_name}"
        return Credentials(key, "secret", "token", T0 + timedelta(hours=1), arn=arn)

    # Trail
    def mark(self, credentials: Credentials) -> datetime:
        self.marks += 1
        return T0

    def read(self, session_name: str, *, started: datetime, watermark: datetime) -> TrailRead:
        return TrailRead(session_name, tuple(self.trail.get(session_name, [])), True, 0.0)


def prediction(
    action: str, resource: str, source: Source = Source.HANDLER, **kw: object
) -> Prediction:
    return Prediction(Grant(Action(action), resource), source, f"predicted {action}", "", **kw)  # type: ignore[arg-type]


STACK = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/*"
OBJECTS = "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-*/serverless/demo/dev/*"
PREDICTIONS = (
    prediction("cloudformation:DescribeStacks", STACK, Source.CLI),
    prediction("cloudformation:CreateChangeSet", STACK, Source.CLI),
    prediction("cloudformation:DeleteStack", STACK, Source.CLI),  # never used: dropped
    prediction("s3:PutObject", OBJECTS, Source.CLI),  # CloudTrail cannot show it: tested
    prediction("iam:CreateRole", EXEC_ROLE),
    prediction("lambda:CreateFunction", FUNCTION),
    prediction("lambda:GetFunctionCodeSigningConfig", FUNCTION),  # unused: dropped
    prediction(
        "iam:PassRole", EXEC_ROLE, Source.DEPENDENCY, implied_by=Action("lambda:CreateFunction")
    ),
)


class Template:
    def __init__(self, predictions: tuple[Prediction, ...]) -> None:
        self.predictions = predictions

    def load(self) -> ServiceTemplate:
        return ServiceTemplate(
            "demo", "dev", "us-east-1", ACCOUNT, "demo-dev", (Resource("X", "AWS::SQS::Queue"),)
        )


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


def run_predicted(
    world: World,
    journal: Journal,
    monkeypatch: pytest.MonkeyPatch,
    predictions: tuple[Prediction, ...] = PREDICTIONS,
    **settings: object,
):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("discover.strategies.predict", lambda template, **_: predictions)
    ports = PredictedPorts(world, world, world.assume, world, Template(predictions), "discover-t")
    return discover_predicted(
        ports,
        journal,
        PredictedSettings(LoopSettings(max_iterations=20, propagation_waits_s=()), **settings),  # type: ignore[arg-type]
    )


def test_predicted_keeps_what_was_used_and_proves_the_rest(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three runs: predicted, one removal test (s3:PutObject), the verify from scratch."""
    world = World()
    outcome = run_predicted(world, journal, monkeypatch)
    assert outcome.reason is StopReason.SUCCEEDED
    assert len(outcome.iterations) == 3
    actions = set(outcome.policy.actions)
    assert actions == {n.action for n in NEEDS}
    assert "cloudformation:DeleteStack" not in actions
    assert world.deleted == 3, "every phase deploys from scratch"
    records = list(read_journal(journal.path))
    proofs = {
        g["action"]: g["denial"]["source"]
        for r in records
        if r["event"] == "granted"
        for g in r["grants"]
    }
    assert proofs["lambda:CreateFunction"] == f"proof:{ProofKind.USED.value}"
    assert proofs["iam:PassRole"] == f"proof:{ProofKind.IMPLIED.value}"
    assert proofs["s3:PutObject"] == f"proof:{ProofKind.REMOVAL_TESTED.value}"
    assert [r["grant"]["action"] for r in records if r["event"] == "removal_test"] == [
        "s3:PutObject"
    ]


def test_a_missed_prediction_is_learned_from_its_denial(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without iam:CreateRole predicted, the first run is denied it and grants it."""
    world = World()
    missing = tuple(p for p in PREDICTIONS if p.grant.action != "iam:CreateRole")
    outcome = run_predicted(world, journal, monkeypatch, missing)
    assert outcome.reason is StopReason.SUCCEEDED
    assert "iam:CreateRole" in outcome.policy.actions
    assert len(outcome.iterations) == 4  # denied, deployed, removal test, verify


def test_keep_predicted_keeps_unproven_marked_and_skips_removal_tests(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World()
    outcome = run_predicted(world, journal, monkeypatch, keep_predicted=True)
    assert outcome.reason is StopReason.SUCCEEDED
    assert len(outcome.iterations) == 2
    assert "cloudformation:DeleteStack" in outcome.policy.actions
    records = list(read_journal(journal.path))
    unproven = {
        g["action"]
        for r in records
        if r["event"] == "granted"
        for g in r["grants"]
        if g["denial"]["source"] == f"proof:{ProofKind.UNPROVEN.value}"
    }
    assert {"cloudformation:DeleteStack", "s3:PutObject"} <= unproven


def test_high_risk_predictions_need_the_same_confirmation(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused prediction is not granted; the run then stops for confirmation as today."""
    world = World()
    seen: list[list[Evidence]] = []

    def refuse(evidence: list[Evidence]) -> list[Evidence]:
        seen.append(evidence)
        return [e for e in evidence if e.grant.action == "iam:CreateRole"]

    monkeypatch.setattr("discover.strategies.predict", lambda template, **_: PREDICTIONS)
    ports = PredictedPorts(world, world, world.assume, world, Template(PREDICTIONS), "discover-t")
    outcome = discover_predicted(
        ports,
        journal,
        PredictedSettings(LoopSettings(max_iterations=20, propagation_waits_s=())),
        refuse=refuse,
    )
    assert outcome.reason is StopReason.REFUSED
    assert "iam:CreateRole" not in outcome.policy.actions
    assert any(e.grant.action == "iam:CreateRole" for e in seen[0])


def test_per_run_sessions_have_unique_names() -> None:
    world = World()
    sessions = PerRunSessions(world.assume, "discover-x")
    first, second = sessions.current(), sessions.renew()
    assert sessions.names[first.access_key_id] == "discover-x-r01"
    assert sessions.names[second.access_key_id] == "discover-x-r02"


def _event(action_source: str, name: str, resource: str, error: str | None = None) -> TrailEvent:
    return TrailEvent(
        "id-1", T0, action_source, name, event_actions(action_source, name), (resource,), error
    )


@pytest.mark.parametrize(
    ("name", "events", "complete", "expected"),
    [
        (
            "used on its resource",
            [_event("iam.amazonaws.com", "CreateRole", EXEC_ROLE)],
            True,
            "proof",
        ),
        (
            "used on another resource",
            [_event("iam.amazonaws.com", "CreateRole", f"arn:aws:iam::{ACCOUNT}:role/other")],
            True,
            "dropped",
        ),
        (
            "denied call is no use",
            [_event("iam.amazonaws.com", "CreateRole", EXEC_ROLE, "AccessDenied")],
            True,
            "dropped",
        ),
        ("never called", [], True, "dropped"),
        ("trail incomplete", [], False, "test"),
    ],
)
def test_sort_predictions(
    name: str, events: list[TrailEvent], complete: bool, expected: str
) -> None:
    read = TrailRead("s", tuple(events), complete, 0.0)
    decided = sort_predictions(
        [prediction("iam:CreateRole", EXEC_ROLE)], [(1, read)], learned=frozenset()
    )
    found = "proof" if decided.proofs else "test" if decided.to_test else "dropped"
    assert found == expected, name


def test_one_at_a_time_grants_only_the_first_denial(journal: Journal) -> None:
    """A run denied two things (here: both named in its output) grants only the first."""
    two = "\n".join(
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/discover-sandbox/s is not authorized to "
        f"perform: {a} on resource: {r} because no identity-based policy allows the {a} action"
        for a, r in (("iam:CreateRole", EXEC_ROLE), ("lambda:CreateFunction", FUNCTION))
    )

    @dataclass
    class TwoAtOnce(World):
        def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
            self.runs += 1
            if self.policy.allows("iam:CreateRole", EXEC_ROLE) and self.policy.allows(
                "lambda:CreateFunction", FUNCTION
            ):
                return DeployResult(0, "ok\n", 1.0, False)
            return DeployResult(1, two + "\n", 1.0, False)

    class Sessions:
        def current(self) -> Credentials:
            arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/discover-sandbox/s"
            return Credentials("A", "s", "t", T0 + timedelta(hours=1), arn=arn)

        def renew(self) -> Credentials:
            return self.current()

    for strategy, runs in ((FirstDenialOnly(), 3), (None, 2)):
        world = TwoAtOnce()
        settings = LoopSettings(max_iterations=5, propagation_waits_s=())
        outcome = discover(world, world, Sessions(), journal, settings, strategy=strategy)
        assert outcome.reason is StopReason.SUCCEEDED
        assert len(outcome.iterations) == runs, strategy


@pytest.mark.parametrize(
    ("name", "flags", "toml", "expected"),
    [
        ("default for a serverless service", {}, "", "predicted"),
        ("flag", {"strategy": "one-at-a-time"}, "", "one-at-a-time"),
        ("discover.toml key", {}, 'strategy = "observed"\n', "observed"),
        (
            "a command after -- has no template: observed",
            {"command": ["sam", "deploy"]},
            "",
            "observed",
        ),
        (
            "a command with --template predicts",
            {"command": ["sam", "deploy"], "template": "t.json"},
            "",
            "predicted",
        ),
    ],
)
def test_strategy_setting(
    tmp_path: Path, name: str, flags: dict[str, object], toml: str, expected: str
) -> None:
    from discover.config import build_config

    (tmp_path / "serverless.yml").write_text("service: app\nprovider:\n  name: aws\n")
    (tmp_path / "t.json").write_text('{"Resources": {}}')
    (tmp_path / "discover.toml").write_text(toml)
    if "template" in flags:
        flags = {**flags, "template": str(tmp_path / "t.json")}
    config = build_config({"service_dir": str(tmp_path), "local": True, **flags})
    assert config.strategy == expected, name


@pytest.mark.parametrize(
    ("name", "flags", "message"),
    [
        ("unknown strategy", {"strategy": "guess"}, "is not one of"),
        (
            "predicted without a template",
            {"strategy": "predicted", "command": ["sam"]},
            "needs the template",
        ),
        ("missing template file", {"template": "nope.json"}, "no such file"),
    ],
)
def test_bad_strategy_settings(
    tmp_path: Path, name: str, flags: dict[str, object], message: str
) -> None:
    from discover.config import ConfigError, build_config

    (tmp_path / "serverless.yml").write_text("service: app\nprovider:\n  name: aws\n")
    if "template" in flags:
        flags = {**flags, "template": str(tmp_path / str(flags["template"]))}
    with pytest.raises(ConfigError, match=message) as caught:
        build_config({"service_dir": str(tmp_path), "local": True, **flags})
    assert caught.value.tip, name


def test_a_removal_test_denied_something_else_first_is_run_again(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A needed call CloudTrail did not show (dropped) comes before the upload: the removal
    test of s3:PutObject is denied it first, grants it, and runs again to reach PutObject."""
    hidden = Need("iam:CreateRole", EXEC_ROLE, None)
    rest = tuple(n for n in NEEDS if n.action != "iam:CreateRole")
    world = World(needs=(rest[0], hidden, *rest[1:]))
    outcome = run_predicted(world, journal, monkeypatch)
    assert outcome.reason is StopReason.SUCCEEDED
    assert {"s3:PutObject", "iam:CreateRole"} <= set(outcome.policy.actions)
    records = list(read_journal(journal.path))
    tests = [r["grant"]["action"] for r in records if r["event"] == "removal_test"]
    assert tests == ["s3:PutObject", "s3:PutObject"]
    assert len(outcome.iterations) == 4  # predicted, two removal tests, verify
