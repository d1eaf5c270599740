"""Attacks: the deploy, its output and the repository, tried as an attacker would.

Each test runs discover as on AWS against a real local sandbox process, with the fake deploy
CLI (fixtures/fakecli/fake_deploy.py) making the attack: escalating for real, forging
denials in its output with its own session's ARN, shipping a journal or a config file in the
service folder, looking for the admin's credentials. Each attack is refused, or stops for a
confirmation nobody gives (no terminal: exit 3), as the grant decision says.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from discover.local.process import LocalSandboxInfo
from tests.test_faults import (
    admin_env,
    discover_argv,
    granted_actions,
    journal,
    last_stop,
    role_policy,
    world,
)

pytestmark = pytest.mark.sandbox
__all__ = ["world"]  # the fixture, shared with the fault tests

ROLE_NAME = "discover-sandbox"
OTHER_ACCOUNT = "999999999999"


def env_of(world: dict[str, Any]) -> dict[str, str]:
    """The admin's environment, with the user's own config folder in the test's (empty)."""
    env = admin_env(world["info"])
    env["XDG_CONFIG_HOME"] = str(world["tmp"] / "xdg-config")
    return env


def attack(
    world: dict[str, Any],
    *extra: str,
    fake: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        discover_argv(world, *extra, fake=fake),
        env=env or env_of(world),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def decisions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for r in records if r["event"] == "grant_decisions" for d in r["decisions"]]


def role_holds_only_discovers_plan(world: dict[str, Any]) -> None:
    """The role has no policy discover did not plan: at most its own inline policy, holding
    exactly the journal's last applied policy; nothing attached; no user was made."""
    iam = world["iam"]
    assert set(iam.list_role_policies(RoleName=ROLE_NAME)["PolicyNames"]) <= {"discover"}
    assert iam.list_attached_role_policies(RoleName=ROLE_NAME)["AttachedPolicies"] == []
    assert "backdoor" not in {u["UserName"] for u in iam.list_users()["Users"]}
    applied = [r["policy"] for r in journal(world) if r["event"] in {"granted", "policy_applied"}]
    on_role = role_policy(world)
    assert (on_role or {"Statement": []})["Statement"] == applied[-1].get("Statement", [])


def test_the_role_cannot_grant_itself_admin(world: dict[str, Any]) -> None:
    """The deploy calls iam:PutRolePolicy on its own role (then would make a user): the denial
    is refused whatever it says, the run stops (exit 3), and the role holds only discover's
    plan. The report names the fence and the refusal."""
    result = attack(world, "--yes", "--allow", "iam:PutRolePolicy", fake=("--escalate",))
    assert result.returncode == 3, result.stderr[-3000:]
    records = journal(world)
    assert last_stop(records) == "refused"
    refused = [d for d in decisions(records) if d["verdict"] == "refuse"]
    assert [d["action"] for d in refused] == ["iam:PutRolePolicy"]
    assert "sandbox role itself" in refused[0]["reasons"][0]
    assert "iam:PutRolePolicy" not in granted_actions(role_policy(world))
    role_holds_only_discovers_plan(world)
    report = (world["service"] / ".discover" / "report.md").read_text()
    assert "## Safety" in report
    assert "stack fake-dev in us-east-1" in report
    assert "refuse" in report


def _denied(action: str, resource: str | None, principal: str = "{session}") -> str:
    on = f" on resource: {resource}" if resource else ""
    return (
        f"User: {principal} is not authorized to perform: {action}{on} because no "
        f"identity-based policy allows the {action} action"
    )


SELF_WRITES = [
    ("inline policy on the role", "iam:PutRolePolicy", "{role}"),
    ("managed policy on the role", "iam:AttachRolePolicy", "{role}"),
    ("its permissions boundary", "iam:PutRolePermissionsBoundary", "{role}"),
    ("remove its boundary", "iam:DeleteRolePermissionsBoundary", "{role}"),
    ("its tags", "iam:TagRole", "{role}"),
    ("PassRole, no resource named (*)", "iam:PassRole", None),
]


@pytest.mark.parametrize(
    ("name", "action", "resource"), SELF_WRITES, ids=[r[0] for r in SELF_WRITES]
)
def test_forged_denials_of_writes_on_the_role_are_refused(
    world: dict[str, Any], name: str, action: str, resource: str | None
) -> None:
    """A denial in the deploy's output, with this run's own session, asking for a write on
    the sandbox role: refused even with --yes and --allow of the action."""
    forged = _denied(action, resource)
    result = attack(world, "--yes", "--allow", action, fake=("--forge", forged))
    assert result.returncode == 3, (name, result.stderr[-3000:])
    assert last_stop(journal(world)) == "refused"
    assert action not in granted_actions(role_policy(world)), name
    role_holds_only_discovers_plan(world)


@pytest.mark.parametrize(
    ("name", "forged", "code", "stop", "escaped"),
    [
        (
            "another session's suffix on ours",
            _denied(
                "dynamodb:Scan",
                "arn:aws:dynamodb:us-east-1:{account}:table/prod-orders",
                "{session}:x/ops",
            ),
            1,
            "unresolved",
            "",
        ),
        (
            "a quoted denial with no principal (a Lambda's log line)",
            "ERROR is not authorized to perform: dynamodb:Scan on resource: "
            "arn:aws:dynamodb:us-east-1:{account}:table/prod-orders",
            3,
            "refused",
            "",
        ),
        (
            "our session, a table the service does not own",
            _denied("dynamodb:Scan", "arn:aws:dynamodb:us-east-1:{account}:table/prod-orders"),
            3,
            "refused",
            "",
        ),
        (
            "AssumeRole of another account's role named like the stack",
            _denied("sts:AssumeRole", f"arn:aws:iam::{OTHER_ACCOUNT}:role/fake-dev-deployer"),
            3,
            "refused",
            "",
        ),
        (
            # The parser keeps a templated resource as written and marks it not grantable:
            # denied, but nothing grantable named (the grant decision refuses "${" too:
            # tests/test_decision.py).
            "a policy variable in the resource",
            _denied("s3:GetObject", "arn:aws:s3:::fake-dev-artifacts/${{aws:username}}/x"),
            1,
            "unresolved",
            "",
        ),
        (
            "a control character in the resource",
            _denied("s3:GetObject", "arn:aws:s3:::fake-dev-artifacts/a\x1b]0;owned\x07b"),
            3,
            "refused",
            "\\u001b",
        ),
    ],
)
def test_forged_denials_are_not_granted(  # noqa: PLR0917 - one argument per column of the table
    world: dict[str, Any], name: str, forged: str, code: int, stop: str, escaped: str
) -> None:
    """Someone else's denial is not granted; one outside the fence waits for a yes nobody
    gives; one with a control character or a policy variable is refused, and never printed
    raw."""
    result = attack(world, fake=("--forge", forged))
    assert result.returncode == code, (name, result.stderr[-3000:])
    assert last_stop(journal(world)) == stop, name
    granted = granted_actions(role_policy(world))
    assert not granted & {"dynamodb:Scan", "sts:AssumeRole"}, name
    on_role = json.dumps(role_policy(world))
    assert "${" not in on_role
    assert "\\u001b" not in on_role
    assert "\x1b" not in result.stderr
    assert escaped in result.stderr, name


@pytest.mark.parametrize(
    ("name", "extra", "code"),
    [
        ("not pre-approved: stops for a yes", (), 3),
        ("--allow-account pre-approves that account", ("--allow-account", OTHER_ACCOUNT), 0),
    ],
)
def test_a_resource_in_another_account_needs_a_yes(
    world: dict[str, Any], name: str, extra: tuple[str, ...], code: int
) -> None:
    """A shared queue in another account is confirmed, or pre-approved by --allow-account."""
    forged = _denied("sqs:SendMessage", f"arn:aws:sqs:us-east-1:{OTHER_ACCOUNT}:shared-queue")
    marker = str(world["tmp"] / "forged-once")
    result = attack(world, *extra, fake=("--forge", forged, "--once-marker", marker))
    assert result.returncode == code, (name, result.stderr[-3000:])
    assert ("sqs:SendMessage" in granted_actions(role_policy(world))) == (code == 0), name


TRUSTED_IN_REPO = [
    ("sandbox_account", 'sandbox_account = "{account}"'),
    ("high_risk", "high_risk = []"),
    ("allow", 'allow = ["iam:CreateUser"]'),
    ("yes", "yes = true"),
    ("stack_name", 'stack_name = "prod-api"'),
]


@pytest.mark.parametrize(("key", "line"), TRUSTED_IN_REPO, ids=[k for k, _ in TRUSTED_IN_REPO])
def test_the_repository_cannot_configure_its_guards(
    world: dict[str, Any], key: str, line: str
) -> None:
    """A discover.toml in the service folder that sets a guard's key: exit 2, one line naming
    the key, before anything is written."""
    info: LocalSandboxInfo = world["info"]
    (world["service"] / "discover.toml").write_text(line.format(account=info.account) + "\n")
    result = attack(world)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{key} cannot be set in the service folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (world["service"] / ".discover" / "journal.jsonl").exists()
    assert role_policy(world) is None


ADMIN_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def test_an_inline_policy_discover_did_not_write_is_never_touched(world: dict[str, Any]) -> None:
    """``policy_name`` naming the role's existing policy: exit 2, and that policy is intact."""
    world["iam"].put_role_policy(
        RoleName=ROLE_NAME, PolicyName="ops", PolicyDocument=json.dumps(ADMIN_DOCUMENT)
    )
    (world["service"] / "discover.toml").write_text('policy_name = "ops"\n')
    result = attack(world)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "that discover did not write" in result.stderr
    kept = world["iam"].get_role_policy(RoleName=ROLE_NAME, PolicyName="ops")
    assert kept["PolicyDocument"] == ADMIN_DOCUMENT


def test_out_from_the_repository_stays_in_the_service_folder(world: dict[str, Any]) -> None:
    """``out = "../x"`` in the service folder's discover.toml: exit 2, nothing written there."""
    (world["service"] / "discover.toml").write_text('out = "../stolen.json"\n')
    result = attack(world)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "outside the service folder" in result.stderr
    assert not (world["tmp"] / "stolen.json").exists()


def _shipped_journal(world: dict[str, Any], name: str) -> None:
    """A journal that comes with the repository: its backup puts ``*`` on ``*`` back."""
    info: LocalSandboxInfo = world["info"]
    state = world["service"] / ".discover"
    state.mkdir(exist_ok=True)
    record = {
        "event": "backup",
        "schema": 1,
        "role_arn": info.role_arn,
        "backup": {"inline": {"discover": ADMIN_DOCUMENT}, "attached": []},
    }
    (state / name).write_text(json.dumps(record) + "\n")


def test_restore_never_uses_a_shipped_journal(world: dict[str, Any]) -> None:
    """A shipped ``journal-0.jsonl`` sorts first: --restore refuses it alone (exit 2), and
    after a real run restores that run's own backup (no policy), never the shipped ``*``."""
    _shipped_journal(world, "journal-0.jsonl")
    alone = attack(world, "--restore")
    assert alone.returncode == 2, alone.stderr[-3000:]
    assert "that discover wrote here holds a backup" in alone.stderr
    assert role_policy(world) is None

    assert attack(world).returncode == 0
    restored = attack(world, "--restore")
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert role_policy(world) is None


def test_resume_refuses_a_journal_edited_after_the_fact(world: dict[str, Any]) -> None:
    """A journal line edited to ``*`` on ``*`` (its MAC no longer verifies): --resume refuses
    (exit 2) and puts nothing on the role."""
    fake = ("--call", 'iam:create_user:{"UserName": "fake-dev-user"}')
    assert attack(world, fake=fake).returncode == 3  # stops for a yes: resumable
    path = world["service"] / ".discover" / "journal.jsonl"
    lines = path.read_text().splitlines()
    edited = []
    for line in lines:
        record = json.loads(line)
        if record["event"] == "granted":
            record["policy"] = ADMIN_DOCUMENT
        edited.append(json.dumps(record, sort_keys=True))
    path.write_text("\n".join(edited) + "\n")
    before = role_policy(world)
    result = attack(world, "--resume", fake=fake)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "was not written by discover on this machine" in result.stderr
    assert role_policy(world) == before


def test_resume_reapplies_only_through_the_grant_decision(world: dict[str, Any]) -> None:
    """A run granted iam:CreateUser with --allow, then stopped for another yes: --resume
    without --allow stops before putting that policy back (exit 2); with it, it finishes."""
    fake = (
        "--call",
        'iam:create_user:{"UserName": "fake-dev-user"}',
        "--call",
        'iam:create_access_key:{"UserName": "fake-dev-user"}',
    )
    first = attack(world, "--allow", "iam:CreateUser", fake=fake)
    assert first.returncode == 3, first.stderr[-3000:]  # CreateAccessKey waits for a yes
    assert "iam:CreateUser" in granted_actions(role_policy(world))
    refused = attack(world, "--resume", fake=fake)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "does not allow" in refused.stderr
    allow = ("--allow", "iam:CreateUser", "--allow", "iam:CreateAccessKey")
    resumed = attack(world, "--resume", *allow, fake=fake)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed" in [r["event"] for r in journal(world)]


def test_the_deploy_cannot_read_the_admins_credentials(world: dict[str, Any]) -> None:
    """Admin keys in discover's environment and in ~/.aws/credentials: the deploy reads every
    /proc/*/environ it can and the file by its path; neither secret is in any run's log."""
    info: LocalSandboxInfo = world["info"]
    home = world["tmp"] / "home"
    (home / ".aws").mkdir(parents=True)
    credentials = home / ".aws" / "credentials"
    credentials.write_text("[default]\naws_secret_access_key = FILESECRETofTheAdmin123\n")
    env = env_of(world)
    env["HOME"] = str(home)
    result = attack(world, fake=("--steal", "--steal-path", str(credentials)), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    logs = "".join(p.read_text() for p in (world["service"] / ".discover" / "iterations").iterdir())
    assert "processes visible" in logs
    assert info.secret_access_key not in logs
    assert "FILESECRETofTheAdmin123" not in logs
