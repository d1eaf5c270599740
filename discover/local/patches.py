"""Every change the local sandbox makes to moto, in one place.

Each patch names the moto behaviour it corrects and the moto version it was seen in (5.2.5).
They are applied once, in the sandbox server process, before the first request. The logic
they route to lives in the sibling modules: ``requests`` (action and resource of a request),
``authorize`` (policy evaluation, messages), ``enforcement`` (deciding as a principal),
``sessions`` (STS), ``propagation`` (IAM's delay), ``stack_engine`` (CloudFormation acting as
its caller).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from discover.local import (
    cloudtrail,
    enforcement,
    refusals,
    rest_api_body,
    sessions,
    stack_engine,
    transform,
)
from discover.local.authorize import (
    AuthorizationLog,
    Decision,
    denial_message,
    evaluate,
    evaluate_trust,
    protocol_of,
)
from discover.local.principals import Principal, principal_of
from discover.local.propagation import LEDGER, POLICY_MUTATORS, tracked
from discover.local.requests import Check, Request, checks_for, request_context

_JSON_PROTOCOLS = frozenset({"json", "rest-json"})


class _State:
    applied = False


# --- the request authorizer ----------------------------------------------------------------


def _request_params(handler: Any, service: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    querystring = getattr(handler, "querystring", None) or {}
    for key, value in querystring.items():
        if isinstance(key, str):
            params[key] = value[0] if isinstance(value, list) and value else value
    parsed = getattr(handler, "params", None)  # moto's parse of the request, when it made one
    if isinstance(parsed, dict):
        params.update({k: v for k, v in parsed.items() if isinstance(k, str)})
    if protocol_of(service) in _JSON_PROTOCOLS:
        body = getattr(handler, "body", None)
        if isinstance(body, dict):
            params.update(body)
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        if isinstance(body, str) and body.lstrip().startswith("{"):
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                params.update(decoded)
    uri_match = getattr(handler, "uri_match", None)
    if isinstance(uri_match, dict):
        params.update({k: v for k, v in uri_match.items() if isinstance(k, str)})
    return params


def _raw_body(handler: Any) -> bytes:
    body = getattr(handler, "raw_body", None) or getattr(handler, "body", None) or b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _operation_of(handler: Any) -> str:
    """The SDK operation of the request (for S3, moto 5.2.5 gives its own labels instead:
    "ListBucket" for ListObjectsV2, "CreateBucket" for PutBucketEncryption, ...)."""
    label = handler._get_action()
    label = label[0] if isinstance(label, list) else str(label)
    if getattr(handler, "service_name", None) == "s3" or "S3" in type(handler).__name__:
        request = getattr(handler, "normalized_request", None)
        if request is not None:
            try:
                operation = handler._get_action_from_method_and_request_uri(request)
            except Exception:  # a request the router cannot place: keep moto's label
                operation = None
            if operation:
                return str(operation)
    return label


def _assume_role_decision(
    principal: Principal, check: Check, context: dict[str, str], params: dict[str, Any]
) -> tuple[Decision, bool]:
    """(decision, whether the message gives IAM's reason) for sts:AssumeRole."""
    from moto.iam.exceptions import NotFoundException

    identity = evaluate(
        enforcement.policies_of(principal),
        check.action,
        check.resource,
        {**principal.context(), **context},
    )
    try:
        role = enforcement.iam_backend(principal.account).get_role_by_arn(check.resource)
    except NotFoundException:
        return (identity if identity is not Decision.ALLOWED else Decision.IMPLICIT_DENY), False
    trust_context = {**principal.context(), **context}
    for key, name in (("sts:ExternalId", "ExternalId"), ("sts:RoleSessionName", "RoleSessionName")):
        if params.get(name):
            trust_context[key] = str(params[name])
    document = role.assume_role_policy_document
    trust = json.loads(document) if isinstance(document, str) else dict(document)
    decision = evaluate_trust(
        trust,
        identity,
        caller_arn=principal.arn,
        identity_arn=principal.identity_arn,
        account=principal.account,
        context=trust_context,
        action=check.action,
    )
    # When the identity policies allow it and the trust policy does not, AWS gives no reason.
    return decision, identity is not Decision.ALLOWED


def _authenticate_and_authorize_action(
    self: Any, iam_request_cls: type, resource: str = "*"
) -> None:
    # NOTE: replaces moto 5.2.5 ActionAuthenticatorMixin._authenticate_and_authorize_action,
    # which names actions by SDK operation (s3:HeadBucket), checks most resources as "*",
    # treats an Allow whose condition it cannot read as a Deny, never expires a session,
    # fails trust policies naming an account or a service, and says only "User: X is not
    # authorized to perform: Y" (S3: "Access Denied") in an XML body for every protocol.
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        enforcement.set_current_principal(None)
        return
    if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    parsed_url = urlparse(self.uri)
    path = self.raw_path
    if parsed_url.query:
        path += "?" + parsed_url.query
    operation = _operation_of(self)
    iam_request = iam_request_cls(
        account_id=self.current_account,
        method=self.method,
        path=path,
        data=self.data,
        body=self.raw_body,
        headers=self.headers,
        action=operation,
    )
    service = str(iam_request._service)
    principal = principal_of(iam_request._access_key, str(self.current_account))
    enforcement.set_current_principal(principal)
    params = _request_params(self, service)
    request = Request(
        service=service,
        operation=operation,
        method=self.method,
        path=path,
        params=params,
        account=principal.account,
        region=str(iam_request._region),
        body=_raw_body(self),
    )
    checks = checks_for(request, resource)
    if principal.access_key_id is not None:
        expiration = sessions.session_expiration(principal.account, principal.access_key_id)
        if expiration is not None and sessions.is_expired(expiration):
            enforcement.record_expired(
                principal, checks[0].action, checks[0].resource, operation=operation
            )
            raise refusals.expired_token(service)
    iam_request.check_signature()
    trail = functools.partial(
        cloudtrail.record,
        principal,
        service=service,
        operation=operation,
        action=checks[0].action,
        resource=checks[0].resource,
        region=request.region,
        params=params,
    )
    if checks[0].action == "sts:GetCallerIdentity":
        trail()
        return  # AWS answers GetCallerIdentity whatever the policies say.
    for check in checks:
        context = {**request_context(request), **check.context}
        give_reason = True
        if check.action == "sts:AssumeRole":
            decision, give_reason = _assume_role_decision(principal, check, context, params)
            enforcement.record(
                principal,
                check.action,
                check.resource,
                decision,
                source="direct",
                operation=operation,
                service=service,
            )
        else:
            decision = enforcement.decide(
                principal,
                check.action,
                check.resource,
                context,
                source="direct",
                operation=operation,
                service=service,
            ).decision
        if decision is not Decision.ALLOWED:
            message = denial_message(
                principal.arn, check.action, check.resource, decision, reason=give_reason
            )
            trail(error=message)
            raise refusals.access_denied(service, message)
    trail()


def _create_aws_request(self: Any) -> Any:
    # NOTE: moto 5.2.5 IAMRequestBase._create_aws_request signs `self._body or self._data`;
    # for a request without a body (lambda GetFunction, an Invoke with no payload) `_data`
    # is the header dict, so even the admin's signature fails with SignatureDoesNotMatch.
    # Only a form-encoded body that werkzeug already parsed is rebuilt from `_data`.
    from botocore.awsrequest import AWSRequest

    signed_headers = self._get_string_between(
        "SignedHeaders=", ",", self._headers["Authorization"]
    ).split(";")
    headers = self._create_headers_for_aws_request(signed_headers, self._headers)
    content_type = str(self._headers.get("Content-Type", ""))
    form = self._method == "POST" and "x-www-form-urlencoded" in content_type
    data = self._body or (self._data if form else b"")
    request = AWSRequest(method=self._method, url=self._path, data=data, headers=headers)
    request.context["timestamp"] = headers["X-Amz-Date"]
    return request


# --- CloudFormation ------------------------------------------------------------------------


def _validate_template(self: Any, template: str) -> list[Any]:
    # NOTE: moto 5.2.5 CloudFormationBackend.validate_template fails on any cfn-lint match,
    # warnings included; CloudFormation itself rejects only errors.
    from moto.cloudformation.utils import validate_template_cfn_lint

    matches = validate_template_cfn_lint(template)
    return [m for m in matches if str(getattr(m.rule, "id", "E")).startswith("E")]


def _stack_resources(self: Any) -> list[Any]:
    """The resources the stack has made: moto 5.2.5 lists every template entry, and one not
    made (a create refused, a delete refused before it) comes out as None, so that
    DescribeStackResource answered a 500 where CloudFormation says it does not exist."""
    rmap = self.resource_map
    made = (rmap._parsed_resources.get(lid) for lid in rmap._resource_json_map)
    return [resource for resource in made if resource is not None]


def _no_lazy_creation(*_args: Any, **_kwargs: Any) -> None:
    # NOTE: moto 5.2.5 parsing.parse_and_create_resource creates a stack resource the first
    # time anything looks it up (a Ref, an output, ListStackResources), without the caller's
    # permissions. In the sandbox only stack_engine creates resources, as the caller; a
    # lookup of one that does not exist finds nothing.
    return None


def _stack_create_resources(self: Any) -> None:
    # NOTE: replaces moto 5.2.5 Stack.create_resources (no permission checks, no resource
    # events, no rollback).
    stack_engine.create_stack_resources(self, stack_engine.caller_for(self))


def _stack_update(
    self: Any,
    template: str,
    role_arn: str | None = None,
    parameters: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    # NOTE: replaces moto 5.2.5 Stack.update (UpdateStack): same gaps as create_resources,
    # and it deletes removed resources before creating new ones.
    stack_engine.check_service_role(str(self.account_id), role_arn)
    caller = stack_engine.caller_for(self, role_arn)
    if stack_engine.update_stack_resources(self, template, parameters, caller, tags):
        self.role_arn = role_arn
        if parameters:
            self.parameters = parameters


def _backend_create_stack(  # noqa: PLR0917 - moto's own signature, called positionally
    self: Any,
    name: str,
    template: str,
    parameters: dict[str, Any],
    notification_arns: list[str] | None = None,
    tags: dict[str, str] | None = None,
    role_arn: str | None = None,
    enable_termination_protection: bool | None = False,
    timeout_in_mins: int | None = None,
    stack_policy_body: str | None = None,
) -> Any:
    # NOTE: replaces moto 5.2.5 CloudFormationBackend.create_stack, which reads the stack's
    # exports (and so creates the resources they name) before creating its resources.
    from moto.cloudformation.exceptions import AlreadyExistsException
    from moto.cloudformation.models import Stack
    from moto.cloudformation.utils import generate_stack_id

    if name in [stack.name for stack in self.stacks.values()]:
        msg = f"Stack [{name}] already exists"
        raise AlreadyExistsException(msg)
    stack_engine.check_service_role(str(self.account_id), role_arn)
    stack_id = generate_stack_id(name, self.region_name, self.account_id)
    stack = Stack(  # type: ignore[abstract]
        stack_id=stack_id,
        name=name,
        template=template,
        parameters=parameters,
        account_id=self.account_id,
        region_name=self.region_name,
        notification_arns=notification_arns,
        tags=tags,
        role_arn=role_arn,
        cross_stack_resources=self.exports,
        enable_termination_protection=enable_termination_protection,
        timeout_in_mins=timeout_in_mins,
        stack_policy_body=stack_policy_body,
    )
    self.stacks[stack_id] = stack
    stack._add_stack_event("CREATE_IN_PROGRESS", resource_status_reason="User Initiated")
    stack.create_resources()
    if stack.status == "CREATE_COMPLETE":
        self._validate_export_uniqueness(stack)
        for export in stack.exports:
            self.exports[export.name] = export
    return stack


def _execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    # NOTE: replaces moto 5.2.5 CloudFormationBackend.execute_change_set ("TODO: handle
    # execution errors and implement rollback").
    from moto.cloudformation.exceptions import ValidationError

    change_set = self.change_sets.get(change_set_name)
    if change_set is None:
        for candidate in self.change_sets.values():
            if candidate.change_set_name == change_set_name and (
                stack_name is None or stack_name in (candidate.stack_name, candidate.stack_id)
            ):
                change_set = candidate
    if change_set is None:
        raise ValidationError(stack_name)
    stack = self.stacks[change_set.stack_id]
    caller = stack_engine.caller_for(stack, change_set.role_arn)
    if change_set.change_set_type == "CREATE":
        done = stack_engine.create_from_change_set(stack, change_set, caller)
    else:
        done = stack_engine.update_stack_resources(
            stack, change_set.template, change_set.parameters, caller, change_set.tags
        )
    change_set.execution_status = "EXECUTE_COMPLETE" if done else "EXECUTE_FAILED"


def _checking_service_role(original: Any) -> Any:
    # NOTE: moto 5.2.5 CreateChangeSet takes any RoleARN; CloudFormation refuses one it
    # cannot assume before it makes the change set.
    @functools.wraps(original)
    def create_change_set(self: Any, *args: Any, **kwargs: Any) -> Any:
        stack_engine.check_service_role(str(self.account_id), kwargs.get("role_arn"))
        return original(self, *args, **kwargs)

    return create_change_set


def _find_stack(backend: Any, name_or_stack_id: str) -> Any:
    stack = backend.stacks.get(name_or_stack_id)
    if stack is None:
        stack = next((s for s in backend.stacks.values() if s.name == name_or_stack_id), None)
    return stack


def _backend_delete_stack(
    self: Any, name_or_stack_id: str, retain_resources: list[str] | None = None
) -> None:
    # NOTE: replaces moto 5.2.5 CloudFormationBackend.delete_stack: deletes as the caller,
    # and a stack whose resources could not all be deleted stays, DELETE_FAILED.
    stack = _find_stack(self, name_or_stack_id)
    if stack is None:
        return  # AWS accepts deleting a stack that is not there
    try:
        export_names = [export.name for export in stack.exports]
    except Exception:  # outputs of a stack that never completed
        export_names = []
    caller = stack_engine.caller_for(stack)
    if stack_engine.delete_stack_resources(stack, caller, retain_resources or ()):
        self.stacks.pop(stack.stack_id, None)
        self.deleted_stacks[stack.stack_id] = stack
        for export_name in export_names:
            self.exports.pop(export_name, None)


def _response_delete_stack(self: Any) -> Any:
    # NOTE: moto 5.2.5 CloudFormationResponse.delete_stack drops RetainResources, which a
    # retried DeleteStack of a DELETE_FAILED stack may name.
    from moto.core.responses import EmptyResult

    retain = [str(r) for r in self._get_param("RetainResources", []) or []]
    self.cloudformation_backend.delete_stack(self._get_param("StackName"), retain)
    return EmptyResult()


def _response_continue_update_rollback(self: Any) -> Any:
    # NOTE: moto 5.2.5 has no ContinueUpdateRollback; a stack left UPDATE_ROLLBACK_FAILED
    # resumes its rollback with it, as the caller (or the role given).
    from moto.cloudformation.exceptions import ValidationError
    from moto.core.responses import EmptyResult

    name = str(self._get_param("StackName"))
    stack = _find_stack(self.cloudformation_backend, name)
    if stack is None:
        raise ValidationError(name)
    skip = [str(r) for r in self._get_param("ResourcesToSkip", []) or []]
    caller = stack_engine.caller_for(stack, self._get_param("RoleARN"))
    stack_engine.continue_update_rollback(stack, caller, skip)
    return EmptyResult()


# --- STS -----------------------------------------------------------------------------------


def _wrap_assume_role(original: Any) -> Any:
    def assume_role(  # noqa: PLR0917 - moto's own signature, called positionally
        self: Any,
        region_name: str,
        role_session_name: str,
        role_arn: str,
        policy: str,
        duration: int,
        external_id: str,
    ) -> Any:
        # NOTE: moto 5.2.5 STSBackend.assume_role accepts any DurationSeconds and its
        # sessions never expire; STS allows 900 s up to the role's MaxSessionDuration.
        from moto.iam.exceptions import NotFoundException
        from moto.sts.exceptions import STSValidationError

        account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else self.account_id
        try:
            role = enforcement.iam_backend(account).get_role_by_arn(role_arn)
        except NotFoundException:
            role = None
        try:
            sessions.check_duration(int(duration), role)
        except sessions.SessionRefusedError as refused:
            raise STSValidationError(refused.message) from None
        assumed = original(
            self, region_name, role_session_name, role_arn, policy, duration, external_id
        )
        assumed.expiration = sessions.expiration_after(int(duration))
        return assumed

    return assume_role


# --- installing ----------------------------------------------------------------------------


def apply(authorization_log: Path | None = None, propagation_delay: float = 0.0) -> None:
    """Install the patches (idempotent); set where decisions go and IAM's delay."""
    enforcement.configure(AuthorizationLog(authorization_log))
    LEDGER.configure(propagation_delay)
    if _State.applied:
        return
    from moto.apigateway.models import RestAPI
    from moto.cloudformation import parsing
    from moto.cloudformation.models import CloudFormationBackend, Stack
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMRequestBase
    from moto.iam.models import IAMBackend
    from moto.sts.models import STSBackend

    ActionAuthenticatorMixin._authenticate_and_authorize_action = (  # type: ignore[method-assign]
        _authenticate_and_authorize_action
    )
    IAMRequestBase._create_aws_request = _create_aws_request  # type: ignore[method-assign]
    CloudFormationBackend.validate_template = _validate_template  # type: ignore[method-assign]
    CloudFormationBackend.create_stack = _backend_create_stack  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = _execute_change_set  # type: ignore[method-assign]
    CloudFormationBackend.delete_stack = _backend_delete_stack  # type: ignore[method-assign]
    # Hosted transforms (AWS::Serverless) and templates by URL: see discover.local.transform.
    CloudFormationBackend.create_change_set = transform.expanding(  # type: ignore[method-assign]
        _checking_service_role(CloudFormationBackend.create_change_set)
    )
    CloudFormationResponse._get_stack_from_s3_url = transform.template_from_s3_url  # type: ignore[method-assign]
    RestAPI.create_from_cloudformation_json = rest_api_body.with_body(  # type: ignore[method-assign]
        RestAPI.create_from_cloudformation_json
    )
    CloudFormationResponse.delete_stack = _response_delete_stack  # type: ignore[method-assign]
    CloudFormationResponse.continue_update_rollback = _response_continue_update_rollback  # type: ignore[attr-defined]
    Stack.create_resources = _stack_create_resources  # type: ignore[method-assign]
    Stack.update = _stack_update  # type: ignore[method-assign]
    Stack.stack_resources = property(_stack_resources)  # type: ignore[method-assign,assignment]
    parsing.parse_and_create_resource = _no_lazy_creation
    # NOTE: moto 5.2.5 applies an identity-policy change at once; IAM takes a while.
    for name in POLICY_MUTATORS:
        setattr(IAMBackend, name, tracked(getattr(IAMBackend, name)))
    STSBackend.assume_role = _wrap_assume_role(STSBackend.assume_role)  # type: ignore[method-assign]
    cloudtrail.install()
    _State.applied = True
