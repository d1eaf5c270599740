"""End to end with the real SAM CLI (pinned in fixtures/sam): as an admin it deploys, updates
and deletes the sam-orders sample in the local sandbox; ``discover --local --tool sam`` grows
an empty role until ``sam deploy`` succeeds, and ``verify`` accepts the policy and refuses it
without the transform's grant."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from discover import iamdb
from discover.journal import read_journal
from discover.local.process import LocalSandbox
from discover.local.transform import transform_arn
from tests.conftest import FIXTURES, admin_session, role_session, run_discover
from tests.test_e2e_services import ALLOW_ALL, deploy_env

pytestmark = pytest.mark.e2e

SAM = FIXTURES / "sam" / ".venv" / "bin" / "sam"
TRANSFORM = transform_arn("us-east-1")


@pytest.fixture
def sam(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The pinned SAM CLI; scripts/setup installs it. No telemetry: there is no network."""
    if not SAM.exists():
        pytest.fail(f"{SAM} is missing: run scripts/setup")
    monkeypatch.setenv("SAM_CLI_TELEMETRY", "0")
    return SAM


def test_sam_deploys_updates_and_deletes_as_an_admin(
    service_copy: Callable[[str], Path], sam: Path, tmp_path: Path
) -> None:
    """With Allow */*, sam deploy creates SAM's managed stack and the application (the
    transform expanded), deploys a code change as an update, and sam delete removes it."""
    folder = service_copy("sam-orders")
    with LocalSandbox(authorization_log=tmp_path / "authorization.jsonl") as info:
        iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
        iam.put_role_policy(
            RoleName="discover-sandbox", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        env = {**deploy_env(role_session(info, "admin-deploy"), info), "SAM_CLI_TELEMETRY": "0"}

        def sam_run(*command: str) -> str:
            done = subprocess.run(
                [str(sam), *command],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            return done.stdout + done.stderr

        cfn = admin_session(info).client("cloudformation", endpoint_url=info.endpoint)
        sam_run("deploy", "--no-progressbar")
        (stack,) = cfn.describe_stacks(StackName="sam-orders")["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        types = {
            r["ResourceType"]
            for r in cfn.list_stack_resources(StackName="sam-orders")["StackResourceSummaries"]
        }
        assert {"AWS::Lambda::Function", "AWS::DynamoDB::Table", "AWS::ApiGateway::RestApi"} <= (
            types
        )
        (managed,) = cfn.describe_stacks(StackName="aws-sam-cli-managed-default")["Stacks"]
        assert managed["StackStatus"] == "CREATE_COMPLETE"
        code = folder / "src" / "orders.py"
        code.write_text(code.read_text() + "\n# a change to deploy\n")
        sam_run("deploy", "--no-progressbar")
        events = cfn.describe_stack_events(StackName="sam-orders")["StackEvents"]
        assert "UPDATE_COMPLETE" in {
            e["ResourceStatus"] for e in events if e["ResourceType"] == "AWS::Lambda::Function"
        }
        sam_run("delete", "--no-prompts")
        statuses = {s["StackName"]: s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"]}
        assert statuses["sam-orders"] == "DELETE_COMPLETE"


def _actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def _without_resource(policy: dict[str, Any], resource: str) -> dict[str, Any]:
    statements = []
    for statement in policy["Statement"]:
        kept = [r for r in statement["Resource"] if r != resource]
        if kept:
            statements.append({**statement, "Resource": kept})
    return {**policy, "Statement": statements}


def test_discover_converges_on_sam_and_verifies(
    service_copy: Callable[[str], Path], sam: Path
) -> None:
    """From an empty role, within the default 20 runs, discover learns every phase of a SAM
    application (create with SAM's managed stack and the transform, update, delete), each from
    the SAM template as the transform expands it; verify accepts the policy for every phase
    and refuses it without the transform's ARN (SAM prints no reason: the change set's
    StatusReason says it)."""
    folder = service_copy("sam-orders")  # its discover.toml says tool = "sam"
    run = run_discover("--local", "--cli", str(sam), "--quiet", cwd=folder, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    policy = json.loads((folder / ".discover" / "policy.json").read_text())
    actions = _actions(policy)
    assert all(iamdb.is_known_action(a) for a in actions)
    assert {
        "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet",
        "iam:CreateRole",
        "iam:PassRole",
        "lambda:CreateFunction",
        "dynamodb:CreateTable",
        "apigateway:POST",
        "s3:CreateBucket",
        "s3:PutObject",
    } <= actions
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert TRANSFORM in resources
    # "*" only for actions IAM gives no resource type (the policy rules)
    for statement in policy["Statement"]:
        if "*" in statement["Resource"]:
            assert all(not iamdb.resource_types(a) for a in statement["Action"]), statement
    records = list(read_journal(folder / ".discover" / "journal.jsonl"))
    runs = [r for r in records if r["event"] == "run_finished"]
    assert len(runs) <= 20
    steps = [r["step"] for r in records if r["event"] == "phase_started"]
    assert steps == ["create", "update", "no-op update", "remove"]
    assert "cloudformation:DeleteStack" in actions
    started = next(r for r in records if r["event"] == "started")
    assert started["command"][1:2] == ["deploy"]
    assert "--resolve-s3" in started["command"]

    verified = run_discover(
        "verify",
        "--local",
        "--cli",
        str(sam),
        "--policy",
        ".discover/policy.json",
        cwd=folder,
    )
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert json.loads(verified.stdout)["verified"] is True

    smaller = folder / "without-transform.json"
    smaller.write_text(json.dumps(_without_resource(policy, TRANSFORM)))
    refused = run_discover(
        "verify",
        "--local",
        "--cli",
        str(sam),
        "--phases",
        "create",
        "--policy",
        smaller.name,
        cwd=folder,
    )
    assert refused.returncode == 1, refused.stderr[-3000:]
    first = json.loads(refused.stdout)["first_denial"]
    assert (first["action"], first["resource"]) == ("cloudformation:CreateChangeSet", TRANSFORM)
