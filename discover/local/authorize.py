"""The local sandbox's policy decisions, and how AWS words a refusal.

- :func:`evaluate` is IAM's identity-policy logic: an explicit Deny wins over any Allow, an
  Allow needs a statement whose action (case-insensitive), resource (case-sensitive) and
  conditions all match, and nothing else is allowed.
- :func:`evaluate_trust` decides ``sts:AssumeRole`` against a role's trust policy together
  with the caller's identity policies, as AWS does within one account.
- :func:`denial_message` writes AWS's current message (``User: ARN is not authorized to
  perform: ACTION on resource: ARN because no identity-based policy allows the ACTION
  action``), with the service-specific touches AWS has (S3 quotes the resource; SNS writes
  its prefix in capitals).
- :class:`AuthorizationLog` appends every decision as JSON Lines: tests use it as ground
  truth; ``discover`` itself never reads it.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session


class Decision(str, Enum):
    ALLOWED = "allowed"
    IMPLICIT_DENY = "implicit-deny"
    EXPLICIT_DENY = "explicit-deny"


# --- matching ------------------------------------------------------------------------------


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


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(test: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def compare(actual: str, expected: str) -> bool:
        a, e = _number(actual), _number(expected)
        return a is not None and e is not None and test(a, e)

    return compare


def _ip_in(actual: str, expected: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


# The operators IAM documents, positive form; "Not" forms and "...IfExists" are derived.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": str.__eq__,
    "StringEqualsIgnoreCase": lambda a, e: a.lower() == e.lower(),
    "StringLike": fnmatchcase,
    "ArnEquals": str.__eq__,
    "ArnLike": fnmatchcase,
    "NumericEquals": _numeric(lambda a, e: a == e),
    "NumericLessThan": _numeric(lambda a, e: a < e),
    "NumericLessThanEquals": _numeric(lambda a, e: a <= e),
    "NumericGreaterThan": _numeric(lambda a, e: a > e),
    "NumericGreaterThanEquals": _numeric(lambda a, e: a >= e),
    "Bool": lambda a, e: a.lower() == e.lower(),
    "IpAddress": _ip_in,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
    "NotIpAddress": "IpAddress",
}


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    qualifier = ""
    if ":" in operator and operator.split(":", 1)[0] in {"ForAnyValue", "ForAllValues"}:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    actual = context.get(key)
    expected_values = [
        str(e).lower() if isinstance(e, bool) else str(e) for e in _as_list(expected)
    ]
    if operator == "Null":
        want_missing = any(e.lower() == "true" for e in expected_values)
        return (actual is None) == want_missing
    if actual is None:
        # A key the request does not carry: only ...IfExists (and negated sets of ForAllValues)
        # hold. NOTE: AWS evaluates a negated operator on a missing key as true.
        return if_exists or qualifier == "ForAllValues" or operator in _NEGATED
    negated = operator in _NEGATED
    test = _OPERATORS.get(_NEGATED.get(operator, operator))
    if test is None:
        return False  # an operator not modelled here never grants
    hit = any(test(actual, e) for e in expected_values)
    return not hit if negated else hit


def conditions_hold(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Every operator block, every key in it, holds for the request's context."""
    for operator, entries in condition.items():
        if not isinstance(entries, Mapping):
            return False
        for key, expected in entries.items():
            if not _condition_holds(str(operator), str(key), expected, context):
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
    return conditions_hold(statement.get("Condition") or {}, context)


def evaluate(
    policies: Sequence[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, str]
) -> Decision:
    """IAM's identity-policy logic: an explicit Deny wins; otherwise an Allow is needed."""
    allowed = False
    for policy in policies:
        for statement in _as_list(policy.get("Statement")):
            if not isinstance(statement, Mapping):
                continue
            if not _statement_applies(statement, action, resource, context):
                continue
            if statement.get("Effect") == "Deny":
                return Decision.EXPLICIT_DENY
            allowed = True
    return Decision.ALLOWED if allowed else Decision.IMPLICIT_DENY


# --- trust policies ------------------------------------------------------------------------


def _principal_matches(
    block: Any, caller_arn: str, identity_arn: str, account: str
) -> tuple[bool, bool]:
    """(matches, names the caller itself) for a statement's Principal element.

    A principal is named directly by its ARN (user, role, or role session); an account is
    named by ``arn:aws:iam::ACCOUNT:root`` or its bare id, which delegates the decision to
    the caller's own identity policies. Service and federated principals never match an
    IAM caller.
    """
    if block == "*":
        return True, False
    if not isinstance(block, Mapping):
        return False, False
    for value in _as_list(block.get("AWS")):
        text = str(value)
        if text == "*":
            return True, False
        if text in (caller_arn, identity_arn):
            return True, True
        if text in (f"arn:aws:iam::{account}:root", account):
            return True, False
    return False, False


def evaluate_trust(
    trust: Mapping[str, Any],
    identity: Decision,
    *,
    caller_arn: str,
    identity_arn: str,
    account: str,
    context: Mapping[str, str],
    action: str = "sts:AssumeRole",
) -> Decision:
    """May the caller assume the role? Same-account rules, explicit deny first.

    NOTE: within one account a trust policy that names the caller is enough on its own; one
    that names the account (``:root``) also needs an identity policy that allows it.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html
    """
    if identity is Decision.EXPLICIT_DENY:
        return identity
    trusted = False
    direct = False
    for statement in _as_list(trust.get("Statement")):
        if not isinstance(statement, Mapping):
            continue
        if "NotAction" in statement:
            if _matches(_as_list(statement["NotAction"]), action, case_sensitive=False):
                continue
        elif not _matches(_as_list(statement.get("Action")), action, case_sensitive=False):
            continue
        matched, names_caller = _principal_matches(
            statement.get("Principal"), caller_arn, identity_arn, account
        )
        if not matched or not conditions_hold(statement.get("Condition") or {}, context):
            continue
        if statement.get("Effect") == "Deny":
            return Decision.EXPLICIT_DENY
        trusted = True
        direct = direct or names_caller
    if trusted and (direct or identity is Decision.ALLOWED):
        return Decision.ALLOWED
    return Decision.IMPLICIT_DENY


# --- the message ---------------------------------------------------------------------------


def written_action(action: str) -> str:
    """The action as the service writes it in its message (SNS capitalises its prefix)."""
    service, _, name = action.partition(":")
    return f"SNS:{name}" if service == "sns" else action


# NOTE: IAM names the role by its name, not its ARN, when it refuses these actions
# ("... perform: iam:GetRole on resource: role demo-dev-lambdaRole ...").
ROLE_BY_NAME = frozenset(
    {"iam:GetRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy"}
)


def denial_message(
    principal: str, action: str, resource: str, decision: Decision, *, reason: bool = True
) -> str:
    """AWS's message, e.g. ``User: ... is not authorized to perform: ... because ...``."""
    written = written_action(action)
    if resource == "*":
        where = ""
    elif action in ROLE_BY_NAME and ":role/" in resource:
        where = f" on resource: role {resource.rsplit('/', 1)[-1]}"
    elif action.startswith("s3:"):
        where = f' on resource: "{resource}"'  # S3 quotes the resource ARN
    else:
        where = f" on resource: {resource}"
    text = f"User: {principal} is not authorized to perform: {written}{where}"
    if not reason:
        return text
    if decision is Decision.EXPLICIT_DENY:
        return f"{text} with an explicit deny in an identity-based policy"
    return f"{text} because no identity-based policy allows the {written} action"


# --- the authorization log -----------------------------------------------------------------


class AuthorizationLog:
    """Append-only JSON Lines of every decision, for tests to compare against."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()

    @property
    def path(self) -> Path | None:
        return self._path

    def record(self, **fields: Any) -> None:
        if self._path is None:
            return
        line = json.dumps({"time": time.time(), **fields}, sort_keys=True)
        with self._lock, self._path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def read_authorization_log(path: Path) -> list[dict[str, Any]]:
    """The decisions recorded at ``path``, oldest first."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# --- wire protocols ------------------------------------------------------------------------


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
