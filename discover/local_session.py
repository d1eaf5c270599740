"""A local sandbox that outlives one command: ``discover sandbox up`` / ``down``.

``up`` starts a holder process detached from the terminal (``discover sandbox serve``, in
its own session): it runs the embedded sandbox server and writes the state file
``.discover/sandbox.json`` in the service folder (mode 0600: it holds the admin's keys), with
the endpoint, the admin's and the sandbox role's credentials and the holder's pid. ``discover
--local`` in that folder then uses that sandbox instead of starting its own, so a proposal
can be applied out of band (``aws iam put-role-policy`` with the admin's keys) between runs.
``down`` stops the holder, which stops the server and removes the state file.

This module never imports the sandbox itself: it starts ``discover`` as a process, reads
the file, and talks to the endpoint as any AWS client does.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from discover.errors import DiscoverError

STATE_FILE = "sandbox.json"
_UP_TIMEOUT_S = 90.0
_DOWN_TIMEOUT_S = 30.0


class SandboxSessionError(DiscoverError):
    """The long-lived local sandbox could not be started, found or stopped."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class SandboxState:
    """What ``sandbox up`` wrote: where the sandbox is, and who may use it."""

    endpoint: str
    region: str
    account: str
    admin_arn: str
    access_key_id: str
    secret_access_key: str
    role_arn: str
    pid: int
    service_role_arn: str | None = None  # the empty CloudFormation service role it made

    def __repr__(self) -> str:  # never print the admin's secret, even in a traceback
        return f"SandboxState(endpoint={self.endpoint!r}, pid={self.pid})"


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def write_state(state_dir: Path, state: SandboxState) -> Path:
    """The state file, readable by its owner only (written whole, then renamed)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(state_dir)
    partial = path.with_suffix(".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(asdict(state), handle, indent=2)
    partial.replace(path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(state_dir: Path) -> SandboxState | None:
    """The running sandbox of this folder; None when there is none (or it died)."""
    path = state_path(state_dir)
    if not path.exists():
        return None
    try:
        raw: dict[str, Any] = json.loads(path.read_text("utf-8"))
        state = SandboxState(**raw)
    except (ValueError, TypeError) as exc:
        msg = f"{path} is not a sandbox state file: {exc}"
        raise SandboxSessionError(msg, tip=f"Remove {path} and run discover sandbox up.") from exc
    if not _alive(state.pid):
        path.unlink(missing_ok=True)  # left by a holder that was killed
        return None
    return state


def start(state_dir: Path, *, region: str) -> SandboxState:
    """Start the holder detached and wait until it has written the state file."""
    running = read_state(state_dir)
    if running is not None:
        return running
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "sandbox.log"
    argv = [sys.executable, "-m", "discover", "sandbox", "serve", "--region", region]
    argv += ["--service-dir", str(state_dir.parent)]
    with log.open("ab") as errors:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,  # not stopped by the terminal's Ctrl-C or hang-up
        )
    assert process.stdout is not None
    line = process.stdout.readline()  # the holder writes one line once the state is written
    process.stdout.close()
    state = read_state(state_dir) if line.strip() else None
    if state is None:
        process.kill()
        process.wait()
        msg = "the local sandbox did not start"
        raise SandboxSessionError(msg, tip=f"See {log}.")
    return state


def stop(state_dir: Path) -> bool:
    """Stop this folder's sandbox; False when none was running."""
    state = read_state(state_dir)
    if state is None:
        return False
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + _DOWN_TIMEOUT_S
    while _alive(state.pid):
        if time.monotonic() > deadline:
            msg = f"the local sandbox (pid {state.pid}) did not stop"
            raise SandboxSessionError(msg, tip=f"kill {state.pid}")
        time.sleep(0.05)  # polling another session's process: there is nothing to wait on
    state_path(state_dir).unlink(missing_ok=True)
    return True


def role_credentials(state: SandboxState) -> dict[str, str]:
    """A session of the sandbox role, assumed as the admin (for looking inside as the role)."""
    import boto3

    sts = boto3.client(
        "sts",
        endpoint_url=state.endpoint,
        region_name=state.region,
        aws_access_key_id=state.access_key_id,
        aws_secret_access_key=state.secret_access_key,
    )
    answer = sts.assume_role(RoleArn=state.role_arn, RoleSessionName="discover-sandbox-shell")
    credentials = answer["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


def exports(state: SandboxState) -> str:
    """``export`` lines for a shell: the admin's, and (commented) the role's."""
    admin = {
        "AWS_ENDPOINT_URL": state.endpoint,
        "AWS_REGION": state.region,
        "AWS_DEFAULT_REGION": state.region,
        "AWS_ACCESS_KEY_ID": state.access_key_id,
        "AWS_SECRET_ACCESS_KEY": state.secret_access_key,
    }
    lines = [f"# the local sandbox (account {state.account}); as its admin:"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in admin.items()]
    lines.append("unset AWS_SESSION_TOKEN AWS_PROFILE")
    lines.append(f"# the sandbox role {state.role_arn} (a session of one hour), instead:")
    lines += [f"# export {k}={shlex.quote(v)}" for k, v in role_credentials(state).items()]
    return "\n".join(lines) + "\n"


__all__ = ["SandboxState", "exports", "read_state", "start", "state_path", "stop", "write_state"]
