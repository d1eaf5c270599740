"""Start and stop the embedded AWS sandbox as a child process, from the parent's side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from discover.errors import DiscoverError

_START_TIMEOUT_S = 60.0


class SandboxStartError(DiscoverError):
    """The local sandbox did not come up."""


@dataclass(frozen=True, slots=True)
class LocalSandboxInfo:
    """What the sandbox announced: where it listens and who the admin and sandbox role are."""

    endpoint: str
    region: str
    account: str
    admin_arn: str
    access_key_id: str
    secret_access_key: str
    role_arn: str
    service_role_arn: str | None = None  # the empty role CloudFormation may be given


class LocalSandbox:
    """A running sandbox server process; a context manager that stops it on exit."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        authorization_log: Path | None = None,
        propagation_delay: float = 0.0,
    ):
        self._region = region
        self._authorization_log = authorization_log
        self._propagation_delay = propagation_delay
        self._process: subprocess.Popen[str] | None = None
        self.info: LocalSandboxInfo | None = None

    def start(self) -> LocalSandboxInfo:
        argv = [sys.executable, "-m", "discover.local", "--region", self._region]
        if self._authorization_log is not None:
            argv += ["--authorization-log", str(self._authorization_log)]
        if self._propagation_delay:
            argv += ["--propagation-delay", str(self._propagation_delay)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = _readline_with_timeout(self._process, _START_TIMEOUT_S)
        if not line:
            self.stop()
            msg = "the local sandbox did not start"
            raise SandboxStartError(
                msg, tip="Install the local extra: pip install 'discover[local]'"
            )
        self.info = LocalSandboxInfo(**json.loads(line))
        return self.info

    # --- the control endpoint ------------------------------------------------------------

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox's clock forward (sessions expire, delayed changes show): its time."""
        return float(self._control("clock", {"advance": seconds})["now"])

    def clock(self) -> float:
        """The sandbox's time, in seconds since the epoch."""
        return float(self._control("clock")["now"])

    def set_propagation_delay(self, seconds: float) -> None:
        """Change how long an identity-policy change takes to be seen, from now on."""
        self._control("propagation", {"delay": seconds})

    def _control(self, name: str, body: dict[str, float] | None = None) -> dict[str, Any]:
        if self.info is None:
            msg = "the local sandbox is not running"
            raise SandboxStartError(msg)
        request = urllib.request.Request(  # noqa: S310 - always our own http://127.0.0.1 server
            f"{self.info.endpoint}/_discover/{name}",
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - as above
            decoded = json.loads(answer.read())
        assert isinstance(decoded, dict)
        return decoded

    def stop(self) -> None:
        process, self._process = self._process, None
        self.info = None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> LocalSandboxInfo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _readline_with_timeout(process: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []

    def _read() -> None:
        assert process.stdout is not None
        result.append(process.stdout.readline())

    reader = threading.Thread(target=_read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not result or not result[0].strip():
        # Drain stderr only when it failed, for the message.
        return ""
    # Keep stderr from filling its pipe while the server runs (werkzeug logs requests).
    threading.Thread(target=_drain, args=(process,), daemon=True).start()
    return result[0]


def _drain(process: subprocess.Popen[str]) -> None:
    if process.stderr is not None:
        for _ in process.stderr:
            pass
