"""Shared fixtures: the real local sandbox process, the pinned osls CLI, sample services."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from discover.local.process import LocalSandbox, LocalSandboxInfo

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
SERVICES = FIXTURES / "services"
OSLS = FIXTURES / "serverless" / "node_modules" / ".bin" / "osls"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep the tests that share a module's sandbox on one xdist worker (``--dist loadgroup``).

    A module-scoped sandbox costs a server start (seconds of moto imports) on every worker
    that runs one of its tests; grouping them pays it once. Tests with their own sandbox
    spread freely.
    """
    for item in items:
        definitions = getattr(item, "_fixtureinfo", None)
        if definitions is None or "sandbox" not in item.fixturenames:
            continue
        chain = definitions.name2fixturedefs.get("sandbox", ())
        if chain and chain[-1].scope == "module" and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[LocalSandboxInfo]:
    """A fresh local sandbox server process on a free loopback port, stopped after the test."""
    with LocalSandbox(authorization_log=tmp_path / "authorization.jsonl") as info:
        yield info


def admin_session(info: LocalSandboxInfo) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=info.access_key_id,
        aws_secret_access_key=info.secret_access_key,
        region_name=info.region,
    )


def role_session(info: LocalSandboxInfo, session_name: str = "tests") -> boto3.Session:
    """A session of the sandbox role, assumed through STS as discover does."""
    sts = admin_session(info).client("sts", endpoint_url=info.endpoint)
    creds = sts.assume_role(RoleArn=info.role_arn, RoleSessionName=session_name)["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=info.region,
    )


@pytest.fixture
def osls() -> Path:
    """The pinned osls CLI; scripts/setup installs it (npm ci)."""
    if not OSLS.exists():
        pytest.fail(f"{OSLS} is missing: run scripts/setup (it runs npm ci)")
    return OSLS


@pytest.fixture
def service_copy(tmp_path: Path) -> Callable[[str], Path]:
    """Copy a sample service into tmp_path so runs never write into fixtures/."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(
            SERVICES / name,
            target,
            ignore=shutil.ignore_patterns(".discover", ".serverless", "node_modules"),
        )
        return target

    return copy


def run_discover(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python -m discover ARGS`` in ``cwd``, as a user runs it: no terminal, and none of
    this machine's AWS settings (the local sandbox is the only account)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "discover", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
