"""Whose denial is this: this run's session, a trusted channel, nobody named, or someone else.

The deploy's output is text anyone can write: a Lambda's log line, a stack output, a plugin's
message can all quote a denial. So a denial counts as the sandbox role's own only when its
principal is exactly this run's session (``arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/
SESSION``, compared whole, with the session name discover chose); a denial read from a
channel discover trusts (this stack's own events, a CLI message it knows, an authorization
message it decoded itself) with no principal is the run's too, but granted only inside the
fence; text with no principal is reported, and granted only inside the fence; any other
principal is someone else's, and never granted.
"""

from __future__ import annotations

from enum import Enum

from discover.denials import Denial

TRUSTED_SOURCES = ("stack-event", "cli-message")
DECODED_MARK = "(decoded)"  # what the loop appends to a source it decoded with STS


class Owner(str, Enum):
    """Who a denial belongs to, as far as discover can tell."""

    SESSION = "session"  # this run's session, token-exact
    SERVICE_ROLE = "service-role"  # the CloudFormation service role's session (its resources)
    TRUSTED = "trusted"  # no principal, from a channel discover trusts
    UNATTRIBUTED = "unattributed"  # no principal, from the deploy's output
    FOREIGN = "foreign"  # another principal (or another session of the role)


def session_arn(role_arn: str, session_name: str) -> str:
    """The ``assumed-role`` ARN STS gives a session named ``session_name`` of ``role_arn``."""
    parts = role_arn.split(":", 5)
    if len(parts) < 6:
        msg = f"not a role ARN: {role_arn!r}"
        raise ValueError(msg)
    role_name = parts[5].rsplit("/", 1)[-1]
    return f"arn:{parts[1]}:sts::{parts[4]}:assumed-role/{role_name}/{session_name}"


def _trusted(source: str) -> bool:
    return source.startswith(TRUSTED_SOURCES) or source.endswith(DECODED_MARK)


def attribute(denial: Denial, session: str | None, service_session: str | None = None) -> Owner:
    """Who ``denial`` belongs to, for a run whose session ARN is ``session``.

    ``session`` None means the session is unknown (a caller that did not say): then no
    principal can match, and only principal-less denials are the run's. ``service_session``
    is the CloudFormation service role's session, when the run deploys with one
    (``service_role``): its denials are that role's, compared whole too, and only from a
    channel discover trusts (the stack's events): a resource handler's refusal reaches the
    deploy's output only as a copy of one, and text there naming that session is anyone's.
    A stack event's denial that names no principal (``CreateLogGroup with Tags``) is the
    service role's too: with one, CloudFormation makes every resource's calls as it.
    """
    if denial.principal is None:
        if service_session is not None and denial.source.startswith("stack-event"):
            # A resource's event with a service role: CloudFormation made the call as it.
            return Owner.SERVICE_ROLE
        return Owner.TRUSTED if _trusted(denial.source) else Owner.UNATTRIBUTED
    if session is not None and denial.principal == session:
        return Owner.SESSION
    if (
        service_session is not None
        and denial.principal == service_session
        and _trusted(denial.source)
    ):
        return Owner.SERVICE_ROLE
    return Owner.FOREIGN
