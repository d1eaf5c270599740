"""Running the deploy command: real subprocesses, live echo, full log, bounded tail, timeout."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from discover.credentials import Credentials
from discover.runner import (
    TAIL_BYTES,
    CommandDeployer,
    CommandNotFoundError,
    DeployResult,
    _Forward,
    kill_group,
    run_command,
)

PY = sys.executable


def run_python(
    code: str,
    tmp_path: Path,
    *,
    timeout_s: float = 20.0,
    echo: io.StringIO | None = None,
    env: dict[str, str] | None = None,
) -> tuple[DeployResult, Path]:
    log_path = tmp_path / "logs" / "01.log"
    result = run_command(
        [PY, "-c", code],
        env=dict(os.environ) if env is None else env,
        cwd=tmp_path,
        log_path=log_path,
        timeout_s=timeout_s,
        echo=echo,
    )
    return result, log_path


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def test_output_is_captured_logged_and_echoed(tmp_path: Path) -> None:
    """stdout and stderr, interleaved, reach the result, the log file and the live echo."""
    code = (
        "import sys\n"
        "print('deploying demo', flush=True)\n"
        "print('warning: slow', file=sys.stderr, flush=True)\n"
        "print('done', flush=True)\n"
    )
    echo = io.StringIO()
    result, log_path = run_python(code, tmp_path, echo=echo)
    expected = "deploying demo\nwarning: slow\ndone\n"
    assert result.output == expected
    assert log_path.read_text(encoding="utf-8") == expected
    assert echo.getvalue() == expected
    assert result.log_path == log_path
    assert result.truncated is False


@pytest.mark.parametrize(
    ("name", "code", "returncode", "succeeded"),
    [
        ("success", "pass", 0, True),
        ("failure", "import sys; sys.exit(3)", 3, False),
        ("uncaught exception", "raise SystemExit('boom')", 1, False),
        ("killed by a signal", "import os; os.kill(os.getpid(), 9)", -9, False),
    ],
)
def test_exit_code(tmp_path: Path, name: str, code: str, returncode: int, succeeded: bool) -> None:
    """The result carries the command's exit status; only 0 counts as success."""
    result, _ = run_python(code, tmp_path)
    assert result.returncode == returncode, name
    assert result.succeeded is succeeded
    assert result.timed_out is False


def test_runs_in_the_folder_with_exactly_the_given_environment(tmp_path: Path) -> None:
    """The child gets ``cwd`` and ``env`` as given: nothing of the parent's environment."""
    code = "import json, os; print(json.dumps({'cwd': os.getcwd(), 'env': dict(os.environ)}))"
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "ONLY_THIS": "1"}
    result, _ = run_python(code, tmp_path, env=env)
    seen = json.loads(result.output)
    assert Path(seen["cwd"]).resolve() == tmp_path.resolve()
    assert seen["env"]["ONLY_THIS"] == "1"
    assert set(seen["env"]) <= {*env, "LC_CTYPE"}  # nothing of the parent's environment


def test_stdin_is_the_null_device(tmp_path: Path) -> None:
    """A CLI that prompts reads end-of-file at once, even when discover's own stdin is an open
    pipe (a terminal, CI), instead of waiting for a human."""
    code = (
        "import os, stat, sys\n"
        "st = os.fstat(0)\n"
        "print(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.stat(os.devnull).st_rdev)\n"
        "print(repr(sys.stdin.read()))\n"
    )
    saved = os.dup(0)
    read_end, write_end = os.pipe()
    try:
        os.dup2(read_end, 0)  # an open pipe nobody writes to, as our stdin
        result, _ = run_python(code, tmp_path, timeout_s=5)
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    assert result.output == "True\n''\n"
    assert result.timed_out is False


def test_invalid_utf8_does_not_crash(tmp_path: Path) -> None:
    """Binary output is decoded with replacement characters; the log keeps the raw bytes."""
    raw = b"before \xff\xfe\x80 after\n\x00\x01binary\n"
    code = f"import sys; sys.stdout.buffer.write({raw!r}); sys.stdout.flush()"
    echo = io.StringIO()
    result, log_path = run_python(code, tmp_path, echo=echo)
    assert result.output.startswith("before ")
    assert "\ufffd" in result.output
    assert "after" in result.output
    assert log_path.read_bytes() == raw
    assert "\ufffd" in echo.getvalue()


def test_echo_keeps_a_character_split_across_reads(tmp_path: Path) -> None:
    """The live echo shows a multi-byte character whole even when it arrives in two reads."""
    code = (
        "import sys, time\n"
        "b = 'é'.encode()\n"
        "sys.stdout.buffer.write(b'caf' + b[:1]); sys.stdout.flush(); time.sleep(0.3)\n"
        "sys.stdout.buffer.write(b[1:] + b'\\n'); sys.stdout.flush()\n"
    )
    echo = io.StringIO()
    result, _ = run_python(code, tmp_path, echo=echo)
    assert result.output == "café\n"
    assert echo.getvalue() == "café\n"


def test_timeout_kills_the_process_group_including_grandchildren(tmp_path: Path) -> None:
    """A hung deploy is stopped at the timeout, and so is a process it started."""
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result, _ = run_python(code, tmp_path, timeout_s=2.0)
    elapsed = time.monotonic() - started
    assert result.output.strip(), "the child did not start its grandchild before the timeout"
    grandchild = int(result.output.split()[0])
    assert result.timed_out is True
    assert result.succeeded is False
    assert result.returncode != 0
    assert elapsed < 10
    assert wait_gone(grandchild), f"grandchild {grandchild} survived the timeout"


def test_kill_group_escalates_to_sigkill(tmp_path: Path) -> None:
    """A process that ignores SIGTERM is SIGKILLed once the grace period is over."""
    ready = tmp_path / "ready"
    code = (
        "import signal, time, pathlib\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen([PY, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        kill_group(process, grace_s=0.3)
        assert process.wait(timeout=5) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_background_process_does_not_outlive_the_run(tmp_path: Path) -> None:
    """A process the deploy left behind in its group is stopped when the deploy exits."""
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(child.pid, flush=True)\n"
    )
    result, _ = run_python(code, tmp_path, timeout_s=10)
    grandchild = int(result.output.split()[0])
    try:
        assert result.succeeded
        assert wait_gone(grandchild, within_s=1.0), f"{grandchild} still running"
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_large_output_keeps_a_bounded_tail_and_logs_everything(tmp_path: Path) -> None:
    """50 MB of output: memory holds the last TAIL_BYTES only; the log file has all of it."""
    megabytes = 50
    code = (
        "import sys\n"
        "block = (b'x' * 1023 + b'\\n') * 1024\n"
        f"for _ in range({megabytes}):\n"
        "    sys.stdout.buffer.write(block)\n"
        "sys.stdout.buffer.write(b'DONE\\n')\n"
    )
    result, log_path = run_python(code, tmp_path, timeout_s=60)
    assert result.succeeded
    assert result.truncated is True
    assert len(result.output) <= TAIL_BYTES
    assert result.output.endswith("x\nDONE\n")
    assert log_path.stat().st_size == megabytes * 1024 * 1024 + len(b"DONE\n")


def test_denials_are_read_from_the_whole_log_not_the_tail(tmp_path: Path) -> None:
    """A denial printed before the tail's window is still in the result's denials."""
    denial = (
        "User: arn:aws:sts::123456789012:assumed-role/sandbox/s is not authorized to perform: "
        "sqs:CreateQueue on resource: arn:aws:sqs:us-east-1:123456789012:q"
    )
    megabytes = (TAIL_BYTES // (1024 * 1024)) + 2
    code = (
        "import sys\n"
        f"print({denial!r}, flush=True)\n"
        "block = (b'x' * 1023 + b'\\n') * 1024\n"
        f"for _ in range({megabytes}):\n"
        "    sys.stdout.buffer.write(block)\n"
    )
    result, _ = run_python(code, tmp_path, timeout_s=60)
    assert denial not in result.output
    assert result.denials is not None
    assert [d.action for d in result.denials] == ["sqs:CreateQueue"]


class Lines:
    """A watcher that keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def output_line(self, line: str) -> None:
        self.seen.append(line)


class BrokenLines:
    def output_line(self, line: str) -> None:
        raise RuntimeError("the view went away")


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        ("lines as they come", "print('one'); print('two')", ["one", "two"]),
        ("carriage returns dropped", "print('spin\\r')", ["spin"]),
    ],
)
def test_a_watcher_sees_each_complete_line(
    tmp_path: Path, name: str, code: str, expected: list[str]
) -> None:
    """The live view's watcher gets each whole line of the output, in order."""
    watcher = Lines()
    result = run_command(
        [PY, "-c", code],
        env=dict(os.environ),
        cwd=tmp_path,
        log_path=tmp_path / "01.log",
        timeout_s=20,
        watch=watcher,
    )
    assert result.succeeded
    assert watcher.seen == expected, name


def test_a_line_split_across_reads_reaches_the_watcher_whole() -> None:
    """Chunks cut mid-line (and mid-character) are joined before the watcher sees them."""
    watcher = Lines()
    forward = _Forward(None, watcher)
    for chunk in (b"pa", b"rt \xc3", b"\xa9\nnext", b"\n"):
        forward.feed(chunk)
    assert watcher.seen == ["part \u00e9", "next"]


def test_a_failing_watcher_does_not_stall_the_command(tmp_path: Path) -> None:
    """A watcher that raises is dropped; the command runs to its end, fully logged."""
    code = "import sys\nfor _ in range(2000): sys.stdout.write('y' * 999 + '\\n')\n"
    result = run_command(
        [PY, "-c", code],
        env=dict(os.environ),
        cwd=tmp_path,
        log_path=tmp_path / "01.log",
        timeout_s=20,
        watch=BrokenLines(),
    )
    assert result.succeeded
    assert (tmp_path / "01.log").stat().st_size == 2000 * 1000


class BrokenEcho(io.StringIO):
    """An echo stream whose reader went away (``discover ... 2>&1 | head``)."""

    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failing_echo_does_not_stall_the_command(tmp_path: Path) -> None:
    """When the live echo cannot be written, the command still runs to its end, fully logged."""
    code = "import sys\nfor _ in range(2000): sys.stdout.write('y' * 999 + '\\n')\n"
    result, log_path = run_python(code, tmp_path, timeout_s=2, echo=BrokenEcho())
    assert result.timed_out is False
    assert result.succeeded
    assert log_path.stat().st_size == 2000 * 1000


@pytest.mark.parametrize(
    ("name", "make_argv"),
    [
        ("no such executable", lambda tmp: [str(tmp / "no-such-cli"), "deploy"]),
        ("not on PATH", lambda tmp: ["discover-test-no-such-cli-on-path", "deploy"]),
        ("a file without the execute bit", lambda tmp: [str(tmp / "plain.txt"), "deploy"]),
    ],
)
def test_missing_executable_is_a_command_not_found_error(
    tmp_path: Path, name: str, make_argv: Callable[[Path], list[str]]
) -> None:
    """A command that cannot start is a ``CommandNotFoundError`` (exit 2), not an OSError."""
    (tmp_path / "plain.txt").write_text("not a program\n")
    argv = make_argv(tmp_path)
    with pytest.raises(CommandNotFoundError) as caught:
        run_command(
            argv,
            env=dict(os.environ),
            cwd=tmp_path,
            log_path=tmp_path / "01.log",
            timeout_s=5,
        )
    assert caught.value.exit_code == 2, name
    assert argv[0] in caught.value.msg


def test_command_deployer_runs_with_only_the_sessions_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``CommandDeployer`` runs its argv in the service folder with the session's env, and
    logs each iteration to ``NN.log``."""
    monkeypatch.setenv("AWS_PROFILE", "admin")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACALLER")
    code = (
        "import json, os\n"
        "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('AWS_')}))\n"
    )
    deployer = CommandDeployer(
        [PY, "-c", code],
        cwd=tmp_path,
        region="eu-west-1",
        logs_dir=tmp_path / "iterations",
        timeout_s=10,
        endpoint_url="http://127.0.0.1:4566",
    )
    credentials = Credentials(
        "ASIASESSION", "secret", "token", datetime.now(UTC) + timedelta(hours=1)
    )
    result = deployer.deploy(credentials, 3)
    env = json.loads(result.output)
    assert result.succeeded
    assert result.log_path == tmp_path / "iterations" / "03.log"
    assert "AWS_PROFILE" not in env
    assert env["AWS_ACCESS_KEY_ID"] == "ASIASESSION"
    assert env["AWS_SESSION_TOKEN"] == "token"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
