"""End to end, the default strategy: predict from the template, deploy, keep what CloudTrail
shows was used, removal-test what it cannot show, verify from scratch; in a few runs, with
evidence for every permission, and a policy ``discover verify`` accepts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from discover.journal import read_events
from discover.policy import PolicyDocument, covers
from discover.run_events import (
    PhaseStarted,
    Predicted,
    RemovalTest,
    RunFinished,
    TrailRead,
    evidence_of,
)
from tests.conftest import run_discover

pytestmark = pytest.mark.e2e

# service, actions its deploy must end up with (CloudFormation's calls for the caller among
# them), and the number of runs the create phase may take at most (a third of
# one-at-a-time's ~30); all the phases (update, remove learned by denials) stay within 20
SERVICES = [
    ("hello", {"lambda:CreateFunction", "iam:PassRole", "s3:PutObject", "apigateway:POST"}, 6),
    ("items-api", {"dynamodb:CreateTable", "iam:CreateRole", "logs:CreateLogGroup"}, 6),
    ("events-worker", {"sqs:CreateQueue", "sns:CreateTopic", "events:PutRule"}, 6),
]


@pytest.mark.parametrize(("service", "needed", "at_most"), SERVICES)
def test_the_default_converges_in_a_few_runs_with_evidence(
    service_copy: Callable[[str], Path],
    osls: Path,
    service: str,
    needed: set[str],
    at_most: int,
) -> None:
    folder = service_copy(service)
    run = run_discover("--local", "--cli", str(osls), "--quiet", cwd=folder)
    assert run.returncode == 0, run.stderr[-3000:]
    state = folder / ".discover"
    events = read_events(state / "journal.jsonl")
    runs = [e for e in events if isinstance(e, RunFinished)]
    assert len(runs) <= 20
    later = [e.iteration for e in events if isinstance(e, PhaseStarted) and e.phase != "create"]
    create = [r for r in runs if not later or r.iteration < later[0]]
    assert len(create) <= at_most, [e.returncode for e in create]
    assert create[-1].succeeded, "the create phase ends with the verify from scratch"
    assert any(isinstance(e, Predicted) and e.predictions for e in events)
    reads = [e for e in events if isinstance(e, TrailRead)]
    assert reads, "CloudTrail was read"
    assert all(r.complete for r in reads), "the watermark arrived"
    assert any(isinstance(e, RemovalTest) for e in events), "s3:PutObject is not in CloudTrail"

    policy = PolicyDocument.from_dict(json.loads((state / "policy.json").read_text()))
    assert needed <= set(policy.actions)
    evidence = evidence_of(events)
    for grant in policy.effective().grants:
        backing = [
            e
            for e in evidence
            if e.grant == grant
            or (e.grant.action == grant.action and covers(grant.resource, e.grant.resource))
        ]
        assert backing, f"no evidence for {grant}"
        sources = {e.denial.source for e in backing}
        assert sources != {"proof:unproven"}, grant
    report = (state / "report.md").read_text()
    assert "CloudTrail: the run used it" in report

    verified = run_discover(
        "verify", "--local", "--cli", str(osls), "--policy", ".discover/policy.json", cwd=folder
    )
    assert verified.returncode == 0, verified.stderr[-3000:]
