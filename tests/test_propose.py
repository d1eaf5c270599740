"""``--propose`` end to end: a sandbox from ``discover sandbox up``, discover proposing without
a terminal (exit 5), the test applying each proposal out of band with boto3 as the admin (as
an IaC pipeline would, in a policy of its own), and ``--resume`` until it converges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from discover.journal import read_events
from discover.local_session import SandboxState, read_state
from discover.proposal import PENDING_EXIT_CODE
from discover.run_events import AppliedOutOfBand, Approved, ProposalMissing, Proposed
from tests.conftest import FIXTURES

pytestmark = pytest.mark.sandbox

FAKE = FIXTURES / "fakecli" / "fake_deploy.py"
CALLS = (
    "s3:list_buckets:{}",
    'sqs:create_queue:{"QueueName": "fake-dev-queue"}',
    "logs:describe_log_groups:{}",
)
PIPELINE_POLICY = "terraform-managed"  # what the IaC pipeline names the role's policy


def discover(service: Path, *args: str, calls: tuple[str, ...] = CALLS) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "discover", "--local", "--propose", "--stack-name", "fake-dev"]
        + ["--log-format", "json", "--quiet", *args, "--", sys.executable, str(FAKE)]
        + [a for call in calls for a in ("--call", call)],
        cwd=service,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Path, SandboxState]]:
    """A service folder with a sandbox of its own, started by ``discover sandbox up``."""
    service = tmp_path / "svc"
    service.mkdir()
    started = subprocess.run(
        [sys.executable, "-m", "discover", "sandbox", "up"],
        cwd=service,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    state = read_state(service / ".discover")
    assert state is not None
    try:
        yield service, state
    finally:
        subprocess.run(
            [sys.executable, "-m", "discover", "sandbox", "down"],
            cwd=service,
            capture_output=True,
            timeout=120,
            check=False,
        )


def admin_iam(state: SandboxState) -> Any:
    return boto3.client(
        "iam",
        endpoint_url=state.endpoint,
        region_name=state.region,
        aws_access_key_id=state.access_key_id,
        aws_secret_access_key=state.secret_access_key,
    )


def pipeline_apply(state: SandboxState, document: str, *, managed: bool = False) -> None:
    """What an IaC pipeline does with the proposal: its own policy on the role."""
    iam = admin_iam(state)
    if not managed:
        iam.put_role_policy(
            RoleName="discover-sandbox", PolicyName=PIPELINE_POLICY, PolicyDocument=document
        )
        return
    arn = f"arn:aws:iam::{state.account}:policy/{PIPELINE_POLICY}"
    try:
        iam.create_policy(PolicyName=PIPELINE_POLICY, PolicyDocument=document)
        iam.attach_role_policy(RoleName="discover-sandbox", PolicyArn=arn)
    except iam.exceptions.EntityAlreadyExistsException:
        for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not version["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)


@pytest.mark.parametrize("managed", [False, True], ids=["inline policy", "managed policy"])
def test_proposals_applied_out_of_band_converge(
    up: tuple[Path, SandboxState], managed: bool
) -> None:
    service, state = up
    state_dir = service / ".discover"
    result = discover(service)
    runs = 1
    while result.returncode == PENDING_EXIT_CODE:
        assert "discover: proposal written to" in result.stderr
        assert "--resume" in result.stderr
        proposed = (state_dir / "proposed.json").read_text()
        assert "+ " in (state_dir / "proposed.diff").read_text()
        assert "denied after run" in (state_dir / "proposed.md").read_text()
        pipeline_apply(state, proposed, managed=managed)
        result = discover(service, "--resume")
        runs += 1
        assert runs <= len(CALLS) + 1, result.stderr
    assert result.returncode == 0, result.stderr
    assert runs == len(CALLS) + 1
    policy = json.loads(result.stdout)
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:ListAllMyBuckets", "sqs:CreateQueue", "logs:DescribeLogGroups"}

    # discover wrote nothing to IAM: no policy of its own, no lock tag on the role.
    iam = admin_iam(state)
    inline = iam.list_role_policies(RoleName="discover-sandbox")["PolicyNames"]
    assert inline == ([] if managed else [PIPELINE_POLICY])
    tags = iam.list_role_tags(RoleName="discover-sandbox")["Tags"]
    assert [t for t in tags if t["Key"].startswith("discover")] == []

    events = read_events(state_dir / "journal.jsonl")
    assert len([e for e in events if isinstance(e, Proposed)]) == len(CALLS)
    applied = [e for e in events if isinstance(e, AppliedOutOfBand)]
    assert len(applied) == len(CALLS)
    assert all(PIPELINE_POLICY in e.by for e in applied)
    assert not [e for e in events if isinstance(e, Approved)]
    report = (state_dir / "report.md").read_text()
    assert "applied out of band" in report


def test_a_partly_applied_proposal_is_said_and_not_deployed(
    up: tuple[Path, SandboxState],
) -> None:
    service, state = up
    state_dir = service / ".discover"
    calls = ("s3:list_buckets:{}", "logs:describe_log_groups:{}")
    assert discover(service, calls=calls).returncode == PENDING_EXIT_CODE
    pipeline_apply(state, (state_dir / "proposed.json").read_text())
    assert discover(service, "--resume", calls=calls).returncode == PENDING_EXIT_CODE
    # The pipeline applies the proposal with one of its two actions left out.
    document = json.loads((state_dir / "proposed.json").read_text())
    (statement,) = document["Statement"]
    assert sorted(statement["Action"]) == ["logs:DescribeLogGroups", "s3:ListAllMyBuckets"]
    kept = {**statement, "Action": ["s3:ListAllMyBuckets"]}
    pipeline_apply(state, json.dumps({**document, "Statement": [kept]}))
    runs_before = len(list((state_dir / "iterations").iterdir()))

    result = discover(service, "--resume", calls=calls)
    assert result.returncode == PENDING_EXIT_CODE
    assert "the proposal is only partly applied: the role lacks 1 of 2 grant(s):" in result.stderr
    assert "  - logs:DescribeLogGroups on *" in result.stderr
    assert len(list((state_dir / "iterations").iterdir())) == runs_before  # no deploy ran
    events = read_events(state_dir / "journal.jsonl")
    missing = [e for e in events if isinstance(e, ProposalMissing)]
    assert missing[-1].missing == ("logs:DescribeLogGroups on *",)
    assert missing[-1].total == 2


def test_format_writes_the_terraform_document_beside_the_json(
    up: tuple[Path, SandboxState],
) -> None:
    service, _ = up
    result = discover(service, "--format", "terraform", calls=CALLS[:1])
    assert result.returncode == PENDING_EXIT_CODE
    terraform = (service / ".discover" / "proposed.tf").read_text()
    assert 'data "aws_iam_policy_document"' in terraform
    assert '"s3:ListAllMyBuckets"' in terraform
