"""STS sessions as AWS runs them: a bounded duration, and an end.

``AssumeRole`` takes ``DurationSeconds`` from 900 up to the role's ``MaxSessionDuration``
(default 3600, at most 43200) and refuses anything else; the session it hands out stops
working at its expiration, when every call made with it is answered ``ExpiredToken``.
Time is the sandbox clock, so tests can make a session run out without waiting.
https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from discover.local.clock import CLOCK

MIN_DURATION_S = 900
MAX_DURATION_S = 43_200
DEFAULT_MAX_SESSION_DURATION_S = 3_600


class SessionRefusedError(Exception):
    """AssumeRole's answer to a duration it will not give."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check_duration(duration: int, role: Any | None) -> None:
    """Refuse ``duration`` as STS does; ``role`` is the moto Role (None if it does not exist)."""
    if duration < MIN_DURATION_S:
        msg = (
            f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
            f"satisfy constraint: Member must have value greater than or equal to {MIN_DURATION_S}"
        )
        raise SessionRefusedError(msg)
    if duration > MAX_DURATION_S:
        msg = (
            f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
            f"satisfy constraint: Member must have value less than or equal to {MAX_DURATION_S}"
        )
        raise SessionRefusedError(msg)
    limit = int(getattr(role, "max_session_duration", None) or DEFAULT_MAX_SESSION_DURATION_S)
    if duration > limit:
        msg = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        raise SessionRefusedError(msg)


def expiration_after(duration: int) -> datetime:
    """When a session started now on the sandbox clock ends (naive UTC, as moto keeps it)."""
    return (CLOCK.utcnow() + timedelta(seconds=duration)).replace(tzinfo=None)


def is_expired(expiration: datetime) -> bool:
    """Has a session with this (naive UTC) expiration run out on the sandbox clock?"""
    ends = expiration.replace(tzinfo=UTC) if expiration.tzinfo is None else expiration
    return CLOCK.utcnow() >= ends


def session_expiration(account: str, access_key_id: str) -> datetime | None:
    """The expiration of the STS session that owns ``access_key_id`` (None: not a session)."""
    from moto.sts.models import sts_backends

    for assumed in sts_backends[account]["aws"].assumed_roles:
        if assumed.access_key_id == access_key_id:
            expiration: datetime = assumed.expiration
            return expiration
    return None
