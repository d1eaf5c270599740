"""End to end: the real osls CLI deploys through ``discover --local`` into the local sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from discover import iamdb
from discover.journal import read_journal
from tests.conftest import run_discover

pytestmark = pytest.mark.e2e


def assert_least_privilege(policy: dict[str, Any], journal: Path) -> None:
    """Every action real and canonical; "*" only where IAM has no resource type for the
    action, or the denial that caused the grant named no resource."""
    statements = policy["Statement"]
    assert statements
    unnamed = {
        g["action"]
        for r in read_journal(journal)
        if r["event"] == "granted"
        for g in r["grants"]
        if g["resource"] == "*" and g["denial"]["resource"] is None
    }
    for statement in statements:
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        for action in statement["Action"]:
            assert iamdb.is_known_action(action), action
            assert "*" not in action
            if "*" in resources:
                assert not iamdb.resource_types(action) or action in unnamed, action


def test_hello_converges_and_verifies(service_copy: Callable[[str], Path], osls: Path) -> None:
    """discover --local grows an empty role until osls deploys hello; verify accepts the policy
    from scratch and rejects it with one action removed."""
    service = service_copy("hello")
    run = run_discover("--local", "--cli", str(osls), "--quiet", cwd=service)
    assert run.returncode == 0, run.stderr[-3000:]
    policy = json.loads((service / ".discover" / "policy.json").read_text())
    assert json.loads(run.stdout) == policy
    assert_least_privilege(policy, service / ".discover" / "journal.jsonl")
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"} <= actions
    assert "s3:PutObject" in actions
    events = [r["event"] for r in read_journal(service / ".discover" / "journal.jsonl")]
    assert events[0] == "started"
    assert events[-1] == "stopped"
    assert (service / ".discover" / "report.md").read_text().count("| `") >= len(actions)

    verified = run_discover(
        "verify", "--local", "--cli", str(osls), "--policy", ".discover/policy.json", cwd=service
    )
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert json.loads(verified.stdout)["verified"] is True

    # One action fewer: the deploy must now be refused, and verify must say which.
    removed = "cloudformation:ExecuteChangeSet"
    for statement in policy["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != removed]
    policy["Statement"] = [s for s in policy["Statement"] if s["Action"]]
    (service / "smaller.json").write_text(json.dumps(policy))
    refused = run_discover(
        "verify", "--local", "--cli", str(osls), "--policy", "smaller.json", cwd=service
    )
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert json.loads(refused.stdout)["first_denial"]["action"] == removed
