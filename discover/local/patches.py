"""Every change the local sandbox makes to moto, in one place.

Each patch names the moto behaviour it corrects and the moto version it was seen in. They are
applied once, in the sandbox server process, before the first request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from discover.local import authorize
from discover.local.authorize import AuthorizationLog, Decision, Request


class _State:
    """What the patches share: whether they are in, and where decisions are logged."""

    applied = False
    log = AuthorizationLog(None)


def _request_params(handler: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    querystring = getattr(handler, "querystring", None) or {}
    for key, value in querystring.items():
        if isinstance(key, str):
            params[key] = value[0] if isinstance(value, list) and value else value
    body = getattr(handler, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str) and body.startswith("{"):
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            params.update(decoded)
    return params


def _access_denied(service: str, message: str) -> Exception:
    """AccessDenied in the protocol's own shape, so SDKs surface the message, not raw XML."""
    from moto.core.exceptions import JsonRESTError, _RESTError
    from moto.s3.exceptions import S3ClientError

    protocol = authorize.protocol_of(service)
    if service == "s3":
        error: Exception = S3ClientError("AccessDenied", message)
        return error
    if protocol in {"json", "rest-json"}:
        json_error = JsonRESTError("AccessDeniedException", message)
        json_error.code = 403
        return json_error

    class _AccessDeniedError(_RESTError):
        code = 403

    return _AccessDeniedError("AccessDenied", message)


def _authenticate_and_authorize_action(
    self: Any, iam_request_cls: type, resource: str = "*"
) -> None:
    # NOTE: replaces moto 5.2.5 ActionAuthenticatorMixin._authenticate_and_authorize_action,
    # which names actions by SDK operation (s3:HeadBucket), checks most resources as "*",
    # treats an Allow whose condition it cannot read as a Deny, and says only
    # "User: X is not authorized to perform: Y" (S3: "Access Denied").
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        return
    if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    from urllib.parse import urlparse

    parsed_url = urlparse(self.uri)
    path = self.raw_path
    if parsed_url.query:
        path += "?" + parsed_url.query
    operation = self._get_action()
    iam_request = iam_request_cls(
        account_id=self.current_account,
        method=self.method,
        path=path,
        data=self.data,
        body=self.raw_body,
        headers=self.headers,
        action=operation,
    )
    iam_request.check_signature()
    service = iam_request._service
    request = Request(
        service=service,
        operation=operation[0] if isinstance(operation, list) else str(operation),
        method=self.method,
        path=path,
        params=_request_params(self),
        account=self.current_account,
        region=iam_request._region,
    )
    action = authorize.iam_action(request)
    arn = authorize.resource_arn(request, resource)
    principal = iam_request._access_key.arn
    if action == "sts:GetCallerIdentity":
        return  # AWS answers GetCallerIdentity whatever the policies say.
    policies = [_policy_json(p) for p in iam_request._access_key.collect_policies()]
    decision = authorize.evaluate(policies, action, arn, {})
    if (
        decision is Decision.ALLOWED
        and iam_request._is_assuming_role_operation(arn)
        and not iam_request._check_role_trust_relationship(arn)
    ):
        decision = Decision.IMPLICIT_DENY
    _State.log.record(
        principal=principal,
        action=action,
        resource=arn,
        decision=decision.value,
        source="direct",
    )
    if decision is not Decision.ALLOWED:
        raise _access_denied(service, authorize.denial_message(principal, action, arn, decision))


def _policy_json(policy: Any) -> dict[str, Any]:
    from moto.iam.access_control import IAMPolicy

    document: dict[str, Any] = IAMPolicy(policy)._policy_json
    return document


def _create_aws_request(self: Any) -> Any:
    # NOTE: moto 5.2.5 IAMRequestBase._create_aws_request signs `self._body or self._data`;
    # for a body-less GET (lambda GetFunction, apigateway GetRestApis) `_data` is the header
    # dict, so even the admin's signature fails with SignatureDoesNotMatch.
    from botocore.awsrequest import AWSRequest

    signed_headers = self._get_string_between(
        "SignedHeaders=", ",", self._headers["Authorization"]
    ).split(";")
    headers = self._create_headers_for_aws_request(signed_headers, self._headers)
    body_less = self._method in {"GET", "HEAD", "DELETE"}
    data = self._body or (b"" if body_less else self._data)
    request = AWSRequest(method=self._method, url=self._path, data=data, headers=headers)
    request.context["timestamp"] = headers["X-Amz-Date"]
    return request


def _validate_template(self: Any, template: str) -> list[Any]:
    # NOTE: moto 5.2.5 CloudFormationBackend.validate_template fails on any cfn-lint match,
    # warnings included; CloudFormation itself rejects only errors.
    from moto.cloudformation.utils import validate_template_cfn_lint

    matches = validate_template_cfn_lint(template)
    return [m for m in matches if str(getattr(m.rule, "id", "E")).startswith("E")]


def apply(authorization_log: Path | None = None) -> None:
    """Install the patches (idempotent)."""
    _State.log = AuthorizationLog(authorization_log)
    if _State.applied:
        return
    from moto.cloudformation.models import CloudFormationBackend
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMRequestBase

    ActionAuthenticatorMixin._authenticate_and_authorize_action = (  # type: ignore[method-assign]
        _authenticate_and_authorize_action
    )
    IAMRequestBase._create_aws_request = _create_aws_request  # type: ignore[method-assign]
    CloudFormationBackend.validate_template = _validate_template  # type: ignore[method-assign]
    _State.applied = True
