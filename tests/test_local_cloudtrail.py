"""The sandbox's CloudTrail: what AWS records (and omits), in AWS's shapes, after a delay."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
import pytest

from discover.local import cloudtrail
from discover.local.process import LocalSandboxInfo
from tests.conftest import admin_session, role_session

pytestmark = pytest.mark.sandbox


def control(info: LocalSandboxInfo, name: str, body: dict[str, float]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the test's own loopback sandbox
        f"{info.endpoint}/_discover/{name}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - as above
        decoded: dict[str, Any] = json.loads(answer.read())
    return decoded


def lookup(info: LocalSandboxInfo, username: str) -> list[dict[str, Any]]:
    client = admin_session(info).client("cloudtrail", endpoint_url=info.endpoint)
    events: list[dict[str, Any]] = []
    for page in client.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": username}]
    ):
        events += page["Events"]
    return events


@pytest.fixture
def delayed(sandbox: LocalSandboxInfo) -> LocalSandboxInfo:
    """A sandbox whose CloudTrail delivers 600 s late: events show only once the clock moves."""
    control(sandbox, "cloudtrail", {"delay": 600})
    return sandbox


def deliver(info: LocalSandboxInfo) -> None:
    control(info, "clock", {"advance": 601})


def test_a_denied_call_is_recorded_under_the_session_after_the_delay(
    delayed: LocalSandboxInfo,
) -> None:
    """Denied: errorCode AccessDenied, the session's ARN, Username = the session name."""
    session = role_session(delayed, "run-0001")
    with pytest.raises(botocore.exceptions.ClientError):
        session.client("sqs", endpoint_url=delayed.endpoint).create_queue(QueueName="q1")
    assert lookup(delayed, "run-0001") == [], "delivered before the delay ran out"
    deliver(delayed)
    (event,) = [e for e in lookup(delayed, "run-0001") if e["EventName"] == "CreateQueue"]
    detail = json.loads(event["CloudTrailEvent"])
    assert event["EventSource"] == "sqs.amazonaws.com"
    assert event["Username"] == "run-0001"
    assert detail["errorCode"] == "AccessDenied"
    assert "sqs:CreateQueue" in detail["errorMessage"]
    assert detail["userIdentity"]["type"] == "AssumedRole"
    assert detail["userIdentity"]["arn"].endswith(":assumed-role/discover-sandbox/run-0001")
    assert detail["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == delayed.role_arn
    assert detail["eventID"] == event["EventId"]
    assert isinstance(event["EventTime"], datetime)


def test_object_level_calls_are_not_in_the_event_history(delayed: LocalSandboxInfo) -> None:
    """CreateBucket and HeadBucket are management events; PutObject and listings are data."""
    s3 = admin_session(delayed).client("s3", endpoint_url=delayed.endpoint)
    s3.create_bucket(Bucket="trail-test")
    s3.head_bucket(Bucket="trail-test")
    s3.put_object(Bucket="trail-test", Key="a.txt", Body=b"a")
    s3.list_objects_v2(Bucket="trail-test")
    s3.get_object(Bucket="trail-test", Key="a.txt")
    deliver(delayed)
    names = {e["EventName"] for e in lookup(delayed, "discover-admin")}
    assert {"CreateBucket", "HeadBucket"} <= names
    assert not names & {"PutObject", "GetObject", "ListObjects", "ListObjectsV2"}


def test_calls_cloudformation_makes_as_the_caller_say_invoked_by(
    delayed: LocalSandboxInfo,
) -> None:
    """A resource handler's call: the caller's identity, invokedBy cloudformation."""
    iam = admin_session(delayed).client("iam", endpoint_url=delayed.endpoint)
    role_name = delayed.role_arn.rsplit("/", 1)[-1]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "cloudformation:*", "Resource": "*"}],
    }
    iam.put_role_policy(
        RoleName=role_name, PolicyName="discover", PolicyDocument=json.dumps(policy)
    )
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stack-q"}}}
    }
    session = role_session(delayed, "run-0002")
    cfn = session.client("cloudformation", endpoint_url=delayed.endpoint)
    cfn.create_stack(StackName="trail", TemplateBody=json.dumps(template))
    deliver(delayed)
    events = lookup(delayed, "run-0002")
    by_name = {e["EventName"]: json.loads(e["CloudTrailEvent"]) for e in events}
    assert "invokedBy" not in by_name["CreateStack"]["userIdentity"]
    handler = by_name["CreateQueue"]
    assert handler["userIdentity"]["invokedBy"] == "cloudformation.amazonaws.com"
    assert handler["sourceIPAddress"] == "cloudformation.amazonaws.com"
    assert handler["errorCode"] == "AccessDenied"


def test_lookup_filters_by_time_and_pages(sandbox: LocalSandboxInfo) -> None:
    """StartTime/EndTime bound the answer; pages of at most MaxResults with NextToken."""
    control(sandbox, "cloudtrail", {"delay": 0})
    sqs = admin_session(sandbox).client("sqs", endpoint_url=sandbox.endpoint)
    for number in range(3):
        sqs.create_queue(QueueName=f"page-{number}")
    client = admin_session(sandbox).client("cloudtrail", endpoint_url=sandbox.endpoint)
    attributes = [{"AttributeKey": "EventName", "AttributeValue": "CreateQueue"}]
    first = client.lookup_events(LookupAttributes=attributes, MaxResults=2)
    assert len(first["Events"]) == 2
    second = client.lookup_events(
        LookupAttributes=attributes, MaxResults=2, NextToken=first["NextToken"]
    )
    assert len(second["Events"]) == 1
    assert "NextToken" not in second
    future = datetime.now(UTC) + timedelta(hours=1)
    assert client.lookup_events(LookupAttributes=attributes, StartTime=future)["Events"] == []


def test_one_lookup_attribute_only(sandbox: LocalSandboxInfo) -> None:
    """As CloudTrail: two lookup attributes are refused."""
    client = admin_session(sandbox).client("cloudtrail", endpoint_url=sandbox.endpoint)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "Username", "AttributeValue": "a"},
                {"AttributeKey": "EventName", "AttributeValue": "b"},
            ]
        )
    assert caught.value.response["Error"]["Code"] == "InvalidLookupAttributesException"


@pytest.mark.parametrize(
    ("name", "service", "operation", "expected"),
    [
        ("lambda create has its API date", "lambda", "CreateFunction", "CreateFunction20150331"),
        ("lambda revised operation", "lambda", "AddPermission", "AddPermission20150331v2"),
        ("lambda tagging API date", "lambda", "TagResource", "TagResource20170331"),
        ("other services as the SDK", "iam", "CreateRole", "CreateRole"),
    ],
)
def test_event_names(name: str, service: str, operation: str, expected: str) -> None:
    assert cloudtrail.event_name(service, operation) == expected, name


@pytest.mark.parametrize(
    ("name", "action", "resource", "expected"),
    [
        ("same name", "iam:CreateRole", "arn:aws:iam::1:role/r", "CreateRole"),
        (
            "renamed s3 action",
            "s3:PutEncryptionConfiguration",
            "arn:aws:s3:::b",
            "PutBucketEncryption",
        ),
        ("pass role is no call", "iam:PassRole", "arn:aws:iam::1:role/r", None),
        (
            "api gateway by method and path",
            "apigateway:POST",
            "arn:aws:apigateway:us-east-1::/restapis",
            "CreateRestApi",
        ),
        (
            "api gateway collection IAM names",
            "apigateway:POST",
            "arn:aws:apigateway:us-east-1::/restapis/abc/resources",
            "CreateResource",
        ),
        (
            "api gateway method",
            "apigateway:PUT",
            "arn:aws:apigateway:us-east-1::/restapis/a/resources/b/methods/GET",
            "PutMethod",
        ),
    ],
)
def test_handler_calls_as_operations(
    name: str, action: str, resource: str, expected: str | None
) -> None:
    assert cloudtrail.operation_of(action, resource) == expected, name
