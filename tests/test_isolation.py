"""Credential isolation: what a hostile deploy can read of the admin's credentials.

A driver process (fixtures/fakecli/isolated_run.py) stands for discover: the admin's secret
is in its environment, the user's ``~/.aws/credentials`` holds another. It runs the fake
deploy's ``--steal`` (every ``/proc/*/environ``, ``$HOME/.aws/credentials``, and the
credentials file by its absolute path) as discover runs a deploy, with each isolation mode,
as root and as an unprivileged user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from discover.isolation import Mode, credential_paths, namespaces_available
from tests.conftest import FIXTURES

# Each test's deploy scans every /proc/*/environ: the other tests' deploys, which hold the
# same planted secret, must not run beside it.
pytestmark = pytest.mark.xdist_group("isolation")

DRIVER = FIXTURES / "fakecli" / "isolated_run.py"
FAKE = FIXTURES / "fakecli" / "fake_deploy.py"
ADMIN_SECRET = "ADMINSECRETfromTheEnvironment0001"
FILE_SECRET = "ADMINSECRETfromTheCredentialsFile"
NOBODY = 65534


@pytest.fixture
def world() -> Iterator[Path]:
    """A folder any user can use: a HOME with ``.aws/credentials``, and a state folder."""
    root = Path(tempfile.mkdtemp(prefix="discover-isolation-"))
    try:
        (root / "home" / ".aws").mkdir(parents=True)
        (root / "home" / ".aws" / "credentials").write_text(
            f"[default]\naws_secret_access_key = {FILE_SECRET}\n"
        )
        (root / "home" / ".npmrc").write_text("fund=false\n")
        (root / "state").mkdir()
        (root / "home" / ".aws" / "credentials").chmod(0o600)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def steal(world: Path, mode: Mode, *, as_nobody: bool) -> str:
    credentials = world / "home" / ".aws" / "credentials"
    python = sys.executable
    prefix: list[str] = []
    if as_nobody:
        # The user's own files: owned by that user, the credentials readable by it only.
        for path in [world, *world.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
        python = shutil.which("python3", path="/usr/bin:/bin") or "python3"
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(world / "home"),
        "AWS_ACCESS_KEY_ID": "AKIAADMIN",
        "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
    }
    argv = [*prefix, python, str(DRIVER), mode.value, str(world / "state"), "--"]
    argv += [python, str(FAKE), "--steal", "--steal-path", str(credentials)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"mode: {mode.value}" in done.stdout, done.stdout + done.stderr
    return done.stdout


USERS = ["root", "unprivileged"] if os.getuid() == 0 else ["this user"]


@pytest.mark.parametrize("user", USERS)
def test_namespaces_hide_the_parent_and_the_credential_files(world: Path, user: str) -> None:
    """In its namespaces the deploy sees only its own processes, and neither the admin's
    environment nor the credentials file, by HOME or by absolute path."""
    if not namespaces_available():
        pytest.fail("this machine offers no user namespaces: see the README's Safety section")
    out = steal(world, Mode.NAMESPACES, as_nobody=user == "unprivileged")
    assert ADMIN_SECRET not in out
    assert FILE_SECRET not in out
    assert "processes visible: " in out
    visible = int(out.split("processes visible: ")[1].split()[0])
    assert visible <= 2, out  # itself (pid 1), and at most the listing's own process


@pytest.mark.parametrize(
    ("user", "parent_readable"),
    [("root", True), ("unprivileged", False)] if os.getuid() == 0 else [("this user", False)],
)
def test_without_namespaces_what_holds(world: Path, user: str, parent_readable: bool) -> None:
    """Without namespaces: the deploy's own HOME hides ``~/.aws`` from the default lookups and
    non-dumpable discover keeps a non-root deploy out of its /proc; but a root deploy reads
    the parent's environment, and any deploy reads the file by its absolute path. The README
    says so."""
    out = steal(world, Mode.PRIVATE_HOME, as_nobody=user == "unprivileged")
    assert (ADMIN_SECRET in out) is parent_readable, out
    stolen_by_home = [line for line in out.splitlines() if "/deploy-home-" in line]
    assert stolen_by_home
    assert all(FILE_SECRET not in line for line in stolen_by_home)
    assert FILE_SECRET in out  # the absolute path: not hidden without a mount namespace


def test_private_home_brings_the_users_settings(world: Path) -> None:
    """The deploy's own HOME holds the user's npm settings, and no ``.aws``."""
    from discover.isolation import prepare

    isolation = prepare(
        world / "state", environ={"HOME": str(world / "home")}, allow_namespaces=False
    )
    assert isolation.home is not None
    assert (isolation.home / ".npmrc").read_text() == "fund=false\n"
    assert not (isolation.home / ".aws").exists()
    assert isolation.warning is not None
    assert "can read the admin's credentials" in isolation.warning


def test_credential_paths_are_those_that_exist(world: Path) -> None:
    """~/.aws, and the files the AWS_* variables name, when they exist."""
    token = world / "token"
    token.write_text("t")
    env = {
        "HOME": str(world / "home"),
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        "AWS_CONFIG_FILE": str(world / "missing"),
    }
    paths = credential_paths(env)
    assert world / "home" / ".aws" in paths
    assert token in paths
    assert world / "missing" not in paths
