"""The live view: a run's events drawn on a terminal with rich, as they happen.

At the top the service (its stack), stage, region and the sandbox role; then one row per
deploy run with its number out of the limit, its time, its outcome, and each denial with where
it was seen and the grant it became; while a run is going, a spinner with the deploy's last
output line; at the end, the summary. It is an ``EventSink`` (the same typed events as the
journal) and an ``OutputWatcher`` (the deploy's lines, shown one at a time, never stored).

Everything shown that came from the deploy or AWS is untrusted: it is drawn as plain text
(``rich.text.Text``, no markup), with control characters removed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from discover.denials import Denial
from discover.run_events import (
    DenialsFound,
    Event,
    Evidence,
    Granted,
    PhaseStarted,
    PropagationWait,
    Resumed,
    RunFinished,
    RunStarted,
    SessionRenewed,
    Started,
    Stopped,
    StopReason,
)

_SOURCES = {"output": "output", "stack-event": "stack event"}


def _plain(text: str, limit: int = 160) -> str:
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _source(denial: Denial) -> str:
    where = _SOURCES.get(denial.source, denial.source)
    if denial.logical_id:
        where += f" {denial.logical_id}"
    return where


@dataclass
class _Row:
    number: int
    limit: int
    started: float
    duration_s: float | None = None
    outcome: str = "running"
    style: str = "yellow"
    denials: tuple[Denial, ...] = ()
    grants: dict[tuple[str | None, str | None, str | None], Evidence] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class LiveView:
    """An ``EventSink`` drawing the run on ``console`` (a terminal); use it as a context."""

    def __init__(self, console: Console, *, limit: int = 0) -> None:
        self._console = console
        self._limit = limit
        self._lock = threading.Lock()
        self._header: Text = Text("discover", style="bold")
        self._rows: dict[int, _Row] = {}
        self._steps: dict[int, str] = {}  # first run of each step -> its name
        self._running: _Row | None = None
        self._last_line = ""
        self._summary: Text | None = None
        self._spinner = Spinner("dots", text="")
        self._live = Live(
            console=console, refresh_per_second=8, get_renderable=self.render, transient=False
        )

    # --- context ----------------------------------------------------------------------

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._running = None
        self._live.refresh()
        self._live.stop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop drawing (to ask a question on the terminal), then go on."""
        self._live.stop()
        try:
            yield
        finally:
            self._live.start()

    # --- the sinks ---------------------------------------------------------------------

    def output_line(self, line: str) -> None:
        if line.strip():
            self._last_line = _plain(line, 120)

    def emit(self, event: Event) -> None:  # noqa: PLR0912 - one branch per event kind
        with self._lock:
            if isinstance(event, Started):
                self._limit = event.max_iterations
                self._header = Text.assemble(
                    ("discover ", "bold"),
                    (event.stack_name, "bold cyan"),
                    f"  stage {event.stage}  region {event.region}\n",
                    ("role ", "dim"),
                    (event.role_arn, "dim"),
                    ("  (local sandbox)" if event.local else "", "dim"),
                )
            elif isinstance(event, PhaseStarted):
                self._summary = None
                self._steps[event.iteration] = event.step
            elif isinstance(event, Resumed):
                self._header.append(f"\nresumed at run {event.iteration}", style="dim")
            elif isinstance(event, RunStarted):
                limit = event.limit or self._limit
                row = _Row(event.iteration, limit, time.monotonic())
                self._rows[event.iteration] = row
                self._running = row
                self._last_line = ""
            elif isinstance(event, RunFinished):
                row = self._row(event.iteration)
                row.duration_s = event.duration_s
                self._running = None
                if event.timed_out:
                    row.outcome, row.style = "timed out", "red"
                elif event.succeeded:
                    row.outcome, row.style = "deployed", "green"
                else:
                    row.outcome, row.style = "failed", "red"
            elif isinstance(event, DenialsFound):
                row = self._row(event.iteration)
                row.denials = event.denials
                row.outcome = f"denied {len(event.denials)}" if event.denials else "failed"
            elif isinstance(event, Granted):
                row = self._row(event.iteration)
                for item in event.grants:
                    row.grants[item.denial.key] = item
                row.outcome, row.style = f"granted {len(event.grants)}", "yellow"
            elif isinstance(event, PropagationWait):
                self._row(event.iteration).notes.append(
                    f"waiting {event.seconds:g} s for IAM to propagate"
                )
            elif isinstance(event, SessionRenewed):
                self._row(event.iteration).notes.append("session expired, renewed")
            elif isinstance(event, Stopped):
                self._running = None
                self._summary = self._stopped(event)
        self._live.refresh()

    def _row(self, number: int) -> _Row:
        if number not in self._rows:
            self._rows[number] = _Row(number, self._limit, time.monotonic())
        return self._rows[number]

    def _stopped(self, event: Stopped) -> Text:
        runs = len(self._rows)
        if event.reason is StopReason.SUCCEEDED:
            return Text(f"converged: {event.detail}", style="bold green")
        text = Text(f"stopped ({event.reason.value}) after {runs} run(s): ", style="bold red")
        text.append(_plain(event.detail, 300))
        for denial in event.blocking:
            text.append(f"\n  denied {denial.action or '?'} on {denial.resource or '?'}")
            text.append(f" ({denial.reason.value}, {_source(denial)})", style="dim")
        return text

    # --- drawing ----------------------------------------------------------------------

    def render(self) -> RenderableType:
        """What the view shows now (the live display redraws this several times a second)."""
        with self._lock:
            table = Table(expand=True, show_edge=False, pad_edge=False)
            table.add_column("Run", no_wrap=True)
            table.add_column("Time", justify="right", no_wrap=True)
            table.add_column("Outcome", no_wrap=True)
            table.add_column("Denied (seen in) → granted", ratio=1)
            for row in self._rows.values():
                if row.number in self._steps:
                    table.add_section()
                    table.add_row(Text(self._steps[row.number], style="bold"), "", "", "")
                table.add_row(*self._cells(row))
            parts: list[RenderableType] = [self._header, table]
            if self._running is not None:
                self._spinner.text = Text(
                    f"run {self._running.number}: {self._last_line or 'deploying…'}",
                    style="dim",
                    no_wrap=True,
                    overflow="ellipsis",
                )
                parts.append(self._spinner)
            if self._summary is not None:
                parts.append(self._summary)
            return Group(*parts)

    def _cells(self, row: _Row) -> tuple[Text, Text, Text, Text]:
        limit = f"/{row.limit}" if row.limit else ""
        seconds = row.duration_s if row.duration_s is not None else time.monotonic() - row.started
        detail = Text()
        for denial in row.denials:
            if detail:
                detail.append("\n")
            detail.append(_plain(f"{denial.action or '?'} on {denial.resource or '*'}"))
            detail.append(f" ({_source(denial)})", style="dim")
            evidence = row.grants.get(denial.key)
            if evidence is not None:
                grant = evidence.grant
                detail.append("\n  → ", style="green")
                detail.append(_plain(f"{grant.action} {grant.resource}"), style="green")
                if grant.condition:
                    detail.append(" (conditioned)", style="green")
        for note in row.notes:
            if detail:
                detail.append("\n")
            detail.append(note, style="dim")
        return (
            Text(f"{row.number}{limit}"),
            Text(f"{seconds:.0f}s"),
            Text(row.outcome, style=row.style),
            detail,
        )
