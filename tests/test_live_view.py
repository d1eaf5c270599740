"""The live view and the log lines: the same typed events a run journals, drawn two ways."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from rich.console import Console

from discover.denials import Denial, Reason
from discover.iamdb import Action
from discover.live_view import LiveView
from discover.log_sink import LogSink
from discover.policy import Grant, PolicyDocument
from discover.run_events import (
    DenialsFound,
    Event,
    Evidence,
    Granted,
    GrantPlanned,
    PolicyApplied,
    PropagationWait,
    RunFinished,
    RunStarted,
    Started,
    Stopped,
    StopReason,
)

ROLE = "arn:aws:iam::123456789012:role/discover-sandbox"
FUNCTION_ROLE = "arn:aws:iam::123456789012:role/hello-dev-us-east-1-lambdaRole"
DENIAL = Denial(
    action="iam:CreateRole",
    resource=FUNCTION_ROLE,
    principal=None,
    reason=Reason.NO_IDENTITY_POLICY,
    source="stack-event",
    message="IamRoleLambdaExecution (AWS::IAM::Role) CREATE_FAILED: denied",
    logical_id="IamRoleLambdaExecution",
    resource_type="AWS::IAM::Role",
)
GRANT = Grant(Action("iam:CreateRole"), FUNCTION_ROLE)
EVIDENCE = Evidence(GRANT, DENIAL, 1, "exact role ARN")
POLICY = PolicyDocument().with_grants([GRANT])
STARTED = Started(ROLE, "discover", "hello-dev", "us-east-1", "dev", ("osls", "deploy"), True, 20)

A_RUN: list[Event] = [
    STARTED,
    PolicyApplied(0, PolicyDocument()),
    RunStarted(1, 20),
    RunFinished(1, 1, 12.4, False, None, "Error: denied"),
    DenialsFound(1, (DENIAL,)),
    GrantPlanned(1, POLICY, (EVIDENCE,)),
    Granted(1, (EVIDENCE,), POLICY),
    RunStarted(2, 20),
]


def view_after(events: list[Event], *lines: str) -> tuple[LiveView, str]:
    """A view fed ``events`` and output ``lines``, and the text it shows (no terminal needed)."""
    view = LiveView(Console(file=io.StringIO(), width=200))
    for event in events:
        view.emit(event)
    for line in lines:
        view.output_line(line)
    screen = Console(file=io.StringIO(), width=200, record=True)
    screen.print(view.render())
    return view, screen.export_text()


def test_the_header_names_the_service_stage_and_role() -> None:
    """The top says what is discovered, where, and with which role."""
    _, text = view_after([STARTED])
    assert "hello-dev" in text
    assert "stage dev" in text
    assert ROLE in text


def test_each_run_shows_its_denials_and_the_grant_each_became() -> None:
    """A row per run: n/limit, time, outcome, the denial with its source, then its grant."""
    _, text = view_after(A_RUN)
    row = next(line for line in text.splitlines() if line.lstrip().startswith("1/20"))
    assert "12s" in row
    assert "granted 1" in row
    assert f"iam:CreateRole on {FUNCTION_ROLE}" in text
    assert "(stack event IamRoleLambdaExecution)" in text
    assert f"→ iam:CreateRole {FUNCTION_ROLE}" in text


def test_a_running_deploy_shows_its_last_output_line() -> None:
    """While a run goes, the spinner carries the deploy's latest line, and only that one."""
    _, text = view_after(A_RUN, "Packaging service...", "Uploading artifacts", "   ")
    assert "run 2: Uploading artifacts" in text
    assert "Packaging service" not in text


def test_the_end_shows_the_summary_and_no_spinner() -> None:
    """Once stopped, the spinner goes and the summary says how it ended."""
    events = [
        *A_RUN,
        RunFinished(2, 0, 30.0, False),
        Stopped(StopReason.SUCCEEDED, "deployed after 2 run(s)"),
    ]
    _, text = view_after(events, "Service deployed")
    assert "converged: deployed after 2 run(s)" in text
    assert "run 2:" not in text
    assert "deployed" in next(line for line in text.splitlines() if "2/20" in line)


def test_a_stop_names_what_blocked_it() -> None:
    """A stop for an unfixable denial lists the denial, its reason and where it was seen."""
    deny = Denial(
        "s3:PutObject", "arn:aws:s3:::b/k", None, Reason.EXPLICIT_DENY_SCP, "output", "denied"
    )
    stopped = Stopped(StopReason.UNFIXABLE, "a denial no allow can fix", (deny,))
    _, text = view_after([STARTED, stopped])
    assert "stopped (unfixable)" in text
    assert "denied s3:PutObject on arn:aws:s3:::b/k (explicit-deny-scp, output)" in text


def test_waits_are_shown_on_their_run() -> None:
    """An IAM propagation wait is a note on the run it follows."""
    _, text = view_after([*A_RUN[:5], PropagationWait(1, 5.0)])
    assert "waiting 5 s for IAM to propagate" in text


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("rich markup", "[bold red]approved[/bold red]"),
        ("a terminal escape", "\x1b[2J\x1b[Hcleared"),
    ],
)
def test_the_deploys_text_is_shown_as_text(name: str, line: str) -> None:
    """The deploy's output is untrusted: markup stays literal, control characters go."""
    _, text = view_after(A_RUN, line)
    if name == "rich markup":
        assert "[bold red]approved[/bold red]" in text
    else:
        assert "\x1b" not in text
        assert "cleared" in text


def test_the_view_draws_on_a_terminal_and_leaves_its_last_frame() -> None:
    """Used as a context on a terminal, the view's final frame stays on screen."""
    out = io.StringIO()
    with LiveView(Console(file=out, force_terminal=True, width=160)) as view:
        for event in A_RUN:
            view.emit(event)
        view.emit(Stopped(StopReason.LIMIT, "not converged after 2 run(s)"))
    assert "not converged after 2 run(s)" in out.getvalue()


def test_log_lines_are_one_json_object_per_event() -> None:
    """Without a terminal: one JSON line per event, the kind as its name, a policy as a count;
    the planned grant is left to the journal (the granted line says the same)."""
    out = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
    )
    sink = LogSink(logger)
    for event in A_RUN:
        sink.emit(event)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        "started",
        "policy_applied",
        "run_started",
        "run_finished",
        "denials",
        "granted",
        "run_started",
    ]
    granted = lines[5]
    assert granted["actions"] == 1
    assert granted["grants"] == [{"action": "iam:CreateRole", "resource": FUNCTION_ROLE}]
    assert "policy" not in granted
    assert lines[4]["denials"][0]["logical_id"] == "IamRoleLambdaExecution"
