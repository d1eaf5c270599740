"""Fault injection: each way a run can go wrong, against a real local sandbox process.

discover runs as on AWS (admin credentials in the environment, ``--role-arn``,
``--sandbox-account``), pointed at the sandbox by ``AWS_ENDPOINT_URL``, with a small deploy CLI
(fixtures/fakecli) that makes real AWS calls and can hang, crash, expire or strike back. Each
test checks the exit code, the outcome in the journal, the role's final policy, and that the
journal is whole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import botocore.awsrequest
import botocore.exceptions
import pytest

from discover.journal import read_journal
from discover.local.process import LocalSandboxInfo
from discover.policy import PolicyDocument
from discover.sandbox import BLOCKING_STATES, AwsSandbox
from tests.conftest import FIXTURES, admin_session

pytestmark = pytest.mark.sandbox

FAKE = FIXTURES / "fakecli" / "fake_deploy.py"
STACK = "fake-dev"
BUCKET = "fake-dev-artifacts"
# What the fake deploy does when all goes well: four calls, four grants.
CALLS = (
    "s3:list_buckets:{}",
    f's3:put_object:{{"Bucket": "{BUCKET}", "Key": "build/1/app.zip", "Body": "x"}}',
    'sqs:create_queue:{"QueueName": "fake-dev-queue"}',
    "logs:describe_log_groups:{}",
)


@pytest.fixture
def world(sandbox: LocalSandboxInfo, tmp_path: Path) -> dict[str, Any]:
    """The sandbox with the fake service's bucket, an empty service folder, admin clients."""
    admin = admin_session(sandbox)
    admin.client("s3", endpoint_url=sandbox.endpoint).create_bucket(Bucket=BUCKET)
    service = tmp_path / "svc"
    service.mkdir()
    return {
        "info": sandbox,
        "service": service,
        "iam": admin.client("iam", endpoint_url=sandbox.endpoint),
        "tmp": tmp_path,
    }


def discover_argv(
    world: dict[str, Any], *extra: str, fake: tuple[str, ...] = (), quiet: bool = True
) -> list[str]:
    info: LocalSandboxInfo = world["info"]
    fake_args = [a for call in CALLS for a in ("--call", call)] + list(fake)
    return [
        sys.executable,
        "-m",
        "discover",
        "--role-arn",
        info.role_arn,
        "--sandbox-account",
        info.account,
        "--service-dir",
        str(world["service"]),
        "--stack-name",
        STACK,
        *(["--quiet"] if quiet else []),
        "--log-format",
        "json",
        *extra,
        "--",
        sys.executable,
        str(FAKE),
        *fake_args,
    ]


def admin_env(info: LocalSandboxInfo) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=info.access_key_id,
        AWS_SECRET_ACCESS_KEY=info.secret_access_key,
        AWS_ENDPOINT_URL=info.endpoint,
        AWS_REGION=info.region,
    )
    return env


def run(
    world: dict[str, Any], *extra: str, fake: tuple[str, ...] = (), quiet: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        discover_argv(world, *extra, fake=fake, quiet=quiet),
        env=admin_env(world["info"]),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def run_striking(
    world: dict[str, Any], counter: Path, *extra: str, fake: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``run``, sending discover the signal the fake deploy asks for in ``COUNTER.strike``
    (in its own PID namespace, the deploy cannot reach discover itself)."""
    process = subprocess.Popen(
        discover_argv(world, *extra, fake=fake),
        env=admin_env(world["info"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    strike = Path(f"{counter}.strike")
    while process.poll() is None and not strike.exists():
        time.sleep(0.01)
    if strike.exists() and process.poll() is None:
        process.send_signal(getattr(signal, f"SIG{strike.read_text()}"))
    out, err = process.communicate(timeout=180)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def role_policy(world: dict[str, Any]) -> dict[str, Any] | None:
    try:
        answer = world["iam"].get_role_policy(RoleName="discover-sandbox", PolicyName="discover")
    except botocore.exceptions.ClientError:
        return None
    document: dict[str, Any] = answer["PolicyDocument"]
    return document


def journal(world: dict[str, Any]) -> list[dict[str, Any]]:
    """The journal's records, after checking every line is whole JSON (one torn line at most)."""
    path = world["service"] / ".discover" / "journal.jsonl"
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = list(read_journal(path))
    assert len(lines) - len(records) <= 1, "more than one torn line"
    started = [r["iteration"] for r in records if r["event"] == "run_started"]
    assert started == sorted(started)
    return records


def last_stop(records: list[dict[str, Any]]) -> str:
    return [r for r in records if r["event"] == "stopped"][-1]["reason"]


def granted_actions(document: dict[str, Any] | None) -> set[str]:
    if document is None:
        return set()
    return {a for s in document["Statement"] for a in s["Action"]}


def test_baseline_converges(world: dict[str, Any]) -> None:
    """With nothing going wrong, the fake deploy converges: one grant per call."""
    result = run(world)
    assert result.returncode == 0, result.stderr[-2000:]
    records = journal(world)
    assert last_stop(records) == "succeeded"
    assert granted_actions(role_policy(world)) == {
        "s3:ListAllMyBuckets",
        "s3:PutObject",
        "sqs:CreateQueue",
        "logs:DescribeLogGroups",
    }
    assert [r["event"] for r in records][:2] == ["started", "backup"]


def test_in_a_pipe_each_event_is_one_json_line_and_stdout_only_the_policy(
    world: dict[str, Any],
) -> None:
    """Without a terminal: stderr has one JSON line per journal event (the planned grant
    aside), stdout holds the policy alone, and the deploy's own output is in neither."""
    result = run(world, fake=("--print", "DEPLOY-SAYS-HELLO"), quiet=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == role_policy(world)
    assert "DEPLOY-SAYS-HELLO" not in result.stdout
    # (The text is in the deploy command, which the ``started`` line names.)
    said = [line for line in result.stderr.splitlines() if '"event": "started"' not in line]
    assert "DEPLOY-SAYS-HELLO" not in "\n".join(said)
    first_log = world["service"] / ".discover" / "iterations" / "01.log"
    assert "DEPLOY-SAYS-HELLO" in first_log.read_text()
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    journaled = [r["event"] for r in journal(world) if r["event"] != "grant_planned"]
    assert [line["event"] for line in logged] == journaled
    assert all("policy" not in line for line in logged)


def test_deploy_hangs(world: dict[str, Any]) -> None:
    """A hanging deploy is killed at --run-timeout; the run stops with exit 4, nothing granted."""
    began = time.monotonic()
    result = run(world, "--run-timeout", "2", fake=("--hang", "60"))
    assert time.monotonic() - began < 45
    assert result.returncode == 4, result.stderr[-2000:]
    records = journal(world)
    assert last_stop(records) == "deploy-failed"
    assert [r["timed_out"] for r in records if r["event"] == "run_finished"] == [True]
    assert role_policy(world) is None


def test_deploy_crashes(world: dict[str, Any]) -> None:
    """A deploy that aborts with binary output stops the run with exit 4 and its tail shown."""
    result = run(world, fake=("--crash",))
    assert result.returncode == 4, result.stderr[-2000:]
    assert "binary garbage" in result.stderr
    assert last_stop(journal(world)) == "deploy-failed"
    assert role_policy(world) is None


def test_credentials_expire_mid_run(world: dict[str, Any]) -> None:
    """ExpiredToken in a run's output renews the session and re-runs, granting nothing for it."""
    expired = (
        "An error occurred (ExpiredToken) when calling the CreateChangeSet operation: "
        "The security token included in the request is expired"
    )
    marker = world["tmp"] / "expired-once"
    result = run(world, fake=("--once-marker", str(marker), "--once-print", expired))
    assert result.returncode == 0, result.stderr[-2000:]
    records = journal(world)
    assert [r["event"] for r in records].count("session_expired") == 1
    assert len(granted_actions(role_policy(world))) == 4


def test_foreign_principal_is_never_granted(world: dict[str, Any]) -> None:
    """Another principal's denial is reported (exit 1) and nothing is granted to the role."""
    other = (
        "User: arn:aws:sts::123456789012:assumed-role/OtherRole/ci is not authorized to perform:"
        " s3:GetObject on resource: arn:aws:s3:::elsewhere/key because no identity-based"
        " policy allows the s3:GetObject action"
    )
    result = run(world, fake=("--once-marker", str(world["tmp"] / "m"), "--once-print", other))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "OtherRole" not in json.dumps(role_policy(world))
    assert last_stop(journal(world)) == "unresolved"


def test_wrong_account_is_refused_before_any_write(world: dict[str, Any]) -> None:
    """A sandbox account that is not the credentials' account: exit 2, role and folder untouched."""
    result = run(world, "--sandbox-account", "999999999999")
    assert result.returncode == 2
    assert "account mismatch" in result.stderr
    assert "Traceback" not in result.stderr
    assert role_policy(world) is None
    assert not (world["service"] / ".discover" / "journal.jsonl").exists()


def test_sigkill_then_resume_ends_with_the_same_policy(world: dict[str, Any]) -> None:
    """Killed (SIGKILL) after its second run, a discovery resumed with --resume ends with the
    policy an uninterrupted run finds, byte for byte."""
    counter = world["tmp"] / "runs"
    killed = run_striking(
        world, counter, fake=("--counter", str(counter), "--signal-parent", "KILL", "--on-run", "2")
    )
    assert killed.returncode == -signal.SIGKILL
    partial = journal(world)
    assert "stopped" not in [r["event"] for r in partial]

    resumed = run(world, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    records = journal(world)
    assert "resumed" in [r["event"] for r in records]
    assert last_stop(records) == "succeeded"
    resumed_policy = (world["service"] / ".discover" / "policy.json").read_text()

    # The same discovery, uninterrupted, in a fresh folder.
    world["service"] = world["tmp"] / "svc2"
    world["service"].mkdir()
    world["iam"].delete_role_policy(RoleName="discover-sandbox", PolicyName="discover")
    clean = run(world)
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert (world["service"] / ".discover" / "policy.json").read_text() == resumed_policy


def test_sigint_during_grant_exits_130_consistently(world: dict[str, Any]) -> None:
    """SIGINT while discover reads a run and applies its grant: exit 130, the role holds a
    policy the journal knows (the one before or the one planned), and --resume finishes."""
    counter = world["tmp"] / "runs"
    result = run_striking(
        world, counter, fake=("--counter", str(counter), "--signal-parent", "INT", "--on-run", "2")
    )
    assert result.returncode == 130, result.stderr[-2000:]
    records = journal(world)
    policies = [
        PolicyDocument.from_dict(r["policy"])
        for r in records
        if r["event"] in {"grant_planned", "granted", "policy_applied"}
    ]
    on_role = role_policy(world)
    current = PolicyDocument.from_dict(on_role) if on_role else PolicyDocument()
    assert current in policies
    resumed = run(world, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(granted_actions(role_policy(world))) == 4


def test_second_concurrent_run_is_refused(world: dict[str, Any]) -> None:
    """While one run holds the folder and the role, a second one in the same folder, and one
    in another folder on the same role, are refused with exit 2; the first finishes."""
    release = world["tmp"] / "release"
    first = subprocess.Popen(
        discover_argv(world, fake=("--hold-until", str(release))),
        env=admin_env(world["info"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        journal_path = world["service"] / ".discover" / "journal.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if journal_path.exists() and "run_started" in journal_path.read_text():
                break
            time.sleep(0.2)
        same_folder = run(world)
        assert same_folder.returncode == 2
        assert "another discover run" in same_folder.stderr
        world_other = {**world, "service": world["tmp"] / "other"}
        world_other["service"].mkdir()
        same_role = run(world_other)
        assert same_role.returncode == 2
        assert "locked" in same_role.stderr
    finally:
        release.write_text("go")  # the first run's deploys go on at once
        _, err = first.communicate(timeout=180)
    assert first.returncode == 0, err[-2000:]
    assert len(granted_actions(role_policy(world))) == 4


def _throttle_first(client: Any, operation: str, times: int) -> list[int]:
    calls: list[int] = []

    def throttle(**_: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            return (
                botocore.awsrequest.AWSResponse(None, 400, {}, None),
                {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}},
            )
        return None

    client.meta.events.register(
        f"before-call.{client.meta.service_model.service_name}.{operation}", throttle
    )
    return calls


def test_iam_throttling_is_retried(sandbox: LocalSandboxInfo) -> None:
    """Throttling on PutRolePolicy is retried with backoff; the policy lands."""
    box = AwsSandbox(
        admin_session(sandbox),
        role_arn=sandbox.role_arn,
        policy_name="discover",
        stack_name=STACK,
        region=sandbox.region,
        endpoint_url=sandbox.endpoint,
    )
    calls = _throttle_first(box.iam, "PutRolePolicy", times=2)
    policy = PolicyDocument.from_dict(
        {"Statement": [{"Effect": "Allow", "Action": "sqs:CreateQueue", "Resource": "*"}]}
    )
    box.apply_policy(policy)
    assert len(calls) == 3
    assert box.read_policy() == policy


def test_stack_in_review_in_progress_is_deleted(sandbox: LocalSandboxInfo) -> None:
    """A stack left in REVIEW_IN_PROGRESS (a change set never executed) is deleted before a run."""
    admin = admin_session(sandbox)
    cfn = admin.client("cloudformation", endpoint_url=sandbox.endpoint)
    cfn.create_change_set(
        StackName=STACK,
        ChangeSetName="c1",
        ChangeSetType="CREATE",
        TemplateBody=json.dumps(
            {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {}}}}
        ),
    )
    box = AwsSandbox(
        admin,
        role_arn=sandbox.role_arn,
        policy_name="discover",
        stack_name=STACK,
        region=sandbox.region,
        endpoint_url=sandbox.endpoint,
        sleep=lambda s: None,
    )
    assert box.stack_status() == "REVIEW_IN_PROGRESS"
    box.prepare()
    assert box.stack_status() in (None, "DELETE_COMPLETE")


class _ScriptedCloudFormation:
    """describe_stacks answers from a script of states; records deletes."""

    def __init__(self, states: list[str | None], *, rollback_fails: bool = True) -> None:
        self.states = states
        self.deleted: list[str] = []
        self.rolled_back: list[str] = []
        self.rollback_fails = rollback_fails

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if state is None:
            raise botocore.exceptions.ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": f"Stack with id {StackName} does not exist",
                    }
                },
                "DescribeStacks",
            )
        return {"Stacks": [{"StackName": StackName, "StackStatus": state}]}

    def delete_stack(self, StackName: str) -> None:  # noqa: N803 - boto3's name
        self.deleted.append(StackName)

    def continue_update_rollback(self, StackName: str) -> None:  # noqa: N803 - boto3's name
        self.rolled_back.append(StackName)
        if self.rollback_fails:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ValidationError", "Message": "rollback refused"}},
                "ContinueUpdateRollback",
            )

    def describe_stack_resource(self, **_: Any) -> dict[str, Any]:
        raise botocore.exceptions.ClientError({"Error": {"Code": "ValidationError"}}, "X")


@pytest.mark.parametrize("state", sorted(BLOCKING_STATES))
def test_stack_in_each_blocking_state_is_deleted(state: str) -> None:
    """Each state that blocks the next deploy makes prepare() delete the configured stack (a
    failed rollback once continuing it is refused too)."""
    box = AwsSandbox(
        boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1"),
        role_arn="arn:aws:iam::123456789012:role/discover-sandbox",
        policy_name="discover",
        stack_name=STACK,
        region="us-east-1",
        sleep=lambda s: None,
    )
    scripted = _ScriptedCloudFormation([state, "DELETE_IN_PROGRESS", None])
    box.cloudformation = scripted
    box.prepare()
    assert scripted.deleted == [STACK]


def test_a_failed_rollback_is_continued_not_deleted() -> None:
    """UPDATE_ROLLBACK_FAILED: the admin continues the rollback; the stack stays, updatable."""
    box = AwsSandbox(
        boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1"),
        role_arn="arn:aws:iam::123456789012:role/discover-sandbox",
        policy_name="discover",
        stack_name=STACK,
        region="us-east-1",
        sleep=lambda s: None,
    )
    scripted = _ScriptedCloudFormation(
        ["UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"],
        rollback_fails=False,
    )
    box.cloudformation = scripted
    box.prepare()
    assert scripted.rolled_back == [STACK]
    assert scripted.deleted == []
    assert box.deployed()


def test_stack_in_progress_is_waited_for_not_deleted() -> None:
    """A stack busy with an update is waited for, then left alone once it settles."""
    waited: list[float] = []
    box = AwsSandbox(
        boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1"),
        role_arn="arn:aws:iam::123456789012:role/discover-sandbox",
        policy_name="discover",
        stack_name=STACK,
        region="us-east-1",
        sleep=waited.append,
    )
    scripted = _ScriptedCloudFormation(
        ["UPDATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
    )
    box.cloudformation = scripted
    box.prepare()
    assert scripted.deleted == []
    assert len(waited) == 2


def test_restore_puts_the_role_back(world: dict[str, Any]) -> None:
    """--restore after a run puts discover's inline policy back as it was before (here: none)."""
    assert run(world).returncode == 0
    assert role_policy(world) is not None
    restored = run(world, "--restore")
    assert restored.returncode == 0, restored.stderr[-2000:]
    assert role_policy(world) is None


def test_explicit_deny_on_the_role_stops_with_exit_3(world: dict[str, Any]) -> None:
    """An explicit Deny in another policy of the role: the sandbox says so, the loop stops with
    exit 3 naming who must change what, and never grants the denied action."""
    world["iam"].put_role_policy(
        RoleName="discover-sandbox",
        PolicyName="guard",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Action": "sqs:CreateQueue", "Resource": "*"}],
            }
        ),
    )
    result = run(world)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "explicit-deny-identity" in result.stderr
    assert "whoever owns that deny statement" in result.stderr
    assert "sqs:CreateQueue" not in granted_actions(role_policy(world))
    assert last_stop(journal(world)) == "unfixable"


UNFIXABLE_MESSAGES = [
    (
        "service control policy",
        "with an explicit deny in a service control policy",
        "management account",
    ),
    ("permissions boundary", "with an explicit deny in a permissions boundary", "boundary"),
    (
        "no boundary allows",
        "because no permissions boundary allows the sqs:CreateQueue action",
        "boundary",
    ),
    (
        "session policy",
        "because no session policy allows the sqs:CreateQueue action",
        "session policy",
    ),
    (
        "resource policy",
        "because no resource-based policy allows the sqs:CreateQueue action",
        "resource owner",
    ),
]


@pytest.mark.parametrize(("name", "because", "tip"), UNFIXABLE_MESSAGES)
def test_each_unfixable_reason_stops_with_exit_3(
    world: dict[str, Any], name: str, because: str, tip: str
) -> None:
    """Each reason class no allow on the role can fix stops the run (exit 3) with who can fix it."""
    # The fake deploy learns its session (GetCallerIdentity): only this run's is its own.
    line = f"User: {{session}} is not authorized to perform: sqs:CreateQueue {because}"
    result = run(world, fake=("--forge", line))
    assert result.returncode == 3, result.stderr[-2000:]
    assert tip in result.stderr
    assert role_policy(world) is None


def _control(info: LocalSandboxInfo, name: str, body: dict[str, float]) -> None:
    request = urllib.request.Request(  # noqa: S310 - the sandbox's loopback endpoint
        f"{info.endpoint}/_discover/{name}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
        answer.read()


def test_session_expires_on_the_sandbox_clock_mid_run(world: dict[str, Any]) -> None:
    """The sandbox's clock passes the session's expiry during the second run: its calls get a
    real ExpiredToken; discover re-assumes the role and runs again, granting nothing for it."""
    counter = world["tmp"] / "runs"
    fake = ("--counter", str(counter), "--advance-clock", "4000", "--on-run", "2")
    result = run(world, fake=fake)
    assert result.returncode == 0, result.stderr[-2000:]
    records = journal(world)
    assert [r["event"] for r in records].count("session_expired") == 1
    expired_run = next(r for r in records if r["event"] == "session_expired")["iteration"]
    assert expired_run == 2
    assert len(granted_actions(role_policy(world))) == 4


@pytest.mark.parametrize(
    ("name", "waits", "code", "reason"),
    [
        ("waits outlast the delay: converges", [2.0, 2.0, 2.0], 0, "succeeded"),
        ("no waits: the same denial is no progress", [], 1, "no-progress"),
    ],
)
def test_iam_propagation_delay(
    world: dict[str, Any], name: str, waits: list[float], code: int, reason: str
) -> None:
    """With a 3 s propagation delay in the sandbox, a grant is not yet seen by the next run:
    discover waits and retries (converging), or without waits reports no progress."""
    _control(world["info"], "propagation", {"delay": 3.0})
    (world["service"] / "discover.toml").write_text(f"propagation_waits = {waits}\n")
    result = run(world)
    assert result.returncode == code, result.stderr[-2000:]
    records = journal(world)
    assert last_stop(records) == reason
    assert ("propagation_wait" in [r["event"] for r in records]) == bool(waits)
    applied = [r for r in records if r["event"] == "granted"]
    assert granted_actions(role_policy(world)) == {
        g["action"] for r in applied for g in r["grants"]
    }


def _verify(world: dict[str, Any], *policies: Path) -> subprocess.CompletedProcess[str]:
    info: LocalSandboxInfo = world["info"]
    argv = [sys.executable, "-m", "discover", "verify", "--role-arn", info.role_arn]
    argv += ["--sandbox-account", info.account, "--service-dir", str(world["service"])]
    argv += ["--stack-name", STACK, "--log-format", "json"]
    for policy in policies:
        argv += ["--policy", str(policy)]
    argv += ["--", sys.executable, str(FAKE)] + [a for call in CALLS for a in ("--call", call)]
    return subprocess.run(
        argv, env=admin_env(info), capture_output=True, text=True, timeout=180, check=False
    )


def _needed_and_padding(account: str, *, without: str = "") -> PolicyDocument:
    needed = [
        ("s3:ListAllMyBuckets", "*"),
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/build/*"),
        ("sqs:CreateQueue", f"arn:aws:sqs:us-east-1:{account}:fake-dev-queue"),
        ("logs:DescribeLogGroups", "*"),
    ]
    statements = [
        {"Effect": "Allow", "Action": a, "Resource": r} for a, r in needed if a != without
    ]
    # Padding: many narrow grants, so the whole is over the role's inline quota (10,240).
    statements += [
        {
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": f"arn:aws:sqs:us-east-1:{account}:padding-queue-{i:04d}",
        }
        for i in range(220)
    ]
    return PolicyDocument.from_dict({"Version": "2012-10-17", "Statement": statements})


def test_verify_accepts_a_policy_split_into_managed_policies(world: dict[str, Any]) -> None:
    """A policy over the inline quota is verified as managed policies (each within 6,144), given
    whole or as its split parts; the parts are detached and deleted afterwards; with one needed
    action removed, verify names it."""
    from discover.policy import MANAGED_POLICY_QUOTA, split_for_quota

    account = world["info"].account
    whole = _needed_and_padding(account)
    assert whole.size() > 10_240
    big = world["tmp"] / "big.json"
    big.write_text(whole.render_json())
    parts = split_for_quota(whole, MANAGED_POLICY_QUOTA)
    assert len(parts) >= 2
    assert all(p.size() <= MANAGED_POLICY_QUOTA for p in parts)
    paths = []
    for number, part in enumerate(parts, start=1):
        paths.append(world["tmp"] / f"part-{number}.json")
        paths[-1].write_text(part.render_json())

    for given in ([big], paths):
        result = _verify(world, *given)
        assert result.returncode == 0, result.stderr[-2000:]
        record = json.loads(result.stdout)
        assert record["verified"] is True
        assert record["managed_policies"] == len(parts)
        attached = world["iam"].list_attached_role_policies(RoleName="discover-sandbox")
        assert attached["AttachedPolicies"] == []

    smaller = world["tmp"] / "smaller.json"
    smaller.write_text(_needed_and_padding(account, without="sqs:CreateQueue").render_json())
    refused = _verify(world, smaller)
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert json.loads(refused.stdout)["first_denial"]["action"] == "sqs:CreateQueue"


@pytest.mark.parametrize(
    ("name", "extra", "code", "reason"),
    [
        ("no terminal, not allowed: refused", (), 3, "refused"),
        ("--allow the action: granted", ("--allow", "iam:CreateUser"), 0, "succeeded"),
    ],
)
def test_high_risk_grant_needs_confirmation(
    world: dict[str, Any], name: str, extra: tuple[str, ...], code: int, reason: str
) -> None:
    """A deploy that needs iam:CreateUser stops for confirmation (exit 3 with no terminal), and
    is granted it only with --allow."""
    result = run(world, *extra, fake=("--call", 'iam:create_user:{"UserName": "fake-dev-user"}'))
    assert result.returncode == code, result.stderr[-2000:]
    assert last_stop(journal(world)) == reason
    assert ("iam:CreateUser" in granted_actions(role_policy(world))) == (code == 0)
