"""What a deploy run used, read back from CloudTrail.

discover gives each run its own session name; CloudTrail writes an assumed role's session
name as the event's ``Username``, so ``LookupEvents`` filtered by it returns exactly the
run's calls, including those CloudFormation made with the caller's permissions
(``userIdentity.invokedBy: cloudformation.amazonaws.com``). Each event's ``eventSource`` and
``eventName`` (``lambda.amazonaws.com``, ``CreateFunction20150331``) become the IAM actions
that authorise the call, through botocore's models and the IAM data
(:func:`discover.operations.operation_actions`).

Delivery takes a while ("typically within 5 minutes", not in order). After the run,
discover makes one more call with the run's session (``sts:GetCallerIdentity``, which every
identity may call and CloudTrail records) and reads until that call's event has arrived: the
watermark. The wait is bounded; a read that times out says so, and its absences prove
nothing.

What CloudTrail's Event history never holds needs other evidence: data events (S3 object
calls and listings, Lambda ``Invoke``, DynamoDB item calls, queue messages) and permissions
that are not calls (``iam:PassRole``).
NOTE: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/logging-data-events-with-cloudtrail.html
NOTE: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html
NOTE: https://docs.aws.amazon.com/cli/latest/reference/cloudtrail/lookup-events.html
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions

from discover import iamdb, operations
from discover.iamdb import Action

# CloudTrail's error codes for a refused call (IAM, S3, EC2, SNS spell it differently).
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "Client.UnauthorizedOperation",
        "AuthorizationError",
        "AuthorizationErrorException",
    }
)
# Calls CloudTrail logs only as data events, by the IAM action they are checked against.
_DATA_PLANE = frozenset(
    {
        "lambda:InvokeFunction",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:PartiQLSelect",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sns:Publish",
        "kinesis:PutRecord",
        "kinesis:PutRecords",
        "kinesis:GetRecords",
        # Permissions that are not calls of their own.
        "iam:PassRole",
    }
)
_VERSION_SUFFIX = re.compile(r"(?<=[a-z])\d{8}(?:v\d+)?$")
_MARKER = "GetCallerIdentity"


def not_in_event_history(action: str) -> bool:
    """True when no CloudTrail Event history entry can show ``action`` was used."""
    if action in _DATA_PLANE:
        return True
    if action.startswith("s3:"):
        keys = [rt.key for rt in iamdb.resource_types(Action(action))]
        return bool(keys) and all(key.endswith("object") for key in keys)
    return False


def event_operation(event_name: str) -> str:
    """``CreateFunction20150331`` -> ``CreateFunction`` (Lambda's versioned names)."""
    return _VERSION_SUFFIX.sub("", event_name)


def event_actions(event_source: str, event_name: str) -> tuple[Action, ...]:
    """The IAM actions that authorise the call an event records (empty when unknown)."""
    service = event_source.removesuffix(".amazonaws.com")
    return operations.operation_actions(service, event_operation(event_name))


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One call of a run, as CloudTrail recorded it."""

    event_id: str
    time: datetime
    source: str
    name: str
    actions: tuple[Action, ...]
    resources: tuple[str, ...]  # ARNs the event names
    error_code: str | None = None
    invoked_by: str | None = None
    request_parameters: str = ""  # JSON text, for the report

    @property
    def denied(self) -> bool:
        return self.error_code in DENIED_CODES

    @property
    def authorized(self) -> bool:
        """The call passed IAM (it may still have failed for another reason)."""
        return not self.denied


def parse_event(entry: Mapping[str, Any]) -> TrailEvent | None:
    """A ``LookupEvents`` entry as a ``TrailEvent``; None for one that is not an API call."""
    try:
        detail = json.loads(str(entry.get("CloudTrailEvent") or "{}"))
    except ValueError:
        detail = {}
    if not isinstance(detail, Mapping):
        detail = {}
    source = str(entry.get("EventSource") or detail.get("eventSource") or "")
    name = str(entry.get("EventName") or detail.get("eventName") or "")
    if not source or not name:
        return None
    when = entry.get("EventTime")
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(float(when or 0), UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    arns = [str(r.get("ARN")) for r in detail.get("resources") or [] if isinstance(r, Mapping)]
    arns += [
        str(r.get("ResourceName"))
        for r in entry.get("Resources") or []
        if isinstance(r, Mapping) and str(r.get("ResourceName", "")).startswith("arn:")
    ]
    identity = detail.get("userIdentity") if isinstance(detail.get("userIdentity"), Mapping) else {}
    parameters = detail.get("requestParameters")
    return TrailEvent(
        event_id=str(entry.get("EventId") or detail.get("eventID") or ""),
        time=when,
        source=source,
        name=name,
        actions=event_actions(source, name),
        resources=tuple(dict.fromkeys(a for a in arns if a.startswith("arn:"))),
        error_code=str(detail["errorCode"]) if detail.get("errorCode") else None,
        invoked_by=str(identity.get("invokedBy")) if identity.get("invokedBy") else None,
        request_parameters=json.dumps(parameters, sort_keys=True) if parameters else "",
    )


@dataclass(frozen=True, slots=True)
class TrailRead:
    """The events of one session, and whether the watermark arrived before the bound."""

    session_name: str
    events: tuple[TrailEvent, ...]
    complete: bool
    waited_s: float

    def used(self) -> tuple[TrailEvent, ...]:
        return tuple(e for e in self.events if e.authorized and e.name != _MARKER)


class CloudTrailReader:
    """The ``Trail`` port on CloudTrail: ``LookupEvents`` by session name, as the admin."""

    def __init__(
        self,
        client: Any,
        *,
        timeout_s: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._monotonic = monotonic
        self._now = now

    def read(self, session_name: str, *, started: datetime, watermark: datetime) -> TrailRead:
        """The events of ``session_name`` from ``started`` on, once an event of the session
        at or after ``watermark`` (the marker call) has been delivered, or the bound ran out."""
        begin = self._monotonic()
        delay = 1.0
        # Clocks differ a little between here and AWS; the marker is looked for with slack.
        since = started - timedelta(minutes=1)
        mark_from = watermark - timedelta(seconds=1)
        while True:
            events = self._lookup(session_name, since)
            if any(e.name == _MARKER and e.time >= mark_from for e in events):
                return TrailRead(session_name, events, True, self._monotonic() - begin)
            waited = self._monotonic() - begin
            if waited >= self._timeout_s:
                return TrailRead(session_name, events, False, waited)
            self._sleep(min(delay, max(self._timeout_s - waited, 0.0)))
            delay = min(delay * 2, 30.0)

    def _lookup(self, session_name: str, since: datetime) -> tuple[TrailEvent, ...]:
        found: list[TrailEvent] = []
        kwargs: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": session_name}],
            "StartTime": since,
            "MaxResults": 50,
        }
        while True:
            answer = self._call(kwargs)
            for entry in answer.get("Events", []):
                event = parse_event(entry)
                if event is not None:
                    found.append(event)
            token = answer.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        return tuple(sorted(found, key=lambda e: (e.time, e.event_id)))

    def _call(self, kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
        # NOTE: LookupEvents is limited to 2 requests per second per account and region.
        for attempt in range(6):
            try:
                answer: Mapping[str, Any] = self._client.lookup_events(**kwargs)
                return answer
            except botocore.exceptions.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in {"ThrottlingException", "Throttling"} or attempt == 5:
                    raise
                self._sleep(0.5 * 2**attempt)
        return {}


def used_actions(events: Iterable[TrailEvent]) -> frozenset[Action]:
    """The actions of the calls that passed IAM."""
    return frozenset(a for e in events if e.authorized for a in e.actions)


class AwsTrail:
    """The ``Trail`` port on AWS (or the local sandbox): the marker call with the run's
    session, and ``LookupEvents`` as the admin."""

    def __init__(
        self,
        session: Any,
        *,
        region: str,
        endpoint_url: str | None = None,
        timeout_s: float = 900.0,
    ) -> None:
        self._region = region
        self._endpoint_url = endpoint_url
        kwargs: dict[str, Any] = {"region_name": region}
        if endpoint_url is not None:
            kwargs["endpoint_url"] = endpoint_url
        self._reader = CloudTrailReader(session.client("cloudtrail", **kwargs), timeout_s=timeout_s)

    def mark(self, credentials: Any) -> datetime:
        """``sts:GetCallerIdentity`` with the run's session: the watermark its events end at."""
        import boto3

        kwargs: dict[str, Any] = {"region_name": self._region}
        if self._endpoint_url is not None:
            kwargs["endpoint_url"] = self._endpoint_url
        when = datetime.now(UTC)
        boto3.client(
            "sts",
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            **kwargs,
        ).get_caller_identity()
        return when

    def read(self, session_name: str, *, started: datetime, watermark: datetime) -> TrailRead:
        return self._reader.read(session_name, started=started, watermark=watermark)
