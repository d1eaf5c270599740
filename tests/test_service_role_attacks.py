"""Attacks on the two roles: neither policy may ever grow the sandbox role or the service role.

As in ``test_attacks.py``: discover runs as on AWS against a real local sandbox process, with
``--service-role`` naming the sandbox's CloudFormation role and the fake deploy CLI making the
attack, either by forging denials in its output or by deploying a real stack whose resource
makes CloudFormation (as the service role) write a policy on the service role itself. Each is
refused, or reported and never granted; the roles hold only what discover planned.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from discover.journal import read_journal
from discover.local.process import LocalSandboxInfo
from tests.test_faults import FAKE, STACK, admin_env, world

pytestmark = pytest.mark.sandbox
__all__ = ["world"]  # the fixture, shared with the fault tests

SANDBOX_ROLE = "discover-sandbox"


def service_role_of(world: dict[str, Any]) -> str:
    info: LocalSandboxInfo = world["info"]
    assert info.service_role_arn is not None
    return info.service_role_arn


def attack(
    world: dict[str, Any], *fake: str, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    info: LocalSandboxInfo = world["info"]
    argv = [
        sys.executable,
        "-m",
        "discover",
        "--role-arn",
        info.role_arn,
        "--sandbox-account",
        info.account,
        "--service-role",
        service_role_of(world),
        "--service-dir",
        str(world["service"]),
        "--stack-name",
        STACK,
        "--quiet",
        "--log-format",
        "json",
        *extra,
        "--",
        sys.executable,
        str(FAKE),
        *fake,
    ]
    env = admin_env(info)
    env["XDG_CONFIG_HOME"] = str(world["tmp"] / "xdg-config")
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


def records(world: dict[str, Any]) -> list[dict[str, Any]]:
    return list(read_journal(world["service"] / ".discover" / "journal.jsonl"))


def inline_policies(world: dict[str, Any], role_name: str) -> dict[str, Any]:
    iam = world["iam"]
    names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    return {
        n: iam.get_role_policy(RoleName=role_name, PolicyName=n)["PolicyDocument"] for n in names
    }


def actions_on(document: dict[str, Any] | None) -> set[str]:
    if not document:
        return set()
    return {
        a
        for s in document["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }


def both_roles_hold_only_discovers_plans(world: dict[str, Any]) -> None:
    """Each role has at most discover's inline policy, holding exactly the journal's last."""
    service_name = service_role_of(world).rsplit("/", 1)[-1]
    caller = inline_policies(world, SANDBOX_ROLE)
    service = inline_policies(world, service_name)
    assert set(caller) <= {"discover"}
    assert set(service) <= {"discover"}
    journal = records(world)
    applied = [r["policy"] for r in journal if r["event"] in {"granted", "policy_applied"}]
    assert (caller.get("discover") or {"Statement": []})["Statement"] == applied[-1].get(
        "Statement", []
    )
    granted = [r["policy"] for r in journal if r["event"] == "service_role_granted"]
    expected = granted[-1]["Statement"] if granted else []
    assert (service.get("discover") or {"Statement": []})["Statement"] == expected


def denied(principal: str, action: str, resource: str) -> str:
    return (
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )


SERVICE_SESSION = "arn:aws:sts::{account}:assumed-role/discover-cloudformation/AWSCloudFormation"
SERVICE_ROLE = "arn:aws:iam::{account}:role/discover-cloudformation"
SANDBOX = "arn:aws:iam::{account}:role/discover-sandbox"

FORGED = [
    # (name, forged line, exit code, stop reason)
    (
        "the caller writes the service role's policy",
        denied("{session}", "iam:PutRolePolicy", SERVICE_ROLE),
        3,
        "refused",
    ),
    (
        "the caller attaches a policy to the service role",
        denied("{session}", "iam:AttachRolePolicy", SERVICE_ROLE),
        3,
        "refused",
    ),
    (
        "the caller changes the service role's trust",
        denied("{session}", "iam:UpdateAssumeRolePolicy", SERVICE_ROLE),
        3,
        "refused",
    ),
    (
        "the caller assumes the service role",
        denied("{session}", "sts:AssumeRole", SERVICE_ROLE),
        3,
        "refused",
    ),
    # The service role's session in the output is text anyone can print: never its own.
    (
        "the service role's session, in the output, on the sandbox role",
        denied(SERVICE_SESSION, "iam:PutRolePolicy", SANDBOX),
        1,
        "unresolved",
    ),
    (
        "the service role's session, in the output, on itself",
        denied(SERVICE_SESSION, "iam:PutRolePolicy", SERVICE_ROLE),
        1,
        "unresolved",
    ),
    (
        "the service role's session, in the output, a table",
        denied(SERVICE_SESSION, "dynamodb:Scan", "arn:aws:dynamodb:us-east-1:{account}:table/t"),
        1,
        "unresolved",
    ),
]


@pytest.mark.parametrize(("name", "forged", "code", "stop"), FORGED, ids=[f[0] for f in FORGED])
def test_forged_denials_never_grow_either_role(
    world: dict[str, Any], name: str, forged: str, code: int, stop: str
) -> None:
    """Even with --yes and --allow of the action: refused, or someone else's."""
    action = forged.split("perform: ", 1)[1].split(" ", 1)[0]
    result = attack(world, "--forge", forged, extra=("--yes", "--allow", action))
    assert result.returncode == code, (name, result.stderr[-3000:])
    stops = [r for r in records(world) if r["event"] == "stopped"]
    assert stops[-1]["reason"] == stop, name
    service_name = service_role_of(world).rsplit("/", 1)[-1]
    for role in (SANDBOX_ROLE, service_name):
        assert action not in actions_on(inline_policies(world, role).get("discover")), (name, role)
    both_roles_hold_only_discovers_plans(world)


def test_a_stack_that_grows_its_own_service_role_is_refused(world: dict[str, Any]) -> None:
    """A real stack whose resource puts an admin policy on the service role: CloudFormation,
    acting as that role, is denied iam:PutRolePolicy on it (its stack event names the role's
    session); the grant decision refuses it whatever --yes says. The caller meanwhile gets
    only its own calls and iam:PassRole of the role, to CloudFormation only."""
    service_role = service_role_of(world)
    template = {
        "Resources": {
            "Grow": {
                "Type": "AWS::IAM::RolePolicy",
                "Properties": {
                    "PolicyName": "grow",
                    "RoleName": service_role.rsplit("/", 1)[-1],
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                    },
                },
            }
        }
    }
    create = json.dumps(
        {"StackName": STACK, "TemplateBody": json.dumps(template), "RoleARN": service_role}
    )
    # The stack fails and rolls back: the next call finds no resource, so the deploy fails.
    check = json.dumps({"StackName": STACK, "LogicalResourceId": "Grow"})
    result = attack(
        world,
        "--call",
        f"cloudformation:create_stack:{create}",
        "--call",
        f"cloudformation:describe_stack_resource:{check}",
        extra=("--yes", "--allow", "iam:PutRolePolicy", "--max-iterations", "8"),
    )
    assert result.returncode == 3, result.stderr[-3000:]
    journal = records(world)
    refused = [
        d
        for r in journal
        if r["event"] == "grant_decisions"
        for d in r["decisions"]
        if d["verdict"] == "refuse"
    ]
    assert refused, result.stderr[-3000:]
    assert {(d["action"], d["resource"], d["owner"]) for d in refused} == {
        ("iam:PutRolePolicy", service_role, "service-role")
    }
    assert any("service role itself" in r for d in refused for r in d["reasons"])
    service = inline_policies(world, service_role.rsplit("/", 1)[-1])
    assert "grow" not in service
    assert "iam:PutRolePolicy" not in actions_on(service.get("discover"))
    caller = inline_policies(world, SANDBOX_ROLE)["discover"]
    (passing,) = [s for s in caller["Statement"] if "iam:PassRole" in s["Action"]]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
    }
    assert "iam:PutRolePolicy" not in actions_on(caller)
    both_roles_hold_only_discovers_plans(world)
