"""The phases (create, update, remove): their steps, and the loop run once per step over fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from discover.app import StepDeployer, run_steps
from discover.errors import DiscoverError
from discover.journal import Journal, read_events
from discover.lifecycle import ALL_PHASES, Phase, Step, default_phases, parse_phases, steps
from discover.loop import LoopSettings, resume_state
from discover.ports import Credentials, DeployResult
from discover.run_events import PhaseStarted, Started, Stopped, StopReason, step_of_runs
from tests.test_loop import (
    FUNCTION,
    LAMBDA_ROLE,
    STACK,
    FakeSandbox,
    FakeSessions,
    PolicyDeployer,
    denied,
    failed,
)

DEPLOY = ("sls", "deploy", "--stage", "dev", "--region", "us-east-1")
REMOVE = ("sls", "remove", "--stage", "dev", "--region", "us-east-1")


@pytest.mark.parametrize(
    ("name", "phases", "serverless", "expected"),
    [
        (
            "every phase, Serverless",
            ALL_PHASES,
            True,
            [
                ("create", DEPLOY, False),
                ("update", (*DEPLOY, "--force"), True),
                ("no-op update", DEPLOY, True),
                ("remove", REMOVE, True),
            ],
        ),
        (
            "an update of one's own command is the command again",
            (Phase.UPDATE,),
            False,
            [("update", DEPLOY, True), ("no-op update", DEPLOY, True)],
        ),
        ("create alone", (Phase.CREATE,), True, [("create", DEPLOY, False)]),
    ],
)
def test_the_steps_of_each_phase(
    name: str, phases: tuple[Phase, ...], serverless: bool, expected: list[tuple[str, ...]]
) -> None:
    """Update is a forced deploy then a deploy with no change; remove needs the stack."""
    found = steps(phases, deploy_command=DEPLOY, remove_command=REMOVE, serverless=serverless)
    assert [(s.name, s.command, s.needs_stack) for s in found] == expected, name


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("all, in life order", "remove,create,update", ALL_PHASES),
        ("a list from discover.toml", ["update", " Create "], (Phase.CREATE, Phase.UPDATE)),
    ],
)
def test_phases_are_read_in_life_order(
    name: str, value: str | list[str], expected: tuple[Phase, ...]
) -> None:
    assert parse_phases(value) == expected, name


@pytest.mark.parametrize(("name", "value"), [("unknown", "create,deploy"), ("empty", " , ")])
def test_bad_phases_are_a_one_line_error(name: str, value: str) -> None:
    with pytest.raises(DiscoverError) as caught:
        parse_phases(value)
    assert "Tip:" in str(caught.value), name


def test_default_phases() -> None:
    """Every phase for the Serverless CLI; create alone for an own command without a remove."""
    assert default_phases(custom_command=False, remove_command=False) == ALL_PHASES
    assert default_phases(custom_command=True, remove_command=False) == (Phase.CREATE,)
    assert default_phases(custom_command=True, remove_command=True) == ALL_PHASES


@dataclass
class StackSandbox(FakeSandbox):
    """A fake sandbox that says whether the stack is deployed."""

    stack_deployed: bool = False

    def deployed(self) -> bool:
        return self.stack_deployed


@dataclass
class Recorder:
    """A deployer that records its calls and answers as scripted by another deployer."""

    inner: PolicyDeployer
    name: str
    log: list[str] = field(default_factory=list)
    deploys: StackSandbox | None = None

    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
        self.log.append(self.name)
        result = self.inner.deploy(credentials, iteration)
        if result.succeeded and self.deploys is not None:
            self.deploys.stack_deployed = True
        return result


def test_a_step_that_needs_the_stack_deploys_it_first() -> None:
    """No stack: the setup deploy runs first; a failed setup is the step's result."""
    sandbox = StackSandbox()
    log: list[str] = []
    setup = Recorder(PolicyDeployer(sandbox, [("lambda:CreateFunction", FUNCTION)]), "setup", log)
    run = Recorder(PolicyDeployer(sandbox, []), "run", log)
    step = Step(Phase.UPDATE, "update", DEPLOY, needs_stack=True)
    deployer = StepDeployer(step, run, setup, sandbox)  # type: ignore[arg-type]
    first = deployer.deploy(FakeSessions().current(), 1)
    assert not first.succeeded
    assert log == ["setup"]
    sandbox.stack_deployed = True
    assert deployer.deploy(FakeSessions().current(), 2).succeeded
    assert log == ["setup", "run"]


def test_each_step_learns_from_the_policy_before_it(tmp_path: Path) -> None:
    """Create, then remove: remove starts with create's grants, learns its own; one
    PhaseStarted per step, one Stopped at the end, runs numbered on."""
    sandbox = StackSandbox()
    create_needs = [("iam:CreateRole", LAMBDA_ROLE)]
    remove_needs = [*create_needs, ("cloudformation:DeleteStack", STACK)]
    deployers = {
        "create": PolicyDeployer(sandbox, create_needs),
        "remove": PolicyDeployer(sandbox, remove_needs),
    }
    workflow = (
        Step(Phase.CREATE, "create", DEPLOY, needs_stack=False),
        Step(Phase.REMOVE, "remove", REMOVE, needs_stack=True),
    )
    journal = Journal(tmp_path / "journal.jsonl")
    sandbox.stack_deployed = True
    outcome = run_steps(
        workflow,
        lambda step: deployers[step.name],
        sandbox=sandbox,  # type: ignore[arg-type]
        sessions=FakeSessions(),
        events=journal,
        settings=LoopSettings(max_iterations=5, propagation_waits_s=()),
        refuse=lambda evidence: [],
    )
    assert outcome.reason is StopReason.SUCCEEDED
    assert {g.action for g in outcome.policy.grants} == {
        "iam:CreateRole",
        "cloudformation:DeleteStack",
    }
    assert [i.number for i in outcome.iterations] == [1, 2, 3, 4]
    events = read_events(journal.path)
    phases = [e for e in events if isinstance(e, PhaseStarted)]
    assert [(p.step, p.iteration) for p in phases] == [("create", 1), ("remove", 3)]
    assert [e for e in events if isinstance(e, Stopped)] == [
        Stopped(StopReason.SUCCEEDED, "create, remove passed after 4 run(s)")
    ]
    assert {n: s.step for n, s in step_of_runs(events).items()} == {
        1: "create",
        2: "create",
        3: "remove",
        4: "remove",
    }


def test_a_failing_step_stops_the_run_naming_it(tmp_path: Path) -> None:
    """The first step that does not succeed stops the workflow; its name leads the detail,
    and an interrupted run resumes in that step."""
    sandbox = StackSandbox(stack_deployed=True)
    scp = "with an explicit deny in a service control policy"
    unfixable = denied("cloudformation:DeleteStack", STACK, because=scp)

    @dataclass
    class Refused:
        def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
            return failed(unfixable)

    workflow = (
        Step(Phase.CREATE, "create", DEPLOY, needs_stack=False),
        Step(Phase.REMOVE, "remove", REMOVE, needs_stack=True),
    )
    journal = Journal(tmp_path / "journal.jsonl")
    journal.emit(Started("r", "discover", "demo-dev", "us-east-1", "dev", DEPLOY, True, 5))
    outcome = run_steps(
        workflow,
        lambda step: Refused() if step.name == "remove" else PolicyDeployer(sandbox, []),
        sandbox=sandbox,  # type: ignore[arg-type]
        sessions=FakeSessions(),
        events=journal,
        settings=LoopSettings(max_iterations=5, propagation_waits_s=()),
        refuse=lambda evidence: [],
    )
    assert outcome.reason is StopReason.UNFIXABLE
    assert outcome.detail.startswith("remove: ")
    state = resume_state(read_events(journal.path), stack_name="demo-dev")
    assert state.step == "remove"
    assert state.last_iteration == 2
