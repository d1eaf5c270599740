"""``--propose`` on a terminal: discover waits for Enter, reads the role again, and says what
is still missing before it deploys again (the test applies out of band while it waits)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from discover.journal import read_events
from discover.local_session import SandboxState
from discover.run_events import AppliedOutOfBand, ProposalMissing
from tests.test_approval_pty import Terminal
from tests.test_propose import FAKE, pipeline_apply, up  # noqa: F401 - the fixture

WAITING = re.compile(rb"apply the proposal, then press Enter")
CALLS = ("s3:list_buckets:{}", "logs:describe_log_groups:{}")


def test_on_a_terminal_it_waits_for_the_apply(up: tuple[Path, SandboxState]) -> None:  # noqa: F811
    service, state = up
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    argv = [sys.executable, "-m", "discover", "--local", "--propose", "--stack-name", "fake-dev"]
    argv += ["--log-format", "console", "--", sys.executable, str(FAKE)]
    argv += [a for call in CALLS for a in ("--call", call)]
    process = subprocess.Popen(
        argv,
        cwd=service,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    terminal = Terminal(process, master, bytearray())
    proposed = service / ".discover" / "proposed.json"
    try:
        shown = terminal.expect(WAITING)
        assert b"proposed 1 new grant(s) of 1" in shown
        terminal.answer("")  # Enter, without applying: it says so and waits again
        shown = terminal.expect(WAITING)
        assert b"the proposal is not applied: the role lacks 1 of 1 grant(s)" in shown
        pipeline_apply(state, proposed.read_text())
        terminal.answer("")
        shown = terminal.expect(WAITING)
        assert b"the proposal is in effect (found in inline policy terraform-managed)" in shown
        document = json.loads(proposed.read_text())
        (statement,) = document["Statement"]
        partial = {**statement, "Action": ["s3:ListAllMyBuckets"]}
        pipeline_apply(state, json.dumps({**document, "Statement": [partial]}))
        terminal.answer("")
        shown = terminal.expect(WAITING)
        assert b"only partly applied: the role lacks 1 of 2 grant(s)" in shown
        assert b"- logs:DescribeLogGroups on *" in shown
        pipeline_apply(state, proposed.read_text())
        terminal.answer("")
        assert terminal.finish() == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    events = read_events(service / ".discover" / "journal.jsonl")
    assert len([e for e in events if isinstance(e, AppliedOutOfBand)]) == 2
    assert len([e for e in events if isinstance(e, ProposalMissing)]) == 2
