"""Behaviour 6: STS sessions last DurationSeconds (900 to the role's maximum), then expire.

Tests move the sandbox clock instead of waiting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from discover.denials import parse_denials
from discover.local.process import LocalSandbox, LocalSandboxInfo
from tests.conftest import admin_session

pytestmark = pytest.mark.sandbox

ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


@pytest.fixture
def local() -> Iterator[LocalSandbox]:
    """A sandbox of its own: these tests move its clock, which only goes forward."""
    sandbox = LocalSandbox()
    sandbox.start()
    assert sandbox.info is not None
    admin_session(sandbox.info).client("iam", endpoint_url=sandbox.info.endpoint).put_role_policy(
        RoleName="discover-sandbox", PolicyName="all", PolicyDocument=ALLOW_ALL
    )
    try:
        yield sandbox
    finally:
        sandbox.stop()


def assume(info: LocalSandboxInfo, **kwargs: int) -> tuple[boto3.Session, datetime]:
    sts = admin_session(info).client("sts", endpoint_url=info.endpoint)
    answer = sts.assume_role(RoleArn=info.role_arn, RoleSessionName="expiry", **kwargs)
    creds = answer["Credentials"]
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=info.region,
    )
    return session, creds["Expiration"]


def test_session_expires_after_its_default_hour(local: LocalSandbox) -> None:
    """A session works until its hour is up; then every call is ExpiredToken, in each
    protocol's shape, and no permission denial is read from it."""
    info = local.info
    assert info is not None
    session, expiration = assume(info)
    start = local.clock()
    assert abs(expiration.timestamp() - (start + 3600)) < 5
    cfn = session.client("cloudformation", endpoint_url=info.endpoint)
    cfn.list_stacks()
    local.advance_clock(3590)
    cfn.list_stacks()
    local.advance_clock(15)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        cfn.list_stacks()
    error = caught.value.response["Error"]
    assert error["Code"] == "ExpiredToken"
    assert error["Message"] == "The security token included in the request is expired"
    assert parse_denials(str(caught.value)) == ()
    logs = session.client("logs", endpoint_url=info.endpoint)
    with pytest.raises(botocore.exceptions.ClientError) as caught_json:
        logs.describe_log_groups()
    assert caught_json.value.response["Error"]["Code"] == "ExpiredTokenException"
    s3 = session.client("s3", endpoint_url=info.endpoint)
    with pytest.raises(botocore.exceptions.ClientError) as caught_s3:
        s3.list_buckets()
    assert caught_s3.value.response["Error"]["Code"] == "ExpiredToken"
    fresh, _ = assume(info)
    fresh.client("cloudformation", endpoint_url=info.endpoint).list_stacks()


def test_duration_is_honoured_and_bounded(local: LocalSandbox) -> None:
    """900 s is the least; more than the role's MaxSessionDuration is refused as STS does; a
    role that allows 2 hours gives 2 hours; expiry follows the sandbox clock."""
    info = local.info
    assert info is not None
    session, expiration = assume(info, DurationSeconds=900)
    assert abs(expiration.timestamp() - (local.clock() + 900)) < 5
    # The SDK checks the minimum itself; switched off to see what STS answers.
    sts = admin_session(info).client(
        "sts", endpoint_url=info.endpoint, config=Config(parameter_validation=False)
    )
    with pytest.raises(botocore.exceptions.ClientError) as too_short:
        sts.assume_role(RoleArn=info.role_arn, RoleSessionName="short", DurationSeconds=899)
    assert too_short.value.response["Error"]["Code"] == "ValidationError"
    assert "greater than or equal to 900" in too_short.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as too_long:
        sts.assume_role(RoleArn=info.role_arn, RoleSessionName="long", DurationSeconds=3601)
    assert too_long.value.response["Error"]["Message"] == (
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    )
    iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
    iam.update_role(RoleName="discover-sandbox", MaxSessionDuration=7200)
    _, longer = assume(info, DurationSeconds=7200)
    assert abs(longer.timestamp() - (local.clock() + 7200)) < 5
    local.advance_clock(901)
    with pytest.raises(botocore.exceptions.ClientError) as expired:
        session.client("sqs", endpoint_url=info.endpoint).list_queues()
    assert "expired" in expired.value.response["Error"]["Message"]


def test_clock_endpoint(local: LocalSandbox) -> None:
    """The control endpoint tells the sandbox's time and moves it forward, never back."""
    before = local.clock()
    after = local.advance_clock(600)
    assert after - before >= 600
    with pytest.raises(Exception, match="400"):
        local.advance_clock(-1)
