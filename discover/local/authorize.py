"""The local sandbox's authorizer: decide each request as IAM would, and say it as AWS does.

It replaces moto's request check (``ActionAuthenticatorMixin._authenticate_and_authorize_action``)
with one that
- names the request by its IAM action (``s3:ListBucket`` for HeadBucket), not the SDK operation;
- names the resource the request acts on (the stack, bucket, object, ...), so policies scoped to
  an ARN are honoured and the denial says ``on resource: ARN``;
- evaluates the caller's identity policies itself: explicit Deny wins, Allow needs a matching
  action (case-insensitive) and resource, conditions are checked against the request context;
- answers with AWS's current message, in the protocol's own error format.

Every decision is appended to the authorization log (JSON Lines) when one is configured: tests
use it as ground truth; ``discover`` itself never reads it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import botocore.exceptions
import botocore.session

from discover import iamdb


class Decision(str, Enum):
    ALLOWED = "allowed"
    IMPLICIT_DENY = "implicit-deny"
    EXPLICIT_DENY = "explicit-deny"


@dataclass(frozen=True, slots=True)
class Request:
    """What the authorizer needs to know about one call."""

    service: str  # the signing name: "s3", "cloudformation", "lambda", ...
    operation: str  # the SDK operation name moto resolved (S3: moto's action name)
    method: str
    path: str
    params: Mapping[str, Any]
    account: str
    region: str


# --- naming the IAM action -----------------------------------------------------------------

# NOTE: moto 5.2.5 checks S3 by its own operation names (HeadBucket, ListBucket for
# ListObjects(V2)); IAM knows some of them under other names.
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html ("you must have
# permission to perform the s3:ListBucket action").
_S3_ACTIONS = {
    "HeadBucket": "s3:ListBucket",
    "ListBucketVersions": "s3:ListBucketVersions",
    "GetBucketCORS": "s3:GetBucketCORS",
    "PutBucketCORS": "s3:PutBucketCORS",
    "GetLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
}

# API Gateway (v1 and v2) authorizes by HTTP method on a path ARN, not by operation.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-create-and-manage-api.html
_METHOD_ACTION_SERVICES = frozenset({"apigateway"})


def iam_action(request: Request) -> str:
    """The IAM action a request needs (as IAM spells it when known)."""
    if request.service in _METHOD_ACTION_SERVICES:
        return f"apigateway:{request.method.upper()}"
    if request.service == "s3" and request.operation in _S3_ACTIONS:
        return _S3_ACTIONS[request.operation]
    named = f"{request.service}:{request.operation}"
    return iamdb.canonical_action(named) or named


# --- naming the resource -------------------------------------------------------------------


def _stack_arn(request: Request) -> str:
    name = str(request.params.get("StackName") or "")
    if not name:
        return "*"
    if name.startswith("arn:"):
        return name
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends[request.account][request.region]
    for stack in backend.stacks.values():
        if stack.name == name:
            return str(stack.stack_id)
    # AWS names a stack that does not exist yet with a wildcard id.
    return f"arn:aws:cloudformation:{request.region}:{request.account}:stack/{name}/*"


def _apigateway_path_arn(request: Request) -> str:
    path = urlparse(request.path).path
    return f"arn:aws:apigateway:{request.region}::{unquote(path)}"


_Resolver = Callable[[Request], str]
_RESOLVERS: dict[str, _Resolver] = {
    "cloudformation": _stack_arn,
    "apigateway": _apigateway_path_arn,
}


def resource_arn(request: Request, moto_resource: str) -> str:
    """The ARN the request acts on; moto's own guess (S3, IAM, STS, SQS) otherwise."""
    resolver = _RESOLVERS.get(request.service)
    if resolver is not None:
        return resolver(request)
    return moto_resource


# --- evaluating identity policies ----------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _matches(patterns: list[Any], value: str, *, case_sensitive: bool) -> bool:
    for pattern in patterns:
        text = str(pattern)
        if case_sensitive:
            if fnmatchcase(value, text):
                return True
        elif fnmatchcase(value.lower(), text.lower()):
            return True
    return False


_CONDITION_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": str.__eq__,
    "StringLike": fnmatchcase,
    "ArnEquals": str.__eq__,
    "ArnLike": fnmatchcase,
}


def _conditions_hold(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, entries in condition.items():
        test = _CONDITION_OPERATORS.get(operator)
        for key, expected in entries.items():
            actual = context.get(key)
            if test is None or actual is None:
                # An operator we don't model, or a key the request doesn't carry: IAM treats a
                # missing key as not matching (unless ...IfExists, which we don't model).
                return False
            if not any(test(actual, str(e)) for e in _as_list(expected)):
                return False
    return True


def _statement_applies(
    statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]
) -> bool:
    if "NotAction" in statement:
        if _matches(_as_list(statement["NotAction"]), action, case_sensitive=False):
            return False
    elif not _matches(_as_list(statement.get("Action")), action, case_sensitive=False):
        return False
    if "NotResource" in statement:
        if _matches(_as_list(statement["NotResource"]), resource, case_sensitive=True):
            return False
    elif not _matches(_as_list(statement.get("Resource")), resource, case_sensitive=True):
        return False
    return _conditions_hold(statement.get("Condition") or {}, context)


def evaluate(
    policies: Sequence[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, str]
) -> Decision:
    """IAM's identity-policy logic: an explicit Deny wins; otherwise an Allow is needed."""
    allowed = False
    for policy in policies:
        for statement in _as_list(policy.get("Statement")):
            if not _statement_applies(statement, action, resource, context):
                continue
            if statement.get("Effect") == "Deny":
                return Decision.EXPLICIT_DENY
            allowed = True
    return Decision.ALLOWED if allowed else Decision.IMPLICIT_DENY


def denial_message(principal: str, action: str, resource: str, decision: Decision) -> str:
    """The message AWS writes today, e.g. ``User: ... because no identity-based policy ...``."""
    where = "" if resource == "*" else f" on resource: {resource}"
    if decision is Decision.EXPLICIT_DENY:
        why = "with an explicit deny in an identity-based policy"
    else:
        why = f"because no identity-based policy allows the {action} action"
    return f"User: {principal} is not authorized to perform: {action}{where} {why}"


# --- the authorization log -----------------------------------------------------------------


class AuthorizationLog:
    """Append-only JSON Lines of every decision, for tests to compare against."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()

    def record(self, **fields: Any) -> None:
        if self._path is None:
            return
        line = json.dumps({"time": time.time(), **fields}, sort_keys=True)
        with self._lock, self._path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


# --- protocol-aware errors -----------------------------------------------------------------


@cache
def protocol_of(service: str) -> str:
    """The wire protocol of a service by its signing name: query, json, rest-json, rest-xml."""
    session = botocore.session.get_session()
    try:
        return str(session.get_service_model(service).protocol)
    except botocore.exceptions.UnknownServiceError:
        pass
    for name in session.get_available_services():
        model = session.get_service_model(name)
        if service in (model.signing_name, name):
            return str(model.protocol)
    return "query"
