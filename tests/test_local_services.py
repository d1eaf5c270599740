"""End to end on the services that use types outside the old hand table: an HTTP API, a
function URL, a layer, a log subscription filter, a queue policy, an SNS subscription and a
Step Functions state machine with its role, with stack and provider tags.

Each deploys, updates and is removed with an admin-ish role; from an empty role ``discover
--local`` converges, its policy holds those types' calls (and the tagging calls the stack's
tags need), and ``verify`` accepts it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from discover import iamdb
from discover.local.process import LocalSandbox, LocalSandboxInfo
from tests.conftest import admin_session, role_session, run_discover
from tests.test_e2e_services import ALLOW_ALL, deploy_env

pytestmark = pytest.mark.e2e


def _http_api(info: LocalSandboxInfo) -> None:
    admin = admin_session(info)
    lambda_ = admin.client("lambda", endpoint_url=info.endpoint)
    names = {f["FunctionName"] for f in lambda_.list_functions()["Functions"]}
    assert {"orders-http-dev-listOrders", "orders-http-dev-exportOrders"} <= names
    layers = lambda_.list_layers()["Layers"]
    assert [layer["LayerName"] for layer in layers] == ["shared"]


def _pipeline(info: LocalSandboxInfo) -> None:
    admin = admin_session(info)
    sfn = admin.client("stepfunctions", endpoint_url=info.endpoint)
    (machine,) = sfn.list_state_machines()["stateMachines"]
    assert machine["name"] == "pipeline-worker-dev-pipeline"
    sqs = admin.client("sqs", endpoint_url=info.endpoint)
    assert sqs.get_queue_url(QueueName="pipeline-worker-dev-ingest")["QueueUrl"]


# service, what its stack holds, what discover must learn (from stack events: the caller's
# calls CloudFormation makes, the tags the stack propagates)
SERVICES: list[tuple[str, Callable[[LocalSandboxInfo], None], set[str]]] = [
    (
        "orders-http",
        _http_api,
        {
            "apigateway:POST",
            "lambda:CreateFunctionUrlConfig",
            "lambda:PublishLayerVersion",
            "logs:PutSubscriptionFilter",
            "lambda:TagResource",
            "iam:TagRole",
            "logs:TagResource",
        },
    ),
    (
        "pipeline-worker",
        _pipeline,
        {
            "states:CreateStateMachine",
            "states:TagResource",
            "sqs:SetQueueAttributes",
            "sqs:TagQueue",
            "sns:Subscribe",
            "sns:TagResource",
            "iam:PassRole",
        },
    ),
]


@pytest.mark.parametrize(("service", "holds", "learned"), SERVICES, ids=[s[0] for s in SERVICES])
def test_deploys_updates_and_removes_with_an_admin_role(  # noqa: PLR0917 - one per column
    service_copy: Callable[[str], Path],
    osls: Path,
    tmp_path: Path,
    service: str,
    holds: Callable[[LocalSandboxInfo], None],
    learned: set[str],
) -> None:
    """With Allow */* on the sandbox role, osls deploys the service, deploys it again with new
    artifacts (an update, a new layer version: a replacement), and removes it."""
    folder = service_copy(service)
    with LocalSandbox(authorization_log=tmp_path / "authorization.jsonl") as info:
        iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
        iam.put_role_policy(
            RoleName="discover-sandbox", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        env = deploy_env(role_session(info, "admin-deploy"), info)
        cfn = admin_session(info).client("cloudformation", endpoint_url=info.endpoint)
        for command in (["deploy"], ["deploy", "--force"], ["remove"]):
            done = subprocess.run(
                [str(osls), *command],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            if command == ["deploy"]:
                (stack,) = cfn.describe_stacks(StackName=f"{service}-dev")["Stacks"]
                assert stack["StackStatus"] == "UPDATE_COMPLETE"
                tags = {t["Key"] for t in stack["Tags"]}
                assert "STAGE" in tags
                holds(info)
        summaries = cfn.list_stacks()["StackSummaries"]
        assert {s["StackStatus"] for s in summaries} == {"DELETE_COMPLETE"}


@pytest.mark.parametrize(("service", "holds", "learned"), SERVICES, ids=[s[0] for s in SERVICES])
def test_converges_and_verifies(
    service_copy: Callable[[str], Path],
    osls: Path,
    service: str,
    holds: Callable[[LocalSandboxInfo], None],
    learned: set[str],
) -> None:
    """From an empty role, discover converges within the runs users are told to allow
    (``--max-iterations 20``) over every phase, learns those types' calls, and verify accepts
    the policy."""
    folder = service_copy(service)
    run = run_discover(
        "--local", "--cli", str(osls), "--quiet", "--max-iterations", "20", cwd=folder, timeout=3000
    )
    assert run.returncode == 0, run.stderr[-3000:]
    policy = json.loads((folder / ".discover" / "policy.json").read_text())
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert all(iamdb.is_known_action(a) for a in actions)
    assert learned <= actions, learned - actions
    verified = run_discover(
        "verify", "--local", "--cli", str(osls), "--policy", ".discover/policy.json", cwd=folder
    )
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert json.loads(verified.stdout)["verified"] is True
