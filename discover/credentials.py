"""Temporary credentials for the sandbox role: assume, refresh before expiry, child env.

The deploy runs with these and nothing else: every other AWS credential, profile and config
source is removed from its environment, so it cannot fall back to the caller's identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from discover.errors import DiscoverError
from discover.ports import Credentials

# Refresh when less than this is left: a deploy should not outlive its session.
DEFAULT_REFRESH_MARGIN = timedelta(minutes=15)


class CredentialsError(DiscoverError):
    """The sandbox role could not be assumed."""

    exit_code = 2


class StsClient(Protocol):
    def assume_role(self, **kwargs: Any) -> Mapping[str, Any]: ...


def assume_role(
    sts: StsClient, role_arn: str, session_name: str, duration_s: int = 3600
) -> Credentials:
    """``sts:AssumeRole`` on the sandbox role, as the admin identity."""
    import botocore.exceptions

    try:
        answer = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=duration_s
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        msg = f"cannot assume {role_arn}: {exc}"
        raise CredentialsError(
            msg,
            tip="The role's trust policy must allow sts:AssumeRole by the identity running "
            "discover, and --session-duration must not exceed the role's MaxSessionDuration.",
        ) from exc
    raw = answer["Credentials"]
    expiration = raw["Expiration"]
    if isinstance(expiration, str):
        expiration = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    return Credentials(
        access_key_id=raw["AccessKeyId"],
        secret_access_key=raw["SecretAccessKey"],
        session_token=raw["SessionToken"],
        expiration=expiration,
    )


class RoleSession:
    """The ``Sessions`` port: a session of the sandbox role, re-assumed before it runs out."""

    def __init__(
        self,
        sts: StsClient,
        role_arn: str,
        *,
        session_name: str = "discover",
        duration_s: int = 3600,
        refresh_margin: timedelta = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sts = sts
        self.role_arn = role_arn
        self._session_name = session_name
        self._duration_s = duration_s
        self._margin = min(refresh_margin, timedelta(seconds=duration_s // 2))
        self._clock = clock
        self._current: Credentials | None = None

    def current(self) -> Credentials:
        """A session with at least the refresh margin left."""
        if self._current is None or self._current.expiration - self._clock() < self._margin:
            self._current = assume_role(
                self._sts, self.role_arn, self._session_name, self._duration_s
            )
        return self._current

    def renew(self) -> Credentials:
        """Drop the current session (e.g. after ExpiredToken) and assume anew."""
        self._current = None
        return self.current()


# Variables that could hand the child another identity or another place to look for one.
_CREDENTIAL_VARIABLES = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)


def child_env(
    credentials: Credentials,
    region: str,
    *,
    endpoint_url: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The deploy's environment: the caller's, minus every AWS identity, plus this session."""
    source = os.environ if base is None else base
    env = {
        k: v
        for k, v in source.items()
        if not k.startswith("AWS_") and k not in _CREDENTIAL_VARIABLES
    }
    env.update(
        {
            "AWS_ACCESS_KEY_ID": credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
            "AWS_SESSION_TOKEN": credentials.session_token,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            # No shared files: a `profile:` in serverless.yml must not pick another identity.
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    if endpoint_url is not None:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    return env
