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
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from discover.credentials import child_env
from discover.denials import iter_denials
from discover.errors import DiscoverError
from discover.ports import Credentials, DeployResult, OutputWatcher

TAIL_BYTES = 4 * 1024 * 1024
_CHUNK = 64 * 1024


class CommandNotFoundError(DiscoverError):
    """The deploy command's executable does not exist."""

    exit_code = 2


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    timeout_s: float,
    echo: TextIO | None = None,
    watch: OutputWatcher | None = None,
) -> DeployResult:
    """Run ``argv`` in ``cwd``; stream to ``log_path`` (and ``echo``); kill the group on timeout.

    ``watch`` sees each complete line as it arrives (the live view's last line). The result
    carries the denials read from the whole log, so its readers never open the file.
    """
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
        forward = _Forward(echo, watch)
        with log_path.open("wb") as log:
            while chunk := stdout.read1(_CHUNK):
                log.write(chunk)
                log.flush()
                forward.feed(chunk)
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
    with log_path.open(encoding="utf-8", errors="replace") as handle:
        denials = tuple(iter_denials(handle, source="output"))
    return DeployResult(
        returncode=process.returncode if process.returncode is not None else -1,
        output=tail.decode("utf-8", errors="replace"),
        duration_s=round(time.monotonic() - started, 3),
        timed_out=timed_out,
        log_path=log_path,
        truncated=truncated,
        denials=denials,
    )


class _Forward:
    """The output as it streams, to the raw echo and, line by line, to a watcher.

    Either that fails (a closed terminal, a broken view) is dropped: it must not stall the
    deploy. Decoding is incremental, so a character split across two reads arrives whole.
    """

    def __init__(self, echo: TextIO | None, watch: OutputWatcher | None) -> None:
        self._echo = echo
        self._watch = watch
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, chunk: bytes) -> None:
        if self._echo is None and self._watch is None:
            return
        text = self._decoder.decode(chunk)
        if self._echo is not None:
            try:
                self._echo.write(text)
                self._echo.flush()
            except (OSError, ValueError):
                self._echo = None
        if self._watch is not None:
            *complete, self._partial = (self._partial + text).split("\n")
            try:
                for line in complete[-20:]:  # a burst: only its last lines can still be seen
                    self._watch.output_line(line.rstrip("\r"))
            except Exception:
                self._watch = None


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


class CommandDeployer:
    """The ``Deployer`` port: the configured command, with only the sandbox session's env."""

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
        watch: OutputWatcher | None = None,
    ) -> None:
        self._argv = tuple(argv)
        self._cwd = cwd
        self._region = region
        self._logs_dir = logs_dir
        self._timeout_s = timeout_s
        self._endpoint_url = endpoint_url
        self._echo = echo
        self._watch = watch

    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
        env = child_env(credentials, self._region, endpoint_url=self._endpoint_url)
        return run_command(
            self._argv,
            env=env,
            cwd=self._cwd,
            log_path=self._logs_dir / f"{iteration:02d}.log",
            timeout_s=self._timeout_s,
            echo=self._echo,
            watch=self._watch,
        )
