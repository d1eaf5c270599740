"""Sandbox role sessions: assume, refresh before expiry, and the deploy's clean environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
import pytest

from discover.credentials import (
    DEFAULT_REFRESH_MARGIN,
    Credentials,
    CredentialsError,
    RoleSession,
    assume_role,
    child_env,
)

ROLE = "arn:aws:iam::111122223333:role/sandbox"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SESSION = Credentials("ASIASESSION", "session-secret", "session-token", T0 + timedelta(hours=1))


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FakeSts:
    """Answers AssumeRole like STS: a new key per call, expiring ``duration`` from the clock."""

    def __init__(self, clock: FakeClock, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self._clock = clock
        self._error = error

    def assume_role(self, **kwargs: Any) -> Mapping[str, Any]:
        self.calls.append(kwargs)
        if self._error is not None:
            raise self._error
        n = len(self.calls)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIA{n}",
                "SecretAccessKey": f"secret-{n}",
                "SessionToken": f"token-{n}",
                "Expiration": self._clock() + timedelta(seconds=kwargs["DurationSeconds"]),
            }
        }


class FixedSts:
    """Answers AssumeRole with one given ``Expiration`` value."""

    def __init__(self, expiration: object) -> None:
        self.expiration = expiration

    def assume_role(self, **kwargs: Any) -> Mapping[str, Any]:
        return {
            "Credentials": {
                "AccessKeyId": "ASIAX",
                "SecretAccessKey": "s",
                "SessionToken": "t",
                "Expiration": self.expiration,
            }
        }


# --- child_env ------------------------------------------------------------------------------

CALLER_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/dev",
    "LANG": "C.UTF-8",
    "AWS_PROFILE": "admin",
    "AWS_DEFAULT_PROFILE": "admin",
    "AWS_ACCESS_KEY_ID": "AKIACALLER",
    "AWS_SECRET_ACCESS_KEY": "caller-secret",
    "AWS_SESSION_TOKEN": "caller-token",
    "AWS_SECURITY_TOKEN": "caller-legacy-token",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/token",
    "AWS_ROLE_ARN": "arn:aws:iam::999999999999:role/ci",
    "AWS_ROLE_SESSION_NAME": "ci",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/creds",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-token",
    "AWS_SHARED_CREDENTIALS_FILE": "/home/dev/.aws/credentials",
    "AWS_CONFIG_FILE": "/home/dev/.aws/config",
    "AWS_ENDPOINT_URL": "http://caller-endpoint",
    "AWS_REGION": "eu-west-1",
    "AWS_SDK_LOAD_CONFIG": "1",
}


@pytest.mark.parametrize(
    "variable",
    [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SECURITY_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_SDK_LOAD_CONFIG",
    ],
)
def test_child_env_removes_the_callers_identity_sources(variable: str) -> None:
    """No variable that could hand the deploy another identity reaches it."""
    env = child_env(SESSION, "us-east-1", base=CALLER_ENV)
    assert variable not in env


@pytest.mark.parametrize(
    ("name", "variable", "expected"),
    [
        ("the session's key, not the caller's", "AWS_ACCESS_KEY_ID", "ASIASESSION"),
        ("the session's secret", "AWS_SECRET_ACCESS_KEY", "session-secret"),
        ("the session's token", "AWS_SESSION_TOKEN", "session-token"),
        ("the run's region, not the caller's", "AWS_REGION", "us-east-1"),
        ("the legacy region variable too", "AWS_DEFAULT_REGION", "us-east-1"),
        ("no shared credentials file", "AWS_SHARED_CREDENTIALS_FILE", os.devnull),
        ("no shared config file", "AWS_CONFIG_FILE", os.devnull),
        ("no instance metadata", "AWS_EC2_METADATA_DISABLED", "true"),
        ("PATH kept", "PATH", "/usr/bin:/bin"),
        ("HOME kept", "HOME", "/home/dev"),
        ("LANG kept", "LANG", "C.UTF-8"),
    ],
)
def test_child_env_sets_only_the_session(name: str, variable: str, expected: str) -> None:
    """The deploy sees this session's three values, the run's region, and nothing to fall back
    on; the rest of the caller's environment is kept."""
    env = child_env(SESSION, "us-east-1", base=CALLER_ENV)
    assert env[variable] == expected, name


def test_child_env_sets_the_endpoint_only_when_given() -> None:
    """The caller's endpoint never leaks; the local sandbox's endpoint is set when given."""
    assert "AWS_ENDPOINT_URL" not in child_env(SESSION, "us-east-1", base=CALLER_ENV)
    env = child_env(SESSION, "us-east-1", endpoint_url="http://127.0.0.1:5000", base=CALLER_ENV)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"


def test_child_env_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without ``base``, the caller's real environment is the source, filtered the same way."""
    monkeypatch.setenv("AWS_PROFILE", "admin")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACALLER")
    monkeypatch.setenv("DISCOVER_TEST_MARKER", "kept")
    env = child_env(SESSION, "eu-central-1")
    assert "AWS_PROFILE" not in env
    assert env["AWS_ACCESS_KEY_ID"] == "ASIASESSION"
    assert env["DISCOVER_TEST_MARKER"] == "kept"
    assert {k for k in env if k.startswith("AWS_")} == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_EC2_METADATA_DISABLED",
    }


def test_credentials_repr_hides_the_secrets() -> None:
    """A logged or traced ``Credentials`` shows the key id and expiry, never secret or token."""
    text = repr(SESSION)
    assert "ASIASESSION" in text
    assert "session-secret" not in text
    assert "session-token" not in text


# --- assume_role ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expiration"),
    [
        ("aware datetime", datetime(2024, 5, 1, 13, 0, tzinfo=UTC)),
        ("naive datetime taken as UTC", datetime(2024, 5, 1, 13, 0)),
        ("ISO string with Z", "2024-05-01T13:00:00Z"),
        ("ISO string with offset", "2024-05-01T13:00:00+00:00"),
        ("ISO string in another zone", "2024-05-01T15:00:00+02:00"),
    ],
)
def test_assume_role_reads_the_expiration(name: str, expiration: object) -> None:
    """Whatever form STS's ``Expiration`` takes, the session expires at the same UTC instant."""
    credentials = assume_role(FixedSts(expiration), ROLE, "discover")
    assert credentials.expiration == datetime(2024, 5, 1, 13, 0, tzinfo=UTC), name
    assert credentials.expiration.tzinfo is not None


def test_assume_role_passes_role_session_name_and_duration() -> None:
    """AssumeRole is called with the role, the session name and the requested duration."""
    sts = FakeSts(FakeClock())
    credentials = assume_role(sts, ROLE, "discover-x", duration_s=1800)
    assert sts.calls == [
        {"RoleArn": ROLE, "RoleSessionName": "discover-x", "DurationSeconds": 1800}
    ]
    assert credentials.access_key_id == "ASIA1"
    assert credentials.expiration == T0 + timedelta(seconds=1800)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("trust policy does not allow the caller", "AccessDenied"),
        ("duration above the role's maximum", "ValidationError"),
        ("caller's own token expired", "ExpiredToken"),
    ],
)
def test_assume_role_turns_a_client_error_into_a_credentials_error(name: str, code: str) -> None:
    """An STS refusal is a ``CredentialsError`` (exit 2) naming the role, with a Tip."""
    error = botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "refused"}}, "AssumeRole"
    )
    with pytest.raises(CredentialsError) as caught:
        assume_role(FakeSts(FakeClock(), error), ROLE, "discover")
    assert caught.value.exit_code == 2, name
    assert ROLE in caught.value.msg
    assert caught.value.tip is not None
    assert "trust policy" in caught.value.tip
    assert "\nTip: " in str(caught.value)
    assert caught.value.__cause__ is error


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (
            "no connection to STS",
            botocore.exceptions.EndpointConnectionError(endpoint_url="https://sts.amazonaws.com"),
        ),
        ("no admin credentials", botocore.exceptions.NoCredentialsError()),
    ],
)
def test_assume_role_turns_a_botocore_error_into_a_credentials_error(
    name: str, error: Exception
) -> None:
    """Failing to reach STS at all is reported like a refusal: a ``CredentialsError``."""
    with pytest.raises(CredentialsError):
        assume_role(FakeSts(FakeClock(), error), ROLE, "discover")


# --- RoleSession ----------------------------------------------------------------------------


def test_session_is_reused_while_it_has_more_than_the_margin_left() -> None:
    """``current()`` assumes once, then hands out the same session until the margin."""
    clock = FakeClock()
    sts = FakeSts(clock)
    sessions = RoleSession(sts, ROLE, session_name="discover-t", duration_s=3600, clock=clock)
    first = sessions.current()
    clock.advance(timedelta(hours=1) - DEFAULT_REFRESH_MARGIN - timedelta(seconds=1))
    assert sessions.current() is first
    assert len(sts.calls) == 1
    assert sts.calls[0]["RoleSessionName"] == "discover-t"


@pytest.mark.parametrize(
    ("name", "duration_s", "elapsed", "assumes"),
    [
        ("fresh", 3600, timedelta(0), 1),
        ("one second before the margin", 3600, timedelta(minutes=45, seconds=-1), 1),
        ("one second into the margin", 3600, timedelta(minutes=45, seconds=1), 2),
        ("expired", 3600, timedelta(hours=2), 2),
        # A 15-minute session would always be inside a 15-minute margin: half its life is used.
        ("short session, before half-life", 900, timedelta(seconds=449), 1),
        ("short session, past half-life", 900, timedelta(seconds=451), 2),
    ],
)
def test_session_refreshes_within_the_margin(
    name: str, duration_s: int, elapsed: timedelta, assumes: int
) -> None:
    """A session with less than the refresh margin left is replaced by a new one."""
    clock = FakeClock()
    sts = FakeSts(clock)
    sessions = RoleSession(sts, ROLE, duration_s=duration_s, clock=clock)
    first = sessions.current()
    clock.advance(elapsed)
    second = sessions.current()
    assert len(sts.calls) == assumes, name
    assert (second is first) == (assumes == 1)
    assert second.expiration - clock() > timedelta(0)


def test_renew_assumes_anew_even_when_the_session_looks_valid() -> None:
    """``renew()`` (after ExpiredToken) drops the session and assumes again at once."""
    clock = FakeClock()
    sts = FakeSts(clock)
    sessions = RoleSession(sts, ROLE, clock=clock)
    first = sessions.current()
    renewed = sessions.renew()
    assert renewed.access_key_id != first.access_key_id
    assert sessions.current() is renewed
    assert len(sts.calls) == 2
