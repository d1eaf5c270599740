"""End to end: osls deploys hello with the sandbox's CloudFormation service role.

``discover --local --service-role`` grows two policies from empty roles, in the same runs:
the caller's (the CLI's own calls, and passing the role to CloudFormation) and the service
role's (what the resources need); ``verify`` proves the pair and names the policy that lacks
an action when one is taken away. One create phase: the lifecycle is not the point here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from discover.journal import read_journal
from tests.conftest import run_discover
from tests.test_sam_e2e import sam

pytestmark = pytest.mark.e2e
__all__ = ["sam"]  # the fixture, shared with the SAM tests

SERVICE_ROLE = "arn:aws:iam::123456789012:role/discover-cloudformation"
HANDLER_ACTIONS = {"iam:CreateRole", "lambda:CreateFunction", "apigateway:POST"}


def actions_of(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    statements = [
        {**s, "Action": [a for a in s["Action"] if a != action]} for s in policy["Statement"]
    ]
    return {**policy, "Statement": [s for s in statements if s["Action"]]}


def test_hello_with_a_service_role(service_copy: Callable[[str], Path], osls: Path) -> None:
    service = service_copy("hello")
    original = (service / "serverless.yml").read_text(encoding="utf-8")
    options = ("--local", "--cli", str(osls), "--phases", "create")
    run = run_discover(*options, "--service-role", "--max-iterations", "80", "--quiet", cwd=service)
    assert run.returncode == 0, run.stderr[-3000:]
    state = service / ".discover"
    caller = json.loads((state / "policy.json").read_text(encoding="utf-8"))
    role = json.loads((state / "service-role-policy.json").read_text(encoding="utf-8"))

    # The caller: the CLI's calls, and the role passed to CloudFormation only.
    assert not actions_of(caller) & HANDLER_ACTIONS, actions_of(caller)
    assert {"cloudformation:CreateChangeSet", "s3:PutObject"} <= actions_of(caller)
    (passing,) = [s for s in caller["Statement"] if "iam:PassRole" in s["Action"]]
    assert passing["Resource"] in (SERVICE_ROLE, [SERVICE_ROLE])
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
    }
    # The service role: the resources' calls, never a grant on either role itself.
    assert actions_of(role) >= HANDLER_ACTIONS, actions_of(role)
    resources = {
        r
        for s in role["Statement"]
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }
    assert SERVICE_ROLE not in resources
    assert "arn:aws:iam::123456789012:role/discover-sandbox" not in resources

    records = list(read_journal(state / "journal.jsonl"))
    granted = [g for r in records if r["event"] == "service_role_granted" for g in r["grants"]]
    assert granted
    assert {g["denial"]["source"] for g in granted} == {"stack-event"}
    report = (state / "report.md").read_text(encoding="utf-8")
    assert "## The CloudFormation service role's policy" in report
    # serverless.yml untouched, and the copy discover passed with --config is gone.
    assert (service / "serverless.yml").read_text(encoding="utf-8") == original
    assert not (service / ".serverless-discover.json").exists()

    def verify(caller_file: str, role_file: str) -> tuple[int, dict[str, Any], str]:
        done = run_discover(
            "verify",
            *options,
            "--service-role",
            "--policy",
            caller_file,
            "--service-role-policy",
            role_file,
            cwd=service,
        )
        return done.returncode, json.loads(done.stdout or "{}"), done.stderr

    code, verdict, stderr = verify(".discover/policy.json", ".discover/service-role-policy.json")
    assert code == 0, stderr[-3000:]
    assert verdict["verified"] is True

    (service / "role-smaller.json").write_text(json.dumps(without(role, "lambda:CreateFunction")))
    code, verdict, stderr = verify(".discover/policy.json", "role-smaller.json")
    assert code == 1, stderr[-3000:]
    assert verdict["lacking"] == "service-role"
    assert verdict["first_denial"]["action"] == "lambda:CreateFunction"

    smaller = without(caller, "cloudformation:ExecuteChangeSet")
    (service / "caller-smaller.json").write_text(json.dumps(smaller))
    code, verdict, stderr = verify("caller-smaller.json", ".discover/service-role-policy.json")
    assert code == 1, stderr[-3000:]
    assert verdict["lacking"] == "caller"
    assert verdict["first_denial"]["action"] == "cloudformation:ExecuteChangeSet"


def test_sam_with_a_service_role(service_copy: Callable[[str], Path], sam: Path) -> None:
    """sam deploy --role-arn: the application's resources grow the service role's policy; SAM's
    own artifact stack, which SAM creates without the role, stays the caller's (as on AWS);
    verify proves the pair."""
    folder = service_copy("sam-orders")
    options = ("--local", "--cli", str(sam), "--phases", "create", "--service-role")
    run = run_discover(*options, "--max-iterations", "80", "--quiet", cwd=folder, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    state = folder / ".discover"
    caller = actions_of(json.loads((state / "policy.json").read_text(encoding="utf-8")))
    role = actions_of(json.loads((state / "service-role-policy.json").read_text(encoding="utf-8")))
    handlers = {"iam:CreateRole", "lambda:CreateFunction", "dynamodb:CreateTable"}
    assert not caller & handlers, caller
    assert handlers | {"apigateway:POST"} <= role, role
    assert {"cloudformation:CreateChangeSet", "iam:PassRole", "s3:CreateBucket"} <= caller
    records = list(read_journal(state / "journal.jsonl"))
    started = next(r for r in records if r["event"] == "started")
    assert started["command"][-2:] == ["--role-arn", SERVICE_ROLE]
    verified = run_discover(
        "verify",
        *options,
        "--policy",
        ".discover/policy.json",
        "--service-role-policy",
        ".discover/service-role-policy.json",
        cwd=folder,
        timeout=900,
    )
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert json.loads(verified.stdout)["verified"] is True
