"""Asking a person before a grant is made: ``--approve each`` or ``--approve batch``.

The approver is a ``GrantStrategy`` around the loop's own one: of the grants a run chose, it
keeps those the person approves (``yes``, or ``always`` for the action from then on) and
drops those refused when the person wants to go on; a refusal that should stop the loop, or
``quit``, is handed back through the loop's ``refuse`` hook, so the loop stops as it does for
an unconfirmed high-risk grant. Every decision is journaled (``Approved``, ``Refused``) with
who made it.

What is shown comes from the deploy's output (untrusted): every control character is escaped
before it reaches the terminal, so a denial message cannot move the cursor or rewrite the
question.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TextIO

from discover.denials import Denial
from discover.errors import DiscoverError
from discover.iamdb import Action
from discover.ports import EventSink
from discover.run_events import Approved, Evidence, Refused


class ApproveMode(str, Enum):
    """``--approve``: ask before each grant, once per run for all its grants, or never."""

    EACH = "each"
    BATCH = "batch"
    NEVER = "never"


class Answer(str, Enum):
    YES = "yes"
    NO = "no"
    ALWAYS = "always"
    QUIT = "quit"


class ApprovalError(DiscoverError):
    """``--approve`` cannot ask anybody."""

    exit_code = 2


_ANSWERS = {
    "y": Answer.YES,
    "yes": Answer.YES,
    "n": Answer.NO,
    "no": Answer.NO,
    "a": Answer.ALWAYS,
    "always": Answer.ALWAYS,
    "q": Answer.QUIT,
    "quit": Answer.QUIT,
}


def printable(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1) escaped, e.g. ESC as ``\\x1b``."""
    out = []
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    return "".join(out)


def describe(item: Evidence) -> list[str]:
    """What the person sees of one grant: the denial, the statement, the scoping note."""
    grant, denial = item.grant, item.denial
    lines = [
        f"  denied:    {printable(denial.action or '?')} on {printable(denial.resource or '*')}"
        f" ({printable(denial.source)})",
    ]
    if denial.message:
        lines.append(f"  message:   {printable(denial.message[:300])}")
    lines.append(f"  grant:     Allow {grant.action} on {printable(grant.resource)}")
    for operator, key, values in grant.condition:
        lines.append(f"             if {operator} {key} {printable(' | '.join(values))}")
    if item.note:
        lines.append(f"  scoping:   {printable(item.note)}")
    return lines


def check_terminal(mode: ApproveMode, *, interactive: bool) -> None:
    """``each`` and ``batch`` need a person at a terminal."""
    if mode is not ApproveMode.NEVER and not interactive:
        msg = f"--approve {mode.value} needs a terminal to ask on, and stdin is not one"
        raise ApprovalError(
            msg,
            tip="In CI use --propose: discover writes the policy for your pipeline to apply.",
        )


@dataclass
class Approver:
    """The strategy that asks; ``refuse`` is the loop's hook for the refusals that stop it."""

    mode: ApproveMode
    ask: Callable[[str], str]
    out: TextIO = field(default_factory=lambda: sys.stderr)
    who: str = field(default_factory=getpass.getuser)
    inner: object | None = None  # the strategy this one narrows (None: all planned grants)
    events: EventSink | None = None
    _always: set[Action] = field(default_factory=set)
    _stop: list[Evidence] = field(default_factory=list)

    def bind(self, events: EventSink, inner: object | None = None) -> Approver:
        self.events, self.inner = events, inner
        return self

    def _emit(self, event: Approved | Refused) -> None:
        if self.events is not None:
            self.events.emit(event)

    def choose(self, planned: Sequence[Evidence], denials: Sequence[Denial]) -> list[Evidence]:
        chosen = list(planned)
        choose = getattr(self.inner, "choose", None)
        if choose is not None:
            chosen = list(choose(planned, denials))
        if self.mode is ApproveMode.NEVER or not chosen:
            return chosen
        pending = [e for e in chosen if e.grant.action not in self._always]
        pre = [e for e in chosen if e.grant.action in self._always]
        if pre:
            self._emit(Approved(pre[0].iteration, tuple(pre), self.who, "always"))
        if not pending:
            return chosen
        if self.mode is ApproveMode.BATCH:
            kept = self._ask_batch(pending)
        else:
            kept = []
            for number, item in enumerate(pending, start=1):
                if item.grant.action in self._always:  # "always" said earlier in this run
                    self._emit(Approved(item.iteration, (item,), self.who, "always"))
                    kept.append(item)
                    continue
                kept += self._ask_one(item, number, len(pending))
                if self._stop:
                    break
        if self._stop:
            return [*pre, *kept, *self._stop]  # the loop's refuse hook stops on these
        return [*pre, *kept]

    def _question(self, prompt: str) -> Answer:
        while True:
            raw = self.ask(prompt).strip().lower()
            if raw in _ANSWERS:
                return _ANSWERS[raw]
            self.out.write("  answer y (yes), n (no), a (always for this action) or q (quit)\n")

    def _refused(self, items: list[Evidence]) -> None:
        go_on = self._question("  refused. go on without it? [y/N] ") is Answer.YES
        self._emit(Refused(items[0].iteration, tuple(items), self.who, go_on))
        if not go_on:
            self._stop.extend(items)

    def _ask_one(self, item: Evidence, number: int, total: int) -> list[Evidence]:
        self.out.write(f"\ndiscover: grant {number} of {total} after run {item.iteration}\n")
        self.out.write("\n".join(describe(item)) + "\n")
        self.out.flush()
        answer = self._question("  grant it? [y]es / [n]o / [a]lways for this action / [q]uit ")
        if answer is Answer.QUIT:
            self._emit(Refused(item.iteration, (item,), self.who, False))
            self._stop.append(item)
            return []
        if answer is Answer.NO:
            self._refused([item])
            return []
        if answer is Answer.ALWAYS:
            self._always.add(item.grant.action)
        how = "always" if answer is Answer.ALWAYS else self.mode.value
        self._emit(Approved(item.iteration, (item,), self.who, how))
        return [item]

    def _ask_batch(self, items: list[Evidence]) -> list[Evidence]:
        self.out.write(f"\ndiscover: {len(items)} grant(s) after run {items[0].iteration}\n")
        for item in items:
            self.out.write("\n".join(describe(item)) + "\n\n")
        self.out.flush()
        answer = self._question("  grant them all? [y]es / [n]o / [q]uit ")
        if answer in (Answer.YES, Answer.ALWAYS):
            self._emit(Approved(items[0].iteration, tuple(items), self.who, self.mode.value))
            return items
        if answer is Answer.QUIT:
            self._emit(Refused(items[0].iteration, tuple(items), self.who, False))
            self._stop.extend(items)
            return []
        self._refused(items)
        return []

    def refuse(self, evidence: list[Evidence]) -> list[Evidence]:
        """The loop's ``refuse`` hook: the grants whose refusal stops the loop."""
        stop, self._stop = [e for e in evidence if e in self._stop], []
        return stop


__all__ = ["Answer", "ApprovalError", "ApproveMode", "Approver", "check_terminal", "printable"]
