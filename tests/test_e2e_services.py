"""End to end on the sample services: each deploys as an admin; ``discover --local`` grows an
empty role until osls deploys it, learning what CloudFormation does on the caller's behalf;
``verify`` accepts the policy, and refuses it with a representative action removed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from discover import iamdb
from discover.journal import read_journal
from discover.local.process import LocalSandbox, LocalSandboxInfo
from tests.conftest import admin_session, role_session, run_discover

pytestmark = pytest.mark.e2e

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def deploy_env(session: boto3.Session, info: LocalSandboxInfo) -> dict[str, str]:
    creds = session.get_credentials()
    assert creds is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=creds.access_key,
        AWS_SECRET_ACCESS_KEY=creds.secret_key,
        AWS_SESSION_TOKEN=str(creds.token),
        AWS_REGION=info.region,
        AWS_ENDPOINT_URL=info.endpoint,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_CONFIG_FILE=os.devnull,
    )
    return env


def _table(info: LocalSandboxInfo) -> None:
    dynamodb = admin_session(info).client("dynamodb", endpoint_url=info.endpoint)
    assert dynamodb.describe_table(TableName="items-api-dev-items")["Table"]
    apigateway = admin_session(info).client("apigateway", endpoint_url=info.endpoint)
    (api,) = apigateway.get_rest_apis()["items"]
    paths = {r["path"] for r in apigateway.get_resources(restApiId=api["id"])["items"]}
    assert {"/items", "/items/{id}"} <= paths


def _queue_topic_rule(info: LocalSandboxInfo) -> None:
    admin = admin_session(info)
    sqs = admin.client("sqs", endpoint_url=info.endpoint)
    assert sqs.get_queue_url(QueueName="events-worker-dev-jobs")["QueueUrl"]
    sns = admin.client("sns", endpoint_url=info.endpoint)
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert any(t.endswith(":events-worker-dev-notifications") for t in topics)
    events = admin.client("events", endpoint_url=info.endpoint)
    (rule,) = events.list_rules()["Rules"]
    assert rule["ScheduleExpression"] == "rate(1 hour)"


# service, what its stack holds, what discover must learn CloudFormation does as the caller,
# and the actions removed one at a time to see verify refuse
SERVICES: list[tuple[str, Callable[[LocalSandboxInfo], None], set[str], list[str]]] = [
    (
        "items-api",
        _table,
        {
            "iam:CreateRole",
            "iam:PassRole",
            "lambda:CreateFunction",
            "logs:CreateLogGroup",
            "dynamodb:CreateTable",
            "apigateway:POST",
        },
        ["dynamodb:CreateTable", "iam:PassRole"],
    ),
    (
        "events-worker",
        _queue_topic_rule,
        {
            "iam:CreateRole",
            "iam:PassRole",
            "lambda:CreateFunction",
            "logs:CreateLogGroup",
            "sqs:CreateQueue",
            "sns:CreateTopic",
            "events:PutRule",
            "lambda:CreateEventSourceMapping",
        },
        ["sqs:CreateQueue", "lambda:CreateFunction"],
    ),
]


@pytest.mark.parametrize(
    ("service", "holds", "learned", "removed"), SERVICES, ids=[s[0] for s in SERVICES]
)
def test_deploys_with_an_admin_role(  # noqa: PLR0917 - one argument per column of the table
    service_copy: Callable[[str], Path],
    osls: Path,
    tmp_path: Path,
    service: str,
    holds: Callable[[LocalSandboxInfo], None],
    learned: set[str],
    removed: list[str],
) -> None:
    """With Allow */* on the sandbox role, osls deploys the service (the stack completes and
    holds what the service declares), deploys a code change as an update, and removes it."""
    folder = service_copy(service)
    with LocalSandbox(authorization_log=tmp_path / "authorization.jsonl") as info:
        iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
        iam.put_role_policy(
            RoleName="discover-sandbox", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        env = deploy_env(role_session(info, "admin-deploy"), info)

        def osls_run(*command: str) -> None:
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

        cfn = admin_session(info).client("cloudformation", endpoint_url=info.endpoint)
        osls_run("deploy")
        (stack,) = cfn.describe_stacks(StackName=f"{service}-dev")["Stacks"]
        assert stack["StackStatus"] == "UPDATE_COMPLETE"
        holds(info)
        handler = folder / "handler.js"
        handler.write_text(handler.read_text() + "\n// a change to deploy\n")
        osls_run("deploy")
        events = cfn.describe_stack_events(StackName=f"{service}-dev")["StackEvents"]
        assert "UPDATE_COMPLETE" in {
            e["ResourceStatus"] for e in events if e["ResourceType"] == "AWS::Lambda::Function"
        }
        osls_run("remove")
        summaries = cfn.list_stacks()["StackSummaries"]
        assert {s["StackStatus"] for s in summaries} == {"DELETE_COMPLETE"}


def _actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def _without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    statements = []
    for statement in policy["Statement"]:
        kept = [a for a in statement["Action"] if a != action]
        if kept:
            statements.append({**statement, "Action": kept})
    return {**policy, "Statement": statements}


# The observed loop (~30 runs a service) is proven on one service; every one converges with
# the default strategy in test_e2e_predicted and test_local_services.
OBSERVED = SERVICES[:1]


@pytest.mark.parametrize(
    ("service", "holds", "learned", "removed"), OBSERVED, ids=[s[0] for s in OBSERVED]
)
def test_converges_and_verifies(  # noqa: PLR0917 - one argument per column of the table
    service_copy: Callable[[str], Path],
    osls: Path,
    service: str,
    holds: Callable[[LocalSandboxInfo], None],
    learned: set[str],
    removed: list[str],
) -> None:
    """From an empty role, discover converges; the permissions CloudFormation uses for the
    caller come from stack events; verify accepts the policy and refuses it without one of
    them, naming it."""
    folder = service_copy(service)
    # The observed loop learns each of CloudFormation's calls from a denial: ~30 runs.
    run = run_discover(
        "--local",
        "--cli",
        str(osls),
        "--quiet",
        "--strategy",
        "observed",
        # The create step: the lifecycle's steps are proven end to end on hello (test_e2e)
        # and on the newer services (test_local_services) with the default strategy.
        "--phases",
        "create",
        "--max-iterations",
        "40",
        cwd=folder,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    policy = json.loads((folder / ".discover" / "policy.json").read_text())
    actions = _actions(policy)
    assert all(iamdb.is_known_action(a) for a in actions)
    assert learned <= actions
    records = list(read_journal(folder / ".discover" / "journal.jsonl"))
    from_events = {
        d["action"]
        for r in records
        if r["event"] == "denials"
        for d in r["denials"]
        if d["source"] == "stack-event"
    }
    assert from_events, "no denial was read from the stack events"
    assert records[-1]["event"] == "stopped"

    verified = run_discover(
        "verify",
        "--local",
        "--cli",
        str(osls),
        "--phases",
        "create",
        "--policy",
        ".discover/policy.json",
        cwd=folder,
    )
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert json.loads(verified.stdout)["verified"] is True

    for action in removed:
        assert action in actions
        smaller = folder / f"without-{action.replace(':', '-')}.json"
        smaller.write_text(json.dumps(_without(policy, action)))
        refused = run_discover(
            "verify",
            "--local",
            "--cli",
            str(osls),
            "--phases",
            "create",
            "--policy",
            smaller.name,
            cwd=folder,
        )
        assert refused.returncode == 1, refused.stderr[-3000:]
        assert json.loads(refused.stdout)["first_denial"]["action"] == action
