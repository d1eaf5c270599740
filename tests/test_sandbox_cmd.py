"""``discover sandbox up`` / ``down``: a local sandbox that outlives one command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from discover.local_session import read_state, state_path

pytestmark = pytest.mark.sandbox
BASH = shutil.which("bash") or "/bin/bash"


def sandbox_cmd(service: Path, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "discover", "sandbox", action],
        cwd=service,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def shell(exports: str, command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in a shell that ran ``exports`` first, as a user pastes them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [BASH, "-c", f"{exports}\n{command}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_prints_exports_for_the_aws_cli_and_down_stops_it(tmp_path: Path) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    up = sandbox_cmd(service, "up")
    assert up.returncode == 0, up.stderr
    state = read_state(service / ".discover")
    assert state is not None
    try:
        assert oct(state_path(service / ".discover").stat().st_mode & 0o777) == "0o600"
        assert f"export AWS_ENDPOINT_URL={state.endpoint}" in up.stdout
        assert "discover --local here uses it" in up.stderr
        # A second up finds the running one.
        again = sandbox_cmd(service, "up")
        assert again.returncode == 0
        assert read_state(service / ".discover") == state

        aws = shutil.which("aws")
        python = f"{sys.executable} -c"
        who = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
        admin = shell(up.stdout, f'{python} "{who}"')
        assert admin.stdout.strip() == state.admin_arn, admin.stderr
        role_exports = "\n".join(
            line.removeprefix("# ") for line in up.stdout.splitlines() if "AWS_" in line
        )
        role = shell(role_exports, f'{python} "{who}"')
        assert role.stdout.strip().startswith(
            f"arn:aws:sts::{state.account}:assumed-role/discover-sandbox/"
        ), role.stderr
        if aws is not None:  # the AWS CLI, when installed, reads the same variables
            listed = shell(up.stdout, "aws iam get-role --role-name discover-sandbox")
            assert json.loads(listed.stdout)["Role"]["Arn"] == state.role_arn, listed.stderr
    finally:
        down = sandbox_cmd(service, "down")
    assert down.returncode == 0
    assert "local sandbox stopped" in down.stderr
    assert not state_path(service / ".discover").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(state.pid, 0)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(state.endpoint, timeout=5)  # noqa: S310 - our loopback server
    assert "no local sandbox running" in sandbox_cmd(service, "down").stderr


def test_a_killed_sandbox_is_not_used(tmp_path: Path) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    assert sandbox_cmd(service, "up").returncode == 0
    state = read_state(service / ".discover")
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    while True:  # SIGKILL is not instant; the holder is a child of init now, not ours
        try:
            os.kill(state.pid, 0)
        except ProcessLookupError:
            break
        os.sched_yield()
    assert read_state(service / ".discover") is None
    assert not state_path(service / ".discover").exists()
