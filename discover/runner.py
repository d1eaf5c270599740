"""Run a deploy command: argv (never a shell), live output, a full log, timeout, clean kill.

The whole output goes to the iteration's log file as it arrives; memory holds a bounded tail
only, so a CLI that prints gigabytes costs disk, not RAM.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from discover.credentials import Credentials, child_env
from discover.errors import DiscoverError
from discover.isolation import Isolation

TAIL_BYTES = 4 * 1024 * 1024
_CHUNK = 64 * 1024


class CommandNotFoundError(DiscoverError):
    """The deploy command's executable does not exist."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class DeployResult:
    """How one deploy run ended."""

    returncode: int
    output: str  # the last TAIL_BYTES of the output, decoded with errors="replace"
    duration_s: float
    timed_out: bool
    log_path: Path | None = None
    truncated: bool = False

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def lines(self) -> Iterator[str]:
        """The whole output, line by line, from the log when there is one (bounded memory)."""
        if self.log_path is not None and self.log_path.exists():
            with self.log_path.open(encoding="utf-8", errors="replace") as handle:
                yield from handle
        else:
            yield from self.output.splitlines(keepends=True)


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    timeout_s: float,
    echo: TextIO | None = None,
) -> DeployResult:
    """Run ``argv`` in ``cwd``; stream to ``log_path`` (and ``echo``); kill the group on timeout."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill reaches its children
        )
    except FileNotFoundError as exc:
        msg = f"deploy command not found: {argv[0]}"
        raise CommandNotFoundError(
            msg, tip="Pass --cli PATH to the Serverless CLI, or a full command after --."
        ) from exc
    except PermissionError as exc:
        msg = f"deploy command not executable: {argv[0]}"
        raise CommandNotFoundError(msg) from exc
    tail = bytearray()
    truncated = False
    assert process.stdout is not None
    stdout = process.stdout
    assert isinstance(stdout, io.BufferedReader)

    def pump() -> None:
        nonlocal truncated
        live = echo
        # Incremental: a character split across two reads is echoed whole.
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with log_path.open("wb") as log:
            while chunk := stdout.read1(_CHUNK):
                log.write(chunk)
                log.flush()
                if live is not None:
                    try:
                        live.write(decoder.decode(chunk))
                        live.flush()
                    except (OSError, ValueError):
                        live = None  # a closed terminal or pipe must not stall the deploy
                tail.extend(chunk)
                if len(tail) > TAIL_BYTES:
                    del tail[: len(tail) - TAIL_BYTES]
                    truncated = True

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=timeout_s)
        # What the deploy left running in the background goes with it (and frees the pipe).
        kill_group(process, grace_s=1.0)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(process)
    except BaseException:
        kill_group(process)  # Ctrl-C: the whole deploy goes, not just its first process
        raise
    reader.join(timeout=10)
    return DeployResult(
        returncode=process.returncode if process.returncode is not None else -1,
        output=tail.decode("utf-8", errors="replace"),
        duration_s=round(time.monotonic() - started, 3),
        timed_out=timed_out,
        log_path=log_path,
        truncated=truncated,
    )


def kill_group(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            # The leader is gone; its children may not be.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def stderr_echo() -> TextIO:
    return sys.stderr


class CommandDeployer:
    """The loop's ``Deployer``: the configured command, with only the sandbox session's env."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        region: str,
        logs_dir: Path,
        timeout_s: float,
        endpoint_url: str | None = None,
        echo: TextIO | None = None,
        isolation: Isolation | None = None,
    ) -> None:
        self._argv = tuple(argv)
        self._isolation = isolation
        self._cwd = cwd
        self._region = region
        self._logs_dir = logs_dir
        self._timeout_s = timeout_s
        self._endpoint_url = endpoint_url
        self._echo = echo

    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
        env = child_env(credentials, self._region, endpoint_url=self._endpoint_url)
        argv: Sequence[str] = self._argv
        if self._isolation is not None:  # no path from the deploy to the admin's credentials
            env = self._isolation.environment(env)
            argv = self._isolation.wrap(argv, env)
        return run_command(
            argv,
            env=env,
            cwd=self._cwd,
            log_path=self._logs_dir / f"{iteration:02d}.log",
            timeout_s=self._timeout_s,
            echo=self._echo,
        )
