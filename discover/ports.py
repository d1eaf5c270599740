"""The ports: every interface the loop and the application layer use, with the data crossing them.

The loop (``loop.py``) and the workflows (``app.py``) see the outside world only through
these Protocols; the implementations (``runner.CommandDeployer``, ``sandbox.AwsSandbox``,
``credentials.RoleSession``, the journal and the live view as event sinks) import this module,
never the other way round. Unit tests drive the loop with fakes of the same Protocols.

What crosses a port is frozen data: ``Credentials`` in, ``DeployResult`` out (its output
already read, denials included, so nothing behind the loop reads a file).

A ``Trail`` (which calls a session really made, CloudTrail ``LookupEvents``) and a
``Template`` (the resources a deploy will create, before it runs) are the predicting
strategy's ports; their data types live with their readers (``trail``, ``template``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from discover.errors import DiscoverError

if TYPE_CHECKING:
    from discover.denials import Denial
    from discover.known_messages import Target
    from discover.policy import PolicyDocument
    from discover.run_events import Event
    from discover.template import ServiceTemplate
    from discover.trail import TrailRead


@dataclass(frozen=True, slots=True)
class Credentials:
    """One STS session of the sandbox role."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime
    arn: str | None = None  # ``AssumedRoleUser.Arn``: the session's principal in a denial

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        return f"Credentials(access_key_id={self.access_key_id!r}, expiration={self.expiration})"


@dataclass(frozen=True, slots=True)
class DeployResult:
    """How one deploy run ended, with its output already read.

    ``output`` is the last part of the output (bounded); ``denials`` are the permission
    denials read from the whole output as it streamed (a log of gigabytes costs no memory),
    so the loop never goes back to the log file.
    """

    returncode: int
    output: str  # the last TAIL_BYTES of the output, decoded with errors="replace"
    duration_s: float
    timed_out: bool
    log_path: Path | None = None
    truncated: bool = False
    denials: tuple[Denial, ...] | None = None  # None: not read yet (the loop parses ``output``)

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    @property
    def last_line(self) -> str:
        """The last non-blank line of the output (for a one-line summary)."""
        for line in reversed(self.output.splitlines()):
            if line.strip():
                return line.strip()
        return ""


class StackCleanupError(DiscoverError):
    """The stack a failed run left could not be deleted. With a CloudFormation service role the
    delete runs with that role's permissions, as on AWS, so its refusals are for the run to
    learn (the stack's events name them)."""

    exit_code = 2


class Deployer(Protocol):
    """Runs the deploy command once with a session of the sandbox role."""

    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult: ...


class Sandbox(Protocol):
    """What the loop needs of the sandbox: the role's policy, the stack, its events."""

    @property
    def role_arn(self) -> str: ...

    def prepare(self) -> None:
        """Make the next deploy possible: delete the configured stack if a state blocks it."""

    def apply_policy(self, policy: PolicyDocument) -> None:
        """Put ``policy`` as discover's inline policy on the sandbox role."""

    def stack_events_since(self, since: datetime) -> tuple[dict[str, object], ...]:
        """The configured stack's events at or after ``since`` (empty if no stack)."""

    def locate(self, target: Target) -> str | None:
        """The ARN of a resource a CLI message refers to (the deployment bucket, ...)."""

    def decode_authorization_message(self, encoded: str) -> str | None:
        """``sts:DecodeAuthorizationMessage`` as the admin; None when that is not permitted."""

    def change_set_reasons_since(self, since: datetime) -> tuple[str, ...]:
        """The ``StatusReason`` of the change sets that failed since ``since``."""


class AdminSandbox(Sandbox, Protocol):
    """The sandbox as the application layer uses it: the loop's port plus the admin's chores
    (guard rails, backup and restore, the run lock, verify's managed policies, clean-up)."""

    def admin_identity(self) -> dict[str, str]: ...

    def check_role(self) -> int:
        """The role's MaxSessionDuration; raises when the role cannot be read."""

    def read_policy(self) -> PolicyDocument | None: ...

    def backup(self) -> dict[str, Any]: ...

    def restore(self, backup: dict[str, Any]) -> None: ...

    def attach_managed(self, parts: Sequence[PolicyDocument]) -> list[str]: ...

    def detach_managed(self, arns: Sequence[str]) -> None: ...

    def stack_status(self) -> str | None: ...

    def deployed(self) -> bool:
        """True when the stack exists in a state an update or a remove can start from."""

    def delete_stack(self) -> None: ...

    def role_tags(self) -> dict[str, str]: ...

    def tag_role(self, key: str, value: str) -> None: ...

    def untag_role(self, key: str) -> None: ...


class Sessions(Protocol):
    """Temporary credentials of the sandbox role, renewed before (or after) they run out."""

    def current(self) -> Credentials: ...

    def renew(self) -> Credentials: ...


class EventSink(Protocol):
    """Where the typed events of a run go: the journal, the live view, the log."""

    def emit(self, event: Event) -> None: ...


class OutputWatcher(Protocol):
    """Sees the deploy's output line by line as it arrives (the live view's spinner)."""

    def output_line(self, line: str) -> None: ...


class Trail(Protocol):
    """What a run's session called, as CloudTrail recorded it."""

    def mark(self, credentials: Credentials) -> datetime:
        """Make the watermark call with a run's session; when it was made."""

    def read(self, session_name: str, *, started: datetime, watermark: datetime) -> TrailRead:
        """The session's events, once the watermark has been delivered (or the bound ran out)."""


class Template(Protocol):
    """The service's template and what its CLI derives, obtained without credentials."""

    def load(self) -> ServiceTemplate: ...


__all__ = [
    "AdminSandbox",
    "Credentials",
    "DeployResult",
    "Deployer",
    "EventSink",
    "OutputWatcher",
    "Sandbox",
    "Sessions",
    "StackCleanupError",
    "Template",
    "Trail",
]
