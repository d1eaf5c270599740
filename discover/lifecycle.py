"""The phases of a service's life a deploy role must cover: create, update, remove.

A pipeline's role does more than create the stack once: the next merge updates it (for the
Serverless CLI, ``deploy --force`` uploads new artifacts, so every function's code and version
change), a deploy with no change creates and deletes an empty change set, and ``remove``
deletes everything, the deployment bucket's objects first. Each phase is one or more steps;
a step is a command discover learns from the same way (deploy, read the denials, grant).

A step that updates or removes needs the stack deployed first: when it is not (a first run of
the phase, or the stack was deleted to recover it), it is deployed again with the policy so
far (the create phase's), and only then is the step run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from discover.errors import DiscoverError


class Phase(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    REMOVE = "remove"


ALL_PHASES: tuple[Phase, ...] = (Phase.CREATE, Phase.UPDATE, Phase.REMOVE)


@dataclass(frozen=True, slots=True)
class Step:
    """One command of a phase, and whether the stack must be deployed before it runs."""

    phase: Phase
    name: str  # "create", "update", "no-op update", "remove"
    command: tuple[str, ...]
    needs_stack: bool


def parse_phases(value: str | Iterable[str]) -> tuple[Phase, ...]:
    """``create,update,remove`` (any subset, any order given) as phases in life order."""
    names = value.split(",") if isinstance(value, str) else list(value)
    wanted = {n.strip().lower() for n in names if n.strip()}
    known = {p.value for p in Phase}
    unknown = sorted(wanted - known)
    if unknown or not wanted:
        msg = f"--phases: unknown phase {', '.join(unknown)}" if unknown else "--phases is empty"
        raise DiscoverError(msg, tip="Use a comma-separated list of create, update, remove.")
    return tuple(p for p in ALL_PHASES if p.value in wanted)


def steps(
    phases: Sequence[Phase],
    *,
    deploy_command: Sequence[str],
    remove_command: Sequence[str],
    serverless: bool,
) -> tuple[Step, ...]:
    """The steps of ``phases``, in order.

    ``serverless``: the deploy is the Serverless CLI's (its ``--force`` makes an update of an
    unchanged service); otherwise the user's command is run again as the update.
    """
    deploy = tuple(deploy_command)
    found: list[Step] = []
    for phase in phases:
        match phase:
            case Phase.CREATE:
                found.append(Step(phase, "create", deploy, needs_stack=False))
            case Phase.UPDATE:
                forced = (*deploy, "--force") if serverless else deploy
                found.append(Step(phase, "update", forced, needs_stack=True))
                found.append(Step(phase, "no-op update", deploy, needs_stack=True))
            case Phase.REMOVE:
                found.append(Step(phase, "remove", tuple(remove_command), needs_stack=True))
    return tuple(found)


def default_phases(*, custom_command: bool, remove_command: bool) -> tuple[Phase, ...]:
    """Every phase for the Serverless CLI; for a command of the user's own, ``create`` only,
    unless a ``--remove-command`` says how that tool removes (discover cannot guess how an
    arbitrary command updates or removes: ``--phases`` says so)."""
    if not custom_command or remove_command:
        return ALL_PHASES
    return (Phase.CREATE,)
