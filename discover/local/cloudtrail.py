"""The sandbox's CloudTrail: management events recorded as AWS records them, read with
``LookupEvents`` after a delivery delay.

What is recorded, as on AWS:

- every API call a principal makes to the sandbox, allowed or denied (a denied call has
  ``errorCode: AccessDenied`` and AWS's message), under the caller's identity: an assumed
  role's session ARN in ``userIdentity.arn``, the session name as ``Username``;
- the calls CloudFormation makes with the caller's permissions (forward access sessions),
  under the caller's identity with ``invokedBy``, ``sourceIPAddress`` and ``userAgent``
  ``cloudformation.amazonaws.com``;
- ``eventSource`` is the service's endpoint host (``lambda.amazonaws.com``) and ``eventName``
  the operation as CloudTrail spells it: Lambda's names carry the API version
  (``CreateFunction20150331``, ``UpdateFunctionCode20150331v2``).

What is not, as on AWS: data events (S3 object-level calls and object listings, Lambda
``Invoke``, DynamoDB item calls), which the Event history never holds, and permissions that
are not calls (``iam:PassRole``; S3 reading a function's code on Lambda's behalf).

NOTE: "The CloudTrail Event history doesn't record data events."
https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-s3-info.html
NOTE: events reach the Event history "typically within 5 minutes" and not in order; here a
configurable delay (``POST /_discover/cloudtrail {"delay": s}``, default 2 s) on the sandbox
clock, so the product must wait for them rather than read at once.
https://docs.aws.amazon.com/awscloudtrail/latest/userguide/how-cloudtrail-works.html
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from discover.local.clock import CLOCK

DEFAULT_DELIVERY_DELAY_S = 2.0
CLOUDFORMATION = "cloudformation.amazonaws.com"
_MAX_RESULTS = 50
_LOOKUP_KEYS = frozenset(
    {
        "EventId",
        "EventName",
        "ReadOnly",
        "Username",
        "ResourceType",
        "ResourceName",
        "EventSource",
        "AccessKeyId",
    }
)

# NOTE: Lambda's CloudTrail event names carry the API version of the operation, with a "v2"
# (or "v3") where the operation was revised: "The eventName might include date and version
# information, such as GetFunction20150331, but it is still referring to the same public
# API." https://docs.aws.amazon.com/lambda/latest/dg/logging-using-cloudtrail.html
# The date comes from the operation's URI in botocore's model; the revisions are these.
_LAMBDA_REVISIONS: dict[str, str] = {
    "AddPermission": "v2",
    "GetFunction": "v2",
    "GetFunctionConfiguration": "v2",
    "GetPolicy": "v2",
    "RemovePermission": "v2",
    "UpdateFunctionCode": "v2",
    "UpdateFunctionConfiguration": "v2",
}

# Data events by IAM action (besides S3 object-level actions, found from the IAM data).
_DATA_ACTIONS = frozenset(
    {
        "s3:ListBucket",  # ListObjects(V2): object listings are data events
        "s3:ListBucketVersions",
        "s3:ListBucketMultipartUploads",
        "lambda:InvokeFunction",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sns:Publish",
    }
)
# HeadBucket is S3's bucket-level existence check: a management event (s3:ListBucket in IAM).
_MANAGEMENT_OPERATIONS = frozenset({("s3", "HeadBucket")})
_READ_ONLY = re.compile(r"^(Get|Describe|List|Head|Lookup|Validate|Decode)")


@dataclass(frozen=True, slots=True)
class _Event:
    time: float
    lookup: dict[str, Any]  # the LookupEvents answer entry, EventTime as epoch seconds


class TrailStore:
    """The account's Event history: recorded events, visible once delivered."""

    def __init__(self) -> None:
        self._events: list[_Event] = []
        self._lock = threading.Lock()
        self.delay = DEFAULT_DELIVERY_DELAY_S

    def configure(self, delay: float) -> None:
        if delay < 0:
            msg = f"a delivery delay is not negative: {delay}"
            raise ValueError(msg)
        self.delay = delay

    def add(self, event: _Event) -> None:
        with self._lock:
            self._events.append(event)

    def delivered(self) -> list[_Event]:
        cutoff = CLOCK.now() - self.delay
        with self._lock:
            return [e for e in self._events if e.time <= cutoff]


TRAIL = TrailStore()
"""The one Event history of the sandbox server process."""


def control(method: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """``/_discover/cloudtrail``: read or set the delivery delay."""
    if method == "POST":
        TRAIL.configure(float(body.get("delay", DEFAULT_DELIVERY_DELAY_S)))
    return {"delay": TRAIL.delay}


# --- names ------------------------------------------------------------------------------------


@cache
def _model(service: str) -> Any:
    import botocore.exceptions
    import botocore.session

    try:
        return botocore.session.get_session().get_service_model(service)
    except botocore.exceptions.UnknownServiceError:
        return None


# IAM prefixes whose botocore model has another name.
_MODEL_NAMES = {"states": "stepfunctions", "monitoring": "cloudwatch", "email": "ses"}


def event_source(service: str) -> str:
    """The service's endpoint host as CloudTrail writes it: ``lambda.amazonaws.com``."""
    model = _model(_MODEL_NAMES.get(service, service))
    prefix = str(model.endpoint_prefix) if model is not None else service
    return f"{prefix}.amazonaws.com"


def event_name(service: str, operation: str) -> str:
    """The operation as CloudTrail spells it (Lambda's with their API version)."""
    if service != "lambda":
        return operation
    model = _model("lambda")
    if model is None or operation not in model.operation_names:
        return operation
    uri = str(model.operation_model(operation).http.get("requestUri", ""))
    date = re.match(r"^/(\d{4})-(\d{2})-(\d{2})/", uri)
    if date is None:
        return operation
    return operation + "".join(date.groups()) + _LAMBDA_REVISIONS.get(operation, "")


def _label_regex(uri: str) -> re.Pattern[str]:
    path = uri.split("?", 1)[0].rstrip("/")
    parts = re.split(r"(\{[^}]+\})", path)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


@cache
def _operations_by_action(service: str) -> dict[str, list[str]]:
    from discover import operations

    model = _model(_MODEL_NAMES.get(service, service))
    found: dict[str, list[str]] = {}
    if model is None:
        return found
    for operation in model.operation_names:
        for action in operations.operation_actions(service, operation)[:1]:
            found.setdefault(action.lower(), []).append(str(operation))
    return found


def operation_of(action: str, resource: str) -> str | None:
    """The API operation behind an IAM action a handler is checked for; None when the
    permission is not a call of its own (``iam:PassRole``)."""
    service, _, name = action.partition(":")
    if service == "apigateway":
        return _apigateway_operation(name, resource)
    candidates = _operations_by_action(service).get(action.lower(), [])
    for operation in candidates:
        if operation.lower() == name.lower():
            return operation
    # Several operations checked as one action (Put/DeleteBucketEncryption): the same verb.
    verb = re.match(r"[A-Z][a-z]+", name)
    for operation in candidates:
        if verb is not None and operation.startswith(verb.group(0)):
            return operation
    return candidates[0] if candidates else None


def _apigateway_operation(method: str, resource: str) -> str | None:
    # API Gateway is authorised per HTTP method on the path; the operation is the one whose
    # URI fits the path (or, for a collection IAM names, the path with its last label).
    model = _model("apigateway")
    if model is None or "::" not in resource:
        return None
    path = resource.split("::", 1)[1].rstrip("/")
    shorter: str | None = None
    for operation in model.operation_names:
        http = model.operation_model(operation).http
        if str(http.get("method", "")).upper() != method.upper():
            continue
        uri = str(http.get("requestUri", ""))
        if _label_regex(uri).match(path):
            return str(operation)
        trimmed = re.sub(r"/\{[^}]+\}$", "", uri.split("?", 1)[0])
        if shorter is None and trimmed != uri and _label_regex(trimmed).match(path):
            shorter = str(operation)
    return shorter


def is_data_event(action: str) -> bool:
    """True for calls CloudTrail logs only as data events (never in the Event history)."""
    from discover import iamdb
    from discover.iamdb import Action

    if action in _DATA_ACTIONS:
        return True
    if action.startswith("s3:"):
        keys = {rt.key for rt in iamdb.resource_types(Action(action))}
        return bool(keys) and all(key.endswith("object") for key in keys)
    return False


# --- recording --------------------------------------------------------------------------------


def _username(principal_arn: str) -> str:
    # assumed-role/ROLE/SESSION -> SESSION; user/NAME -> NAME
    return principal_arn.rsplit("/", 1)[-1]


def _role_id(role_arn: str) -> str:
    # A role's unique id (AROA...), stable for the role.
    return "AROA" + uuid.uuid5(uuid.NAMESPACE_URL, role_arn).hex[:17].upper()


def _identity(principal: Any, invoked_by: str | None) -> dict[str, Any]:
    arn = str(principal.arn)
    identity: dict[str, Any] = {"arn": arn, "accountId": str(principal.account)}
    if ":assumed-role/" in arn:
        identity |= {
            "type": "AssumedRole",
            "principalId": f"{_role_id(str(principal.identity_arn))}:{_username(arn)}",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": str(principal.identity_arn),
                    "accountId": str(principal.account),
                    "userName": str(principal.name),
                }
            },
        }
    else:
        identity |= {"type": "IAMUser", "userName": str(principal.name)}
    if principal.access_key_id:
        identity["accessKeyId"] = str(principal.access_key_id)
    if invoked_by:
        identity["invokedBy"] = invoked_by
    return identity


def _parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    # CloudTrail keeps request parameters, not payloads (a function's zip, a template body).
    kept: dict[str, Any] = {}
    for key, value in params.items():
        if key in {"ZipFile", "TemplateBody", "Body", "Action", "Version"}:
            continue
        text = json.dumps(value, default=str)
        if len(text) <= 2048:
            kept[key[:1].lower() + key[1:]] = json.loads(text)
    return kept


def record(
    principal: Any,
    *,
    service: str,
    operation: str | None,
    action: str,
    resource: str,
    region: str,
    error: str | None = None,
    invoked_by: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> None:
    """Record one call, unless AWS would not have it in the Event history."""
    if operation is None or principal is None:
        return
    if (service, operation) not in _MANAGEMENT_OPERATIONS and is_data_event(action):
        return
    now = CLOCK.now()
    event_id = str(uuid.uuid4())
    source = event_source(service)
    name = event_name(service, operation)
    read_only = bool(_READ_ONLY.match(operation))
    via = invoked_by or ""
    detail: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": _identity(principal, invoked_by),
        "eventTime": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": via or "127.0.0.1",
        "userAgent": via or "discover-sandbox",
        "requestParameters": _parameters(params or {}) or None,
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": event_id,
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": str(principal.account),
        "eventCategory": "Management",
    }
    resources: list[dict[str, str]] = []
    if resource and resource != "*":
        detail["resources"] = [{"ARN": resource, "accountId": str(principal.account)}]
        resources.append({"ResourceType": _resource_type(action), "ResourceName": resource})
    if error is not None:
        detail["errorCode"] = "AccessDenied"
        detail["errorMessage"] = error
    entry = {
        "EventId": event_id,
        "EventName": name,
        "ReadOnly": "true" if read_only else "false",
        "EventTime": now,
        "EventSource": source,
        "Username": _username(str(principal.arn)),
        "Resources": resources,
        "CloudTrailEvent": json.dumps(detail),
    }
    if principal.access_key_id:
        entry["AccessKeyId"] = str(principal.access_key_id)
    TRAIL.add(_Event(now, entry))


def record_handler_call(
    principal: Any, action: str, resource: str, region: str, *, allowed: bool, message: str
) -> None:
    """A call a CloudFormation resource handler made with the caller's permissions."""
    service = action.split(":", 1)[0]
    record(
        principal,
        service=service,
        operation=operation_of(action, resource),
        action=action,
        resource=resource,
        region=region,
        error=None if allowed else message,
        invoked_by=CLOUDFORMATION,
    )


def _resource_type(action: str) -> str:
    service = action.split(":", 1)[0]
    return f"AWS::{service.upper()}::Resource"


# --- LookupEvents -----------------------------------------------------------------------------


class InvalidLookupError(Exception):
    """An invalid LookupEvents request, answered with CloudTrail's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def lookup(body: Mapping[str, Any]) -> dict[str, Any]:
    """Answer a LookupEvents request (newest first, at most 50 a page, NextToken)."""
    attributes = body.get("LookupAttributes") or []
    if len(attributes) > 1:
        raise InvalidLookupError(
            "InvalidLookupAttributesException", "You can specify only one lookup attribute."
        )
    wanted: tuple[str, str] | None = None
    if attributes:
        key = str(attributes[0].get("AttributeKey", ""))
        if key not in _LOOKUP_KEYS:
            raise InvalidLookupError(
                "InvalidLookupAttributesException", f"Invalid attribute key: {key}"
            )
        wanted = (key, str(attributes[0].get("AttributeValue", "")))
    start, end = _epoch(body.get("StartTime")), _epoch(body.get("EndTime"))
    if start is not None and end is not None and start > end:
        raise InvalidLookupError("InvalidTimeRangeException", "Start time is after the end time.")
    limit = int(body.get("MaxResults") or _MAX_RESULTS)
    if not 1 <= limit <= _MAX_RESULTS:
        raise InvalidLookupError("InvalidMaxResultsException", "MaxResults must be from 1 to 50.")
    events = [
        e.lookup
        for e in sorted(TRAIL.delivered(), key=lambda e: e.time, reverse=True)
        if (start is None or e.time >= start)
        and (end is None or e.time <= end)
        and (wanted is None or _matches(e.lookup, *wanted))
    ]
    offset = int(body.get("NextToken") or 0)
    page = events[offset : offset + limit]
    answer: dict[str, Any] = {"Events": page}
    if offset + limit < len(events):
        answer["NextToken"] = str(offset + limit)
    return answer


def _matches(entry: Mapping[str, Any], key: str, value: str) -> bool:
    if key in {"ResourceType", "ResourceName"}:
        return any(r.get(key) == value for r in entry.get("Resources", []))
    return str(entry.get(key, "")) == value


def _lookup_events(self: Any) -> str:
    # NOTE: moto 5.2.5's CloudTrail has no LookupEvents.
    from moto.core.exceptions import JsonRESTError

    try:
        return json.dumps(lookup(json.loads(self.body or "{}")))
    except InvalidLookupError as error:
        raise JsonRESTError(error.code, error.message) from None


def install() -> None:
    """Give moto's CloudTrail the LookupEvents operation (idempotent)."""
    from moto.cloudtrail.responses import CloudTrailResponse

    CloudTrailResponse.lookup_events = _lookup_events  # type: ignore[attr-defined]
