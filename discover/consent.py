"""Who decides a grant: the CLI's wiring of ``--approve`` and ``--propose`` into the workflow.

Builds the ``Hooks`` fields the application layer takes: the ``Approver`` (asking at the
terminal, with the live view paused while it asks) and the factory of the
``ProposingSandbox``. Refuses ``--approve each|batch`` without a terminal, and the two modes
together (a proposal is approved by whoever applies it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import TYPE_CHECKING, Any, TypeVar

from discover.approval import ApprovalError, ApproveMode, Approver, check_terminal
from discover.config import Config
from discover.formats import Format
from discover.ports import AdminSandbox, EventSink
from discover.proposal import ProposingSandbox

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# The application layer's Hooks, not imported: it starts the local sandbox, this must not.
H = TypeVar("H", bound="DataclassInstance")


def _asker(view: object | None) -> Any:
    def ask(question: str) -> str:
        paused = getattr(view, "paused", None)
        with paused() if paused is not None else contextlib.nullcontext():
            sys.stderr.write(question)
            sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:  # the terminal closed: nobody approves anything
                return "q"
            return line

    return ask


def check_flags(config: Config, *, approve: str, propose: bool) -> None:
    """The modes that cannot go together, before anything runs."""
    if propose and ApproveMode(approve) is not ApproveMode.NEVER:
        msg = "--approve and --propose do not go together"
        raise ApprovalError(msg, tip="With --propose, whoever applies the proposal approves it.")
    if propose and config.restore:
        msg = "--restore writes the role's policy, and --propose never writes IAM"
        raise ApprovalError(msg, tip="Restore the role through your pipeline.")


def decision_hooks(
    hooks: H,
    config: Config,
    view: object | None,
    *,
    approve: str,
    propose: bool,
    fmt: Format,
) -> H:
    """``hooks`` (``app.Hooks``) with the approver and the proposing sandbox the flags ask for."""
    check_flags(config, approve=approve, propose=propose)
    mode = ApproveMode(approve)
    interactive = sys.stdin.isatty()
    check_terminal(mode, interactive=interactive)
    ask = _asker(view)
    if mode is not ApproveMode.NEVER:
        hooks = dataclasses.replace(hooks, approver=Approver(mode, ask))
    if propose:

        def say(text: str) -> None:
            paused = getattr(view, "paused", None)
            with paused() if paused is not None else contextlib.nullcontext():
                print(text, file=sys.stderr, flush=True)

        def make(sandbox: AdminSandbox, events: EventSink) -> ProposingSandbox:
            return ProposingSandbox(
                sandbox,
                config.state_dir,
                events,
                fmt=fmt,
                name=config.stack_name,
                wait=ask if interactive else None,
                say=say,
            )

        hooks = dataclasses.replace(hooks, propose=make)
    return hooks


__all__ = ["check_flags", "decision_hooks"]
