"""Reading what a run used from CloudTrail: event names to actions, the watermark wait."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
import pytest

from discover.credentials import assume_role
from discover.local.process import LocalSandboxInfo
from discover.trail import (
    AwsTrail,
    CloudTrailReader,
    event_actions,
    event_operation,
    not_in_event_history,
    parse_event,
)
from tests.conftest import admin_session

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "source", "event", "expected"),
    [
        (
            "lambda's versioned name",
            "lambda.amazonaws.com",
            "CreateFunction20150331",
            ("lambda:CreateFunction",),
        ),
        (
            "lambda's revised name",
            "lambda.amazonaws.com",
            "AddPermission20150331v2",
            ("lambda:AddPermission",),
        ),
        ("s3 head bucket", "s3.amazonaws.com", "HeadBucket", ("s3:ListBucket",)),
        (
            "s3 renamed",
            "s3.amazonaws.com",
            "PutBucketEncryption",
            ("s3:PutEncryptionConfiguration",),
        ),
        (
            "api gateway by method",
            "apigateway.amazonaws.com",
            "CreateRestApi",
            ("apigateway:POST",),
        ),
        (
            "cloudwatch signs as monitoring",
            "monitoring.amazonaws.com",
            "PutMetricAlarm",
            ("cloudwatch:PutMetricAlarm",),
        ),
        ("unknown", "example.amazonaws.com", "DoThing", ()),
    ],
)
def test_event_actions(name: str, source: str, event: str, expected: tuple[str, ...]) -> None:
    assert event_actions(source, event) == expected, name


@pytest.mark.parametrize(
    ("event", "operation"),
    [
        ("CreateFunction20150331", "CreateFunction"),
        ("UpdateFunctionCode20150331v2", "UpdateFunctionCode"),
        ("ListObjectsV2", "ListObjectsV2"),
        ("CreateRole", "CreateRole"),
    ],
)
def test_event_operation(event: str, operation: str) -> None:
    assert event_operation(event) == operation


@pytest.mark.parametrize(
    ("action", "hidden"),
    [
        ("s3:PutObject", True),
        ("s3:GetObject", True),
        ("iam:PassRole", True),
        ("lambda:InvokeFunction", True),
        ("s3:CreateBucket", False),
        ("s3:ListBucket", False),  # HeadBucket is a management event
        ("lambda:CreateFunction", False),
    ],
)
def test_not_in_event_history(action: str, hidden: bool) -> None:
    assert not_in_event_history(action) is hidden


def entry(name: str, when: datetime, **detail: Any) -> dict[str, Any]:
    return {
        "EventId": f"id-{name}-{when.timestamp()}",
        "EventName": name,
        "EventTime": when,
        "EventSource": detail.pop("source", "iam.amazonaws.com"),
        "Username": "s",
        "Resources": [],
        "CloudTrailEvent": json.dumps(detail),
    }


def test_parse_event_reads_the_json_detail() -> None:
    event = parse_event(
        entry(
            "CreateRole",
            T0,
            errorCode="AccessDenied",
            userIdentity={"invokedBy": "cloudformation.amazonaws.com"},
            resources=[{"ARN": "arn:aws:iam::1:role/r"}],
        )
    )
    assert event is not None
    assert event.denied
    assert not event.authorized
    assert event.invoked_by == "cloudformation.amazonaws.com"
    assert event.resources == ("arn:aws:iam::1:role/r",)
    assert event.actions == ("iam:CreateRole",)


class FakeCloudTrail:
    """Delivers the run's events at once and the marker only after ``marker_after`` lookups."""

    def __init__(self, marker_after: int, *, throttle_first: bool = False) -> None:
        self.calls = 0
        self.marker_after = marker_after
        self.throttle_first = throttle_first

    def lookup_events(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.throttle_first and self.calls == 1:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "LookupEvents",
            )
        events = [entry("CreateRole", T0 + timedelta(seconds=1))]
        if self.calls > self.marker_after:
            events.append(
                entry("GetCallerIdentity", T0 + timedelta(seconds=10), source="sts.amazonaws.com")
            )
        if "NextToken" not in kwargs and len(events) > 1:
            return {"Events": events[:1], "NextToken": "1"}
        return {"Events": events[1:] if "NextToken" in kwargs else events}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def monotonic(self) -> float:
        return self.t


def test_the_reader_waits_for_the_watermark() -> None:
    clock = Clock()
    client = FakeCloudTrail(marker_after=3)
    reader = CloudTrailReader(client, sleep=clock.sleep, monotonic=clock.monotonic)
    read = reader.read("s", started=T0, watermark=T0 + timedelta(seconds=10))
    assert read.complete
    assert [e.name for e in read.used()] == ["CreateRole"]  # the marker itself is not a use
    assert clock.sleeps == [1.0, 2.0, 4.0], "backs off while the marker is not delivered"


def test_the_reader_is_bounded() -> None:
    clock = Clock()
    reader = CloudTrailReader(
        FakeCloudTrail(marker_after=10**6),
        timeout_s=20,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    read = reader.read("s", started=T0, watermark=T0 + timedelta(seconds=10))
    assert not read.complete
    assert clock.t == pytest.approx(20)


def test_throttling_is_retried() -> None:
    clock = Clock()
    reader = CloudTrailReader(
        FakeCloudTrail(marker_after=0, throttle_first=True),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert reader.read("s", started=T0, watermark=T0).complete


@pytest.mark.sandbox
def test_aws_trail_waits_out_the_sandbox_delivery_delay(sandbox: LocalSandboxInfo) -> None:
    """Against the sandbox's LookupEvents with a 2 s delay: the read ends once the marker
    arrives, and holds the run's calls, a denied one marked so."""
    control = urllib.request.Request(  # noqa: S310 - the test's own loopback sandbox
        f"{sandbox.endpoint}/_discover/cloudtrail",
        data=json.dumps({"delay": 2}).encode(),
        method="POST",
    )
    urllib.request.urlopen(control, timeout=10).close()  # noqa: S310 - as above
    admin = admin_session(sandbox)
    sts = admin.client("sts", endpoint_url=sandbox.endpoint)
    started = datetime.now(UTC)
    credentials = assume_role(sts, sandbox.role_arn, "bench-r01")
    import boto3

    role = boto3.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name=sandbox.region,
    )
    with pytest.raises(botocore.exceptions.ClientError):
        role.client("sqs", endpoint_url=sandbox.endpoint).create_queue(QueueName="q")
    trail = AwsTrail(admin, region=sandbox.region, endpoint_url=sandbox.endpoint, timeout_s=60)
    watermark = trail.mark(credentials)
    read = trail.read("bench-r01", started=started, watermark=watermark)
    assert read.complete
    names = {e.name: e for e in read.events}
    assert names["CreateQueue"].denied
    assert "GetCallerIdentity" in names
