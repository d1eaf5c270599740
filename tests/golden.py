"""The golden files: what each recorded journal must render to, and how to make them again.

``scripts/regen-golden`` runs this module: it re-renders every golden file from the journals
recorded under ``fixtures/journals/`` (on purpose, after a change in scoping, formats or the
report), and with ``--record [SERVICE ...]`` first runs the sample services (default: hello)
through ``discover --local`` to record their journals anew (when the local sandbox learns to
deny more, the policy grows).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from discover.formats import Format, render
from discover.journal import read_events, read_journal
from discover.report import render_report
from discover.run_events import Event, first_start, last_policy

ROOT = Path(__file__).resolve().parents[1]
JOURNALS = ROOT / "fixtures" / "journals"
GOLDEN = ROOT / "fixtures" / "golden"
OSLS = ROOT / "fixtures" / "serverless" / "node_modules" / ".bin" / "osls"

# The golden files record the observed loop (every denial of each run): ~30-50 runs once
# CloudFormation's calls and tags count.
LIMIT = ("--strategy", "observed", "--max-iterations", "90")
Events = Sequence[Event]


def journal(name: str) -> list[dict[str, Any]]:
    """The recorded journal ``fixtures/journals/NAME.jsonl``, as raw records."""
    return list(read_journal(JOURNALS / f"{name}.jsonl"))


def events(name: str) -> tuple[Event, ...]:
    """The recorded journal ``fixtures/journals/NAME.jsonl``, as typed events."""
    return read_events(JOURNALS / f"{name}.jsonl")


def stack_name(events: Events) -> str:
    started = first_start(events)
    assert started is not None
    return started.stack_name


def _format(fmt: Format) -> Callable[[Events], str]:
    return lambda events: render(last_policy(events), fmt, name=stack_name(events))


# Golden file name -> how it is made from a journal.
OUTPUTS: dict[str, Callable[[Events], str]] = {
    "policy.json": _format(Format.JSON),
    "policy.tf": _format(Format.TERRAFORM),
    "policy.cfn.yaml": _format(Format.CLOUDFORMATION),
    "deployment-role.yml": _format(Format.SERVERLESS),
    "report.md": render_report,
}


def regenerate(name: str) -> list[Path]:
    recorded = events(name)
    folder = GOLDEN / name
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, make in OUTPUTS.items():
        path = folder / filename
        path.write_text(make(recorded), encoding="utf-8")
        written.append(path)
    return written


def record(name: str = "hello") -> Path:
    """Run a sample service through ``discover --local``; keep its journal, paths relative."""
    with tempfile.TemporaryDirectory() as tmp:
        service = Path(tmp) / name
        shutil.copytree(
            ROOT / "fixtures" / "services" / name,
            service,
            ignore=shutil.ignore_patterns(".discover", ".serverless", "node_modules"),
        )
        subprocess.run(
            [sys.executable, "-m", "discover", "--local", "--cli", str(OSLS), "--quiet", *LIMIT],
            cwd=service,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return keep_journal(service / ".discover" / "journal.jsonl", service, name)


def keep_journal(path: Path, service: Path, name: str) -> Path:
    """Copy a run's journal to ``fixtures/journals/NAME.jsonl``, paths made relative."""
    text = path.read_text(encoding="utf-8")
    # Paths of this machine mean nothing elsewhere; JSON escapes nothing in them.
    for prefix in (f"{service}/", f"{ROOT}/"):
        text = text.replace(prefix, "")
    for line in text.splitlines():
        json.loads(line)  # still JSON
    target = JOURNALS / f"{name}.jsonl"
    target.write_text(text, encoding="utf-8")
    return target


def main(argv: Sequence[str]) -> int:
    if "--record" in argv:
        names = [a for a in argv[argv.index("--record") + 1 :] if not a.startswith("-")]
        for name in names or ["hello"]:
            print(f"recorded {record(name).relative_to(ROOT)}")
    for path in sorted(JOURNALS.glob("*.jsonl")):
        for written in regenerate(path.stem):
            print(f"wrote {written.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
