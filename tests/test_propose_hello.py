"""``--propose`` on the real hello service with osls: every proposal applied out of band by the
test (as an IaC pipeline would, in a policy of its own), ``--resume`` after each, until the
deploy succeeds; then ``verify`` accepts the policy discover proposed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from discover.journal import read_events
from discover.local_session import read_state
from discover.proposal import PENDING_EXIT_CODE
from discover.run_events import AppliedOutOfBand, Proposed
from tests.conftest import run_discover

pytestmark = pytest.mark.sandbox
MAX_PROPOSALS = 60


def discover(service: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_discover(*args, cwd=service)


def test_hello_converges_on_proposals_applied_out_of_band(
    service_copy: Callable[[str], Path], osls: Path
) -> None:
    service = service_copy("hello")
    assert discover(service, "sandbox", "up").returncode == 0
    try:
        state = read_state(service / ".discover")
        assert state is not None
        iam = boto3.client(
            "iam",
            endpoint_url=state.endpoint,
            region_name=state.region,
            aws_access_key_id=state.access_key_id,
            aws_secret_access_key=state.secret_access_key,
        )
        flags = ("--local", "--propose", "--cli", str(osls), "--quiet", "--phases", "create")
        flags += ("--max-iterations", "80")
        result = discover(service, *flags)
        proposals = 0
        while result.returncode == PENDING_EXIT_CODE and proposals < MAX_PROPOSALS:
            proposals += 1
            iam.put_role_policy(
                RoleName="discover-sandbox",
                PolicyName="sandbox-deploy",  # the pipeline's policy, not discover's
                PolicyDocument=(service / ".discover" / "proposed.json").read_text(),
            )
            result = discover(service, *flags, "--resume")
        assert result.returncode == 0, result.stderr[-3000:]
        policy = json.loads(result.stdout)
        actions = {a for s in policy["Statement"] for a in s["Action"]}
        assert {"cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"} <= actions
        assert iam.list_role_policies(RoleName="discover-sandbox")["PolicyNames"] == [
            "sandbox-deploy"
        ]
        events = read_events(service / ".discover" / "journal.jsonl")
        assert len([e for e in events if isinstance(e, Proposed)]) == proposals
        assert len([e for e in events if isinstance(e, AppliedOutOfBand)]) == proposals
        print(f"hello: {proposals} proposal(s) applied out of band")
    finally:
        discover(service, "sandbox", "down")
