"""``--approve each|batch`` driven through a real terminal: a pty, a real discover process.

discover runs against the local sandbox process with the fake deploy CLI (one denial per run);
the test reads the terminal until the question shows and types the answer, as a person does.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from discover.journal import read_events
from discover.local.process import LocalSandboxInfo
from discover.run_events import Approved, Refused
from tests.conftest import FIXTURES, admin_session

pytestmark = pytest.mark.sandbox

FAKE = FIXTURES / "fakecli" / "fake_deploy.py"
CALLS = (
    "s3:list_buckets:{}",
    'sqs:create_queue:{"QueueName": "fake-dev-a"}',
    'sqs:create_queue:{"QueueName": "fake-dev-b"}',
)
QUESTION = re.compile(rb"grant it\? \[y\]es|grant them all\?|go on without it\?")
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Terminal:
    """discover on the slave side of a pty; the test reads and types on the master side."""

    process: subprocess.Popen[bytes]
    master: int
    seen: bytearray

    def expect(self, pattern: re.Pattern[bytes], timeout: float = 120) -> bytes:
        """Read until ``pattern`` shows in the new output; that output (escapes removed)."""
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while True:
            plain = _ANSI.sub(b"", bytes(self.seen[start:]))
            if pattern.search(plain):
                del self.seen[:]
                return plain
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {pattern.pattern!r} in the terminal: {plain[-2000:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the slave closed: discover exited
                    chunk = b""
                if not chunk:
                    pytest.fail(f"discover exited before {pattern.pattern!r}: {plain[-2000:]!r}")
                self.seen += chunk

    def answer(self, text: str) -> None:
        os.write(self.master, text.encode() + b"\r")

    def finish(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    break
        return self.process.wait(timeout=max(deadline - time.monotonic(), 1))


@pytest.fixture
def service(tmp_path: Path) -> Path:
    folder = tmp_path / "svc"
    folder.mkdir()
    return folder


@pytest.fixture
def terminal(
    sandbox: LocalSandboxInfo, service: Path, request: pytest.FixtureRequest
) -> Iterator[Terminal]:
    args: tuple[str, ...] = request.param
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=sandbox.access_key_id,
        AWS_SECRET_ACCESS_KEY=sandbox.secret_access_key,
        AWS_ENDPOINT_URL=sandbox.endpoint,
        AWS_REGION=sandbox.region,
        TERM="xterm",
        COLUMNS="120",
        LINES="40",
    )
    argv = [
        sys.executable,
        "-m",
        "discover",
        "--role-arn",
        sandbox.role_arn,
        "--sandbox-account",
        sandbox.account,
        "--service-dir",
        str(service),
        "--stack-name",
        "fake-dev",
        *args,
        "--",
        sys.executable,
        str(FAKE),
        *[a for call in CALLS for a in ("--call", call)],
    ]
    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    term = Terminal(process, master, bytearray())
    try:
        yield term
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def role_policy(sandbox: LocalSandboxInfo) -> str:
    iam = admin_session(sandbox).client("iam", endpoint_url=sandbox.endpoint)
    names = iam.list_role_policies(RoleName="discover-sandbox")["PolicyNames"]
    return "".join(
        str(iam.get_role_policy(RoleName="discover-sandbox", PolicyName=n)["PolicyDocument"])
        for n in names
    )


EACH = ("--approve", "each", "--log-format", "console")
LIVE = ("--approve", "each")  # on a terminal: the live view, paused while it asks


@pytest.mark.parametrize("terminal", [EACH, LIVE], indirect=True, ids=["log lines", "live view"])
def test_each_grant_approved_at_the_terminal_converges(terminal: Terminal, service: Path) -> None:
    shown = terminal.expect(QUESTION)
    assert b"denied:    s3:ListAllMyBuckets" in shown
    assert b"grant:     Allow s3:ListAllMyBuckets on *" in shown
    assert b"scoping:" in shown
    terminal.answer("y")
    shown = terminal.expect(QUESTION)
    assert b"sqs:CreateQueue on arn:aws:sqs:us-east-1:123456789012:fake-dev-a" in shown
    terminal.answer("y")
    terminal.expect(QUESTION)
    terminal.answer("y")
    assert terminal.finish() == 0
    approved = list(read_events(service / ".discover" / "journal.jsonl"))
    decisions = [e for e in approved if isinstance(e, Approved)]
    assert [(d.iteration, d.how, d.grants[0].grant.action) for d in decisions] == [
        (1, "each", "s3:ListAllMyBuckets"),
        (2, "each", "sqs:CreateQueue"),
        (3, "each", "sqs:CreateQueue"),
    ]
    report = (service / ".discover" / "report.md").read_text()
    assert "## Who decided" in report
    assert "approved (each)" in report


@pytest.mark.parametrize("terminal", [EACH], indirect=True)
def test_always_for_an_action_asks_no_more_for_it(terminal: Terminal, service: Path) -> None:
    terminal.expect(QUESTION)
    terminal.answer("y")
    terminal.expect(QUESTION)
    terminal.answer("a")  # sqs:CreateQueue from now on
    assert terminal.finish() == 0
    decisions = [
        e for e in read_events(service / ".discover" / "journal.jsonl") if isinstance(e, Approved)
    ]
    assert [d.how for d in decisions] == ["each", "always", "always"]


@pytest.mark.parametrize(
    ("terminal", "answers", "go_on"),
    [
        (EACH, ("n", "n"), False),  # refused, and stop
        (EACH, ("q",), False),  # quit
    ],
    indirect=["terminal"],
    ids=["no, then stop", "quit"],
)
def test_a_refused_grant_is_journaled_and_stops_the_loop(
    terminal: Terminal,
    service: Path,
    sandbox: LocalSandboxInfo,
    answers: tuple[str, ...],
    go_on: bool,
) -> None:
    for answer in answers:
        terminal.expect(QUESTION)
        terminal.answer(answer)
    assert terminal.finish() == 3
    events = read_events(service / ".discover" / "journal.jsonl")
    (refused,) = [e for e in events if isinstance(e, Refused)]
    assert refused.go_on is go_on
    assert refused.grants[0].grant.action == "s3:ListAllMyBuckets"
    assert refused.by
    assert "ListAllMyBuckets" not in role_policy(sandbox)


@pytest.mark.parametrize(
    "terminal", [("--approve", "batch", "--log-format", "console")], indirect=True
)
def test_batch_asks_once_per_run(terminal: Terminal, service: Path) -> None:
    for _ in CALLS:
        shown = terminal.expect(QUESTION)
        assert b"grant them all?" in shown
        terminal.answer("y")
    assert terminal.finish() == 0
    decisions = [
        e for e in read_events(service / ".discover" / "journal.jsonl") if isinstance(e, Approved)
    ]
    assert [d.how for d in decisions] == ["batch"] * 3


@pytest.mark.parametrize("mode", ["each", "batch"])
def test_without_a_terminal_approve_says_to_propose(tmp_path: Path, mode: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "discover",
            "--local",
            "--approve",
            mode,
            "--stack-name",
            "x",
            "--",
            "true",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    expected = f"discover: --approve {mode} needs a terminal to ask on, and stdin is not one"
    assert lines[0] == expected
    assert "--propose" in lines[1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "first_line"),
    [
        (
            ("--approve", "each", "--propose"),
            "discover: --approve and --propose do not go together",
        ),
        (
            ("--propose", "--restore"),
            "discover: --restore writes the role's policy, and --propose never writes IAM",
        ),
    ],
)
def test_modes_that_do_not_go_together(
    tmp_path: Path, flags: tuple[str, ...], first_line: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "discover", "--local", *flags, "--stack-name", "x", "--", "true"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == first_line
    assert result.stderr.splitlines()[1].startswith("Tip: ")
