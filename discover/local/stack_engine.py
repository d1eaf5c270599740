"""CloudFormation acting as its caller: stack operations that check every resource's calls.

moto creates a stack's resources without asking whether the caller may. Real CloudFormation
calls each service with the caller's permissions, so a deploy role without
``iam:CreateRole`` gets its role refused, as a ``CREATE_FAILED`` event whose reason holds
IAM's message, and the stack rolls back. This module runs creates, updates and deletes that
way, on top of moto's resource models:

- resources are handled in dependency order (``DependsOn``, ``Ref``, ``Fn::GetAtt``,
  ``Fn::Sub``), a wave of independent resources at a time, as CloudFormation runs them in
  parallel; each resource's calls (``handler_model``) are decided for the caller, with the
  stack's tags added to the resource's own (tagging is the caller's call too);
- a refused call fails its resource with the handler's message; the other resources of the
  wave still make their own calls, as they would in parallel (a refusal of theirs is
  reported too), and those after the first failure that would have completed are
  cancelled ("Resource creation cancelled"); the next wave does not start;
- a change to a create-only property replaces the resource: the create handler's calls for
  the new one, the delete handler's for the old one at cleanup;
- then the stack rolls back, as the caller: what was created is deleted, what was updated is
  put back, ending in ``ROLLBACK_COMPLETE`` / ``UPDATE_ROLLBACK_COMPLETE``, or, when the
  caller may not undo something, ``ROLLBACK_FAILED`` / ``UPDATE_ROLLBACK_FAILED``
  (``continue_update_rollback`` resumes it; a retried DeleteStack deletes what is left);
- events are written per resource as CloudFormation writes them.

Approximations, on purpose: a handler's calls are all decided before the resource is
created (or, for reads that follow a create, right after); a rolled-back replacement puts
the old object back in moto without a second check of its update.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from discover import iamdb
from discover.local import enforcement
from discover.local.authorize import Decision, denial_message
from discover.local.handler_model import HandlerModel, model_for
from discover.local.principals import Principal, role_session
from discover.local.schemas import Generation, schema_of
from discover.local.stack_calls import (
    COLLECTION_KEYS,
    Call,
    MessageShape,
    Phase,
    ResourceCalls,
    function_arn,
)

_STACK_TYPE = "AWS::CloudFormation::Stack"
_CANCELLED = {"create": "Resource creation cancelled", "update": "Resource update cancelled"}


# --- reading templates -----------------------------------------------------------------------


def _get_att_target(value: Any) -> set[str]:
    if isinstance(value, list) and value:
        return {str(value[0])}
    if isinstance(value, str):
        return {value.split(".", 1)[0]}
    return set()


def _sub_targets(value: Any) -> set[str]:
    text = value[0] if isinstance(value, list) and value else value
    found: set[str] = set()
    if isinstance(text, str):
        found |= {n.split(".", 1)[0] for n in re.findall(r"\$\{([^!}][^}]*)\}", text)}
    if isinstance(value, list) and len(value) > 1:
        found |= references(value[1])
    return found


def references(node: Any) -> set[str]:
    """The logical ids ``node`` refers to through Ref, Fn::GetAtt and Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found |= _get_att_target(value)
            elif key == "Fn::Sub":
                found |= _sub_targets(value)
            else:
                found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return {r for r in found if not r.startswith("AWS::")}


def dependencies(resources: Mapping[str, Any]) -> dict[str, set[str]]:
    """Each resource's dependencies among ``resources`` (explicit and by reference)."""
    result: dict[str, set[str]] = {}
    for logical_id, body in resources.items():
        depends = body.get("DependsOn", []) if isinstance(body, Mapping) else []
        explicit = {depends} if isinstance(depends, str) else set(depends or [])
        result[logical_id] = ({str(d) for d in explicit} | references(body)) & set(resources) - {
            logical_id
        }
    return result


def waves(pending: Sequence[str], deps: Mapping[str, set[str]]) -> Iterator[list[str]]:
    """Groups of ``pending`` ids whose dependencies are all done, in template order."""
    left = list(pending)
    while left:
        wave = [lid for lid in left if not deps.get(lid, set()) & set(left)]
        if not wave:  # a cycle: CloudFormation refuses it; take one and go on
            wave = [left[0]]
        yield wave
        left = [lid for lid in left if lid not in wave]


def _get(props: Mapping[str, Any] | None, path: str) -> Any:
    value: Any = props
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _key(prop: str, item: Any) -> str:
    field_name = COLLECTION_KEYS.get(prop)
    if field_name and isinstance(item, Mapping):
        return json.dumps(item.get(field_name), sort_keys=True, default=str)
    return json.dumps(item, sort_keys=True, default=str)


def _items(props: Mapping[str, Any] | None, path: str) -> list[Any]:
    value = _get(props, path) if props is not None else None
    return list(value) if isinstance(value, list) else []


def _when_update(
    kind: str, arg: str, props: Mapping[str, Any], old: Mapping[str, Any]
) -> list[Any]:
    if kind == "changed":
        return [None] if any(_get(props, p) != _get(old, p) for p in arg.split(",")) else []
    if kind == "added":
        old_items = _items(old, arg)
        return [i for i in _items(props, arg) if i not in old_items]
    if kind == "removed":
        kept = {_key(arg, i) for i in _items(props, arg)}
        return [i for i in _items(old, arg) if _key(arg, i) not in kept]
    if kind in {"changed-set", "changed-unset"}:
        changed = _get(props, arg) != _get(old, arg)
        present = _get(props, arg) not in (None, "", [], {})
        return [None] if changed and present == (kind == "changed-set") else []
    if kind == "changed-other":
        keys = (set(props) | set(old)) - set(arg.split(","))
        return [None] if any(props.get(k) != old.get(k) for k in keys) else []
    if kind == "changed-roles":
        before = set(role_arns(old))
        return [r for r in role_arns(props) if r not in before]
    msg = f"unknown condition {kind!r} in the stack call table"
    raise ValueError(msg)


def _when(when: str, props: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Any]:
    """The items a call is made for: [None] once, one per element, or none at all."""
    kind, _, arg = when.partition(":")
    if kind == "always":
        return [None]
    if kind == "has":
        return [None] if _get(props, arg) not in (None, "", [], {}) else []
    if kind == "each":
        return _items(props, arg)
    if kind == "roles":
        return list(role_arns(props))
    return [] if old is None else _when_update(kind, arg, props, old)


_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")


def role_arns(node: Any) -> list[str]:
    """The IAM role ARNs a resource's properties name (each one is passed to the service)."""
    found: list[str] = []
    if isinstance(node, str):
        if _ROLE_ARN.match(node):
            found.append(node)
    elif isinstance(node, Mapping):
        for value in node.values():
            found.extend(r for r in role_arns(value) if r not in found)
    elif isinstance(node, list):
        for value in node:
            found.extend(r for r in role_arns(value) if r not in found)
    return found


def _tag_map(value: Any) -> dict[str, str]:
    """Tags as written, a list of {Key, Value} or a map, as a map."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {
            str(t.get("Key")): str(t.get("Value", ""))
            for t in value
            if isinstance(t, Mapping) and t.get("Key") is not None
        }
    return {}


def tagged_props(
    model: HandlerModel | None, props: Mapping[str, Any], stack_tags: Mapping[str, str]
) -> Mapping[str, Any]:
    """The properties as the handler sees them: the stack's tags added to the resource's own.

    NOTE: CloudFormation propagates stack-level tags to every resource that supports tags,
    and tags them with the caller's permissions; its own ``aws:cloudformation:*`` tags need
    none. https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-resource-tags.html
    """
    prop = model.tagging_property if model is not None else ""
    if not prop:
        return props
    tags = {k: v for k, v in stack_tags.items() if not k.startswith("aws:")}
    tags.update(_tag_map(props.get(prop)))
    tags = {k: v for k, v in tags.items() if not k.startswith("aws:")}
    result = dict(props)
    if tags:
        result[prop] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    else:
        result.pop(prop, None)
    return result


_TOKEN = re.compile(r"\{([^{}]+)\}")


def queue_arn(url_or_arn: str, values: Mapping[str, str]) -> str:
    """An SQS queue's ARN from its URL (``https://HOST/ACCOUNT/NAME``) or ARN."""
    if url_or_arn.startswith("arn:"):
        return url_or_arn
    parts = url_or_arn.rstrip("/").split("/")
    account, name = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", url_or_arn)
    account = account if account.isdigit() else values.get("account", "")
    return f"arn:{values.get('partition', 'aws')}:sqs:{values.get('region', '')}:{account}:{name}"


class _MissingValueError(Exception):
    """A template names a value the resource does not have: the call is not made."""


def render(template: str, values: Mapping[str, str], props: Mapping[str, Any], item: Any) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(1)
        kind, _, arg = token.partition(":")
        if kind == "p":
            value = _get(props, arg)
        elif kind == "function":
            name = _get(props, arg)
            value = function_arn(str(name), values) if name else None
        elif kind == "item":
            value = item if not arg else (item.get(arg) if isinstance(item, Mapping) else None)
        elif kind == "queue":  # a queue URL (or ARN) as the queue's ARN
            url = item if arg == "item" else _get(props, arg)
            value = queue_arn(str(url), values) if url else None
        else:
            value = values.get(token)
        if value in (None, ""):
            raise _MissingValueError(token)
        return str(value)

    return _TOKEN.sub(one, template)


@dataclass(frozen=True, slots=True)
class PlannedCheck:
    """One concrete authorization a resource operation needs."""

    action: str
    resource: str
    context: Mapping[str, str]
    shape: MessageShape

    @property
    def tagging(self) -> bool:
        """A call IAM files under the Tagging access level (TagResource, PutBucketTagging)."""
        return "Tagging" in iamdb.access_level(iamdb.Action(self.action))


def planned_checks(
    calls: Iterable[Call],
    phase: Phase | None,
    values: Mapping[str, str],
    props: Mapping[str, Any],
    old: Mapping[str, Any] | None = None,
) -> list[PlannedCheck]:
    """The checks ``calls`` make for a resource with ``props`` (``old``: before an update)."""
    planned: list[PlannedCheck] = []
    for call in calls:
        if phase is not None and call.phase is not phase:
            continue
        for item in _when(call.when, props, old):
            try:
                resource = render(call.resource, values, props, item)
            except _MissingValueError:
                continue  # e.g. "{p:Role}" on a function without one: nothing to check
            context: dict[str, str] = {}
            for key, template in call.context.items():
                with contextlib.suppress(_MissingValueError):
                    context[key] = render(template, values, props, item)
            planned.append(PlannedCheck(call.action, resource, context, call.shape))
    return planned


# --- the handler's words -------------------------------------------------------------------


def _request_id() -> str:
    return str(uuid.uuid4())


_TAGGING_HELP = (
    "Encountered a permissions error performing a tagging operation, please add required tag "
    "permissions. See https://repost.aws/knowledge-center/cloudformation-tagging-permission-error"
    " for how to resolve."
)


def handler_message(
    check: PlannedCheck,
    decision: Decision,
    principal: Principal,
    table: ResourceCalls,
    *,
    generation: Generation = Generation.REGISTRY,
    stack_tags_only: bool = False,
) -> str:
    """The ResourceStatusReason of a resource a refused call failed, as AWS writes it."""
    denial = denial_message(principal.arn, check.action, check.resource, decision)
    if generation is Generation.LEGACY:
        # NOTE: types CloudFormation still runs with its built-in code name the API call;
        # S3 gives only "Access Denied" there.
        return f"API: {check.action} {'Access Denied' if table.service == 'S3' else denial}"
    code = "AccessDenied"
    if check.shape is MessageShape.LAMBDA_S3_CODE:
        location = check.resource.split(":::", 1)[-1]
        # NOTE: Lambda relays S3's message; S3 names the caller and the action to callers of
        # the bucket's own account ("User: ... is not authorized to perform: s3:GetObject").
        inner = (
            "Your access has been denied by S3, please make sure your request credentials have "
            f"permission to GetObject for {location}. S3 Error Code: AccessDenied. "
            f"S3 Error Message: {denial}"
        )
        service = (
            f"(Service: Lambda, Status Code: 403, Request ID: {_request_id()}, "
            "Extended Request ID: null)"
        )
    elif check.shape is MessageShape.LOGS_TAGS:
        # NOTE: CloudWatch Logs words a tagging refusal at CreateLogGroup this way.
        inner = (
            f"User with accountId: {principal.account} is not authorized to perform "
            'CreateLogGroup with Tags.\n  An additional permission "logs:TagResource" is required.'
        )
        service = f"(Service: CloudWatchLogs, Status Code: 400, Request ID: {_request_id()})"
    elif table.service == "CloudWatch":
        # NOTE: the CloudWatch handlers report a refusal as an invalid request, unwrapped.
        return (
            f'Resource handler returned message: "Invalid request provided: {denial}" '
            f"(RequestToken: {_request_id()}, HandlerErrorCode: InvalidRequest)"
        )
    elif table.service == "S3":
        extended = base64.b64encode(os.urandom(48)).decode()
        inner = denial
        service = (
            f"(Service: S3, Status Code: 403, Request ID: {uuid.uuid4().hex[:16].upper()}, "
            f"Extended Request ID: {extended})"
        )
    else:
        inner = denial
        service = (
            f"(Service: {table.service}, Status Code: {table.status}, Request ID: {_request_id()})"
        )
    if check.tagging and stack_tags_only and check.shape is not MessageShape.LOGS_TAGS:
        # NOTE: a refused tag call for stack-level tags only is reported as an unauthorized
        # tagging operation, the service's message inside.
        inner = f'{_TAGGING_HELP} Resource handler returned message: "{inner} {service}"'
        service = ""
        code = "UnauthorizedTaggingOperation"
    body = f"{inner} {service}".rstrip()
    return (
        f'Resource handler returned message: "{body}" '
        f"(RequestToken: {_request_id()}, HandlerErrorCode: {code})"
    )


def general_failure(error: BaseException) -> str:
    """The reason of a resource that failed for another reason than a permission."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return (
        f'Resource handler returned message: "{text}" '
        f"(RequestToken: {_request_id()}, HandlerErrorCode: GeneralServiceException)"
    )


# --- events --------------------------------------------------------------------------------


def _emit(
    stack: Any,
    status: str,
    reason: str | None = None,
    *,
    logical_id: str | None = None,
    resource_type: str = _STACK_TYPE,
    physical_id: str | None = None,
) -> None:
    from moto.cloudformation.models import Event

    is_stack = logical_id is None
    event = Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=str(stack.name if is_stack else logical_id),
        physical_resource_id=stack.stack_id if is_stack else (physical_id or ""),
        resource_type=resource_type,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )
    # Events of one operation come within a millisecond here: keep them strictly ordered.
    if stack.events and event.timestamp <= stack.events[-1].timestamp:
        event.timestamp = stack.events[-1].timestamp + timedelta(milliseconds=1)
    event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)
    stack.events.append(event)


# --- resources -------------------------------------------------------------------------------


class _Placeholder:
    """A resource moto has no model for: it exists for the stack, and only there."""

    def __init__(self, logical_id: str, resource_type: str, physical_id: str) -> None:
        self.logical_resource_id = logical_id
        self.cf_resource_type = resource_type
        self.physical_resource_id = physical_id

    def get_cfn_attribute(self, attribute: str) -> Any:
        raise NotImplementedError(attribute)

    def delete(self, account_id: str, region_name: str) -> None:
        return None

    def is_created(self) -> bool:
        return True


@dataclass(slots=True)
class _Prepared:
    logical_id: str
    resource_type: str
    model: Any  # the moto CloudFormationModel class, or None
    body: dict[str, Any]  # the template entry with its properties resolved
    name: str

    @property
    def props(self) -> Mapping[str, Any]:
        properties = self.body.get("Properties") or {}
        return properties if isinstance(properties, Mapping) else {}


def name_of(physical: str) -> str:
    """A resource's name from its physical id: a queue URL's last segment, an ARN's last
    part (a topic), else the id itself (a role, a function, a log group)."""
    if physical.startswith(("https://", "http://")):
        return physical.rstrip("/").rsplit("/", 1)[-1]
    if physical.startswith("arn:"):
        return physical.rsplit(":", 1)[-1]
    return physical


def physical_id_of(resource: Any) -> str:
    value = getattr(resource, "physical_resource_id", None)
    return "" if value is None else str(value)


def failed_to(verb: str, logical_ids: Iterable[str]) -> str:
    """CloudFormation's summary, e.g. "The following resource(s) failed to create: [A, B]. "."""
    return f"The following resource(s) failed to {verb}: [{', '.join(sorted(logical_ids))}]. "


# NOTE: moto 5.2.5 names a layer version's name property "LayerVersion" (its model's
# cloudformation_name_type), so a LayerName in the template was lost for a generated name.
_NAME_PROPERTIES = {"AWS::Lambda::LayerVersion": "LayerName"}


@dataclass(slots=True)
class _Replaced:
    """A resource an update replaced: the old physical resource, deleted at cleanup."""

    logical_id: str
    resource_type: str
    physical: str
    props: Mapping[str, Any]
    resource: Any = None  # moto's object of the old resource, when a new one was made


@dataclass(slots=True)
class _Outcome:
    created: list[str] = field(default_factory=list)
    updated: list[tuple[str, Any, _Prepared | None]] = field(default_factory=list)
    replaced: list[_Replaced] = field(default_factory=list)
    failed_create: list[str] = field(default_factory=list)
    failed_update: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed_create and not self.failed_update

    def summary(self) -> str:
        parts = []
        if self.failed_create:
            parts.append(failed_to("create", self.failed_create))
        if self.failed_update:
            parts.append(failed_to("update", self.failed_update))
        return "".join(parts)


_REPLACING = (
    "Requested update requires the creation of a new physical resource; hence creating one."
)
_NO_MODEL = (
    "The local sandbox has no model of the calls {type} makes, so it does not create it unchecked"
)


class StackOperation:
    """One create, update or delete of one stack, as one caller."""

    def __init__(
        self,
        stack: Any,
        caller: Principal | None,
        *,
        tags: Mapping[str, str] | None = None,
        old_tags: Mapping[str, str] | None = None,
    ) -> None:
        self.stack = stack
        self.caller = caller
        self.rmap = stack.resource_map
        self.account = str(stack.account_id)
        self.region = str(stack.region_name)
        self.tags = dict(tags if tags is not None else (getattr(stack, "tags", None) or {}))
        self.old_tags = dict(old_tags if old_tags is not None else self.tags)

    # --- deciding ------------------------------------------------------------------------

    @property
    def _via_cloudformation(self) -> dict[str, str]:
        # NOTE: a call CloudFormation makes with the caller's permissions (a forward access
        # session) carries these keys, so policies can tell it from a direct call.
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-calledvia
        return {
            "aws:CalledVia": "cloudformation.amazonaws.com",
            "aws:CalledViaFirst": "cloudformation.amazonaws.com",
            "aws:CalledViaLast": "cloudformation.amazonaws.com",
            "aws:ViaAWSService": "true",
            "aws:RequestedRegion": self.region,
        }

    def _values(self, name: str = "", ref: str = "") -> dict[str, str]:
        return {
            "partition": "aws",
            "region": self.region,
            "account": self.account,
            "name": name,
            "ref": ref,
        }

    def _refusal(
        self,
        logical_id: str,
        model: HandlerModel | None,
        *,
        calls: Iterable[Call],
        phase: Phase | None,
        values: dict[str, str],
        props: Mapping[str, Any],
        old: Mapping[str, Any] | None = None,
    ) -> str | None:
        """The handler's message for the first refused call, or None when all are allowed."""
        if self.caller is None or model is None:
            return None
        table = model.calls
        tag_prop = model.tagging_property
        own_tags = bool(tag_prop) and bool(_tag_map(props.get(tag_prop)))
        props = tagged_props(model, props, self.tags)
        if old is not None:
            old = tagged_props(model, old, self.old_tags)
        values = {**values, "arn": ""}
        try:
            values["arn"] = table.arn(values, props)
            values["arn_encoded"] = quote(values["arn"], safe="")
        except (KeyError, TypeError, ValueError):
            values.pop("arn")
        for check in planned_checks(calls, phase, values, props, old):
            verdict = enforcement.decide(
                self.caller,
                check.action,
                check.resource,
                {**self._via_cloudformation, **check.context},
                source="cloudformation",
                stack=self.stack.name,
                logical_id=logical_id,
            )
            if not verdict.allowed:
                return handler_message(
                    check,
                    verdict.decision,
                    self.caller,
                    table,
                    generation=model.generation,
                    stack_tags_only=not own_tags,
                )
        return None

    # --- moto's side -----------------------------------------------------------------------

    def prepare(self, logical_id: str) -> _Prepared:
        from moto.cloudformation import parsing

        body = copy.deepcopy(self.rmap._resource_json_map[logical_id])
        resource_type = str(body["Type"])
        body.setdefault("Properties", {})
        body["Properties"] = body["Properties"] or {}
        model = parsing.resource_class_from_type(resource_type)
        cleaned = parsing.clean_json(body, self.rmap)
        name_property = parsing.resource_name_property_from_type(resource_type) if model else None
        name_property = _NAME_PROPERTIES.get(resource_type, name_property)
        props = cleaned.get("Properties") or {}
        if name_property and props.get(name_property):
            name = str(props[name_property])
        else:
            name = parsing.generate_resource_name(resource_type, self.stack.name, logical_id)
        return _Prepared(logical_id, resource_type, model, cleaned, name)

    def _create_model(self, prepared: _Prepared) -> Any:
        if prepared.model is None:
            physical = self._placeholder_id(prepared)
            resource: Any = _Placeholder(prepared.logical_id, prepared.resource_type, physical)
        else:
            resource = prepared.model.create_from_cloudformation_json(
                prepared.name,
                prepared.body,
                self.account,
                self.region,
                LogicalId=prepared.logical_id,
                StackId=self.stack.stack_id,
                ResourceType=prepared.resource_type,
            )
            resource.cf_resource_type = prepared.resource_type
            resource.logical_resource_id = prepared.logical_id
            if not physical_id_of(resource):
                self._name_physically(resource, prepared)
        self.rmap._parsed_resources[prepared.logical_id] = resource
        _made_props(self.stack)[prepared.logical_id] = copy.deepcopy(dict(prepared.props))
        return resource

    def _placeholder_id(self, prepared: _Prepared) -> str:
        """The physical id of a resource moto has no model for, shaped as AWS makes it: the
        schema's identifier, a name the template gives, or a generated id (API Gateway's are
        ten lowercase letters and digits), else CloudFormation's STACK-LOGICALID-SUFFIX."""
        from moto.cloudformation.utils import random_suffix

        schema = schema_of(prepared.resource_type)
        key = schema.primary_identifier[-1] if schema and schema.primary_identifier else ""
        given = prepared.props.get(key) if key else None
        if isinstance(given, str) and given:
            return given
        if key.endswith("Id") and key != "Id":
            alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
            return "".join(alphabet[b % len(alphabet)] for b in os.urandom(10))
        return f"{self.stack.name}-{prepared.logical_id}-{random_suffix()}"

    def _name_physically(self, resource: Any, prepared: _Prepared) -> None:
        """Give a moto model that has no physical id the one CloudFormation would."""
        from moto.cloudformation.utils import random_suffix

        if prepared.resource_type == "AWS::Lambda::Version" and hasattr(resource, "version"):
            base = function_arn(str(prepared.props.get("FunctionName", "")), self._values())
            physical = f"{base}:{resource.version}"
        elif prepared.resource_type == "AWS::Lambda::LayerVersion":
            physical = str(resource.arn)  # Ref of a layer version is its ARN
        elif isinstance(getattr(resource, "id", None), str):
            physical = str(resource.id)  # API Gateway's deployments, stages, ... by their id
        else:
            physical = f"{self.stack.name}-{prepared.logical_id}-{random_suffix()}"
        with contextlib.suppress(AttributeError):  # a read-only property: moto names it
            resource.physical_resource_id = physical

    def _delete_model(self, logical_id: str, body: Mapping[str, Any]) -> None:
        resource = self.rmap._parsed_resources.get(logical_id)
        if resource is not None and not isinstance(resource, str):
            self.rmap._delete_resource(resource, dict(body))
        self.rmap._parsed_resources.pop(logical_id, None)

    def _resolved_props(
        self, body: Mapping[str, Any], logical_id: str | None = None
    ) -> Mapping[str, Any]:
        from moto.cloudformation import parsing

        # A delete (``logical_id`` given) acts on the resource as CloudFormation made it: what
        # it references may be gone already (a delete after a rollback that failed half way),
        # and resolving it again would name nothing.
        made = _made_props(self.stack).get(logical_id) if logical_id else None
        if made is not None:
            return made
        try:
            cleaned = parsing.clean_json(copy.deepcopy(dict(body)), self.rmap)
        except Exception:  # a reference to a resource already gone: use as written
            cleaned = dict(body)
        props = cleaned.get("Properties") or {}
        return props if isinstance(props, Mapping) else {}

    # --- one resource ----------------------------------------------------------------------

    def _fail(
        self, logical_id: str, resource_type: str, status: str, reason: str, physical: str = ""
    ) -> None:
        _emit(
            self.stack,
            status,
            reason,
            logical_id=logical_id,
            resource_type=resource_type,
            physical_id=physical,
        )

    def create_one(self, logical_id: str, outcome: _Outcome, *, cancel: bool) -> bool:
        resource_type = str(self.rmap._resource_json_map[logical_id]["Type"])
        model = model_for(resource_type)
        _emit(self.stack, "CREATE_IN_PROGRESS", logical_id=logical_id, resource_type=resource_type)
        try:
            prepared = self.prepare(logical_id)
        except Exception as error:  # any template error fails the resource
            self._fail(logical_id, resource_type, "CREATE_FAILED", general_failure(error))
            outcome.failed_create.append(logical_id)
            return False
        values = self._values(prepared.name)
        calls = model.calls.create if model else ()
        refusal = (
            general_failure(ValueError(_NO_MODEL.format(type=resource_type)))
            if model is not None and not calls and self.caller is not None
            else self._refusal(
                logical_id,
                model,
                calls=calls,
                phase=Phase.BEFORE,
                values=values,
                props=prepared.props,
            )
        )
        if refusal is not None:
            self._fail(logical_id, resource_type, "CREATE_FAILED", refusal)
            outcome.failed_create.append(logical_id)
            return False
        try:
            resource = self._create_model(prepared)
        except Exception as error:  # moto refusing the properties fails it
            self._fail(logical_id, resource_type, "CREATE_FAILED", general_failure(error))
            outcome.failed_create.append(logical_id)
            return False
        outcome.created.append(logical_id)
        physical = physical_id_of(resource)
        _emit(
            self.stack,
            "CREATE_IN_PROGRESS",
            "Resource creation Initiated",
            logical_id=logical_id,
            resource_type=resource_type,
            physical_id=physical,
        )
        values["ref"] = physical
        refusal = self._refusal(
            logical_id, model, calls=calls, phase=Phase.AFTER, values=values, props=prepared.props
        )
        if refusal is None and cancel:
            refusal = _CANCELLED["create"]
        if refusal is not None:
            self._fail(logical_id, resource_type, "CREATE_FAILED", refusal, physical)
            outcome.failed_create.append(logical_id)
            return False
        _emit(
            self.stack,
            "CREATE_COMPLETE",
            logical_id=logical_id,
            resource_type=resource_type,
            physical_id=physical,
        )
        return True

    def _replaces(
        self, model: HandlerModel | None, props: Mapping[str, Any], old: Mapping[str, Any]
    ) -> bool:
        """Does the change touch a create-only property (CloudFormation replaces the resource)?"""
        if model is None or model.schema is None:
            return False
        return any(props.get(p) != old.get(p) for p in model.schema.create_only)

    def update_one(
        self, logical_id: str, old_body: Mapping[str, Any], outcome: _Outcome, *, cancel: bool
    ) -> bool:
        resource_type = str(self.rmap._resource_json_map[logical_id]["Type"])
        model = model_for(resource_type)
        original = self.rmap._parsed_resources.get(logical_id)
        physical = physical_id_of(original)
        _emit(
            self.stack,
            "UPDATE_IN_PROGRESS",
            logical_id=logical_id,
            resource_type=resource_type,
            physical_id=physical,
        )
        old_props = self._resolved_props(old_body)
        try:
            prepared = self.prepare(logical_id)
        except Exception as error:  # any template error fails the resource
            self._fail(logical_id, resource_type, "UPDATE_FAILED", general_failure(error), physical)
            outcome.failed_update.append(logical_id)
            return False
        replacing = self._replaces(model, prepared.props, old_props)
        if replacing:
            # NOTE: a change to a create-only property replaces the resource: the new one is
            # created (the create handler, as the caller), the old one deleted at cleanup.
            # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-update-behaviors.html
            _emit(
                self.stack,
                "UPDATE_IN_PROGRESS",
                _REPLACING,
                logical_id=logical_id,
                resource_type=resource_type,
                physical_id=physical,
            )
            values = self._values(prepared.name)
            calls = model.calls.create if model else ()
            refusal = self._refusal(
                logical_id,
                model,
                calls=calls,
                phase=Phase.BEFORE,
                values=values,
                props=prepared.props,
            )
        else:
            values = self._values(name_of(physical) or prepared.name, physical)
            calls = model.calls.update if model else ()
            refusal = self._refusal(
                logical_id,
                model,
                calls=calls,
                phase=None,
                values=values,
                props=prepared.props,
                old=old_props,
            )
        if refusal is not None:
            self._fail(logical_id, resource_type, "UPDATE_FAILED", refusal, physical)
            outcome.failed_update.append(logical_id)
            return False
        previous = self._previous(old_body, logical_id)
        try:
            updated = (
                self._replace_model(original, prepared)
                if replacing
                else self._update_model(original, prepared)
            )
        except Exception as error:  # moto refusing the change fails it
            self._fail(logical_id, resource_type, "UPDATE_FAILED", general_failure(error), physical)
            outcome.failed_update.append(logical_id)
            return False
        outcome.updated.append((logical_id, original, previous))
        new_physical = physical_id_of(updated)
        if replacing:
            outcome.replaced.append(
                _Replaced(
                    logical_id,
                    resource_type,
                    physical,
                    old_props,
                    original if updated is not original else None,
                )
            )
            _emit(
                self.stack,
                "UPDATE_IN_PROGRESS",
                "Resource creation Initiated",
                logical_id=logical_id,
                resource_type=resource_type,
                physical_id=new_physical,
            )
            values["ref"] = new_physical
            refusal = self._refusal(
                logical_id,
                model,
                calls=calls,
                phase=Phase.AFTER,
                values=values,
                props=prepared.props,
            )
            if refusal is not None:
                self._fail(logical_id, resource_type, "UPDATE_FAILED", refusal, new_physical)
                outcome.failed_update.append(logical_id)
                return False
        if cancel:
            self._fail(
                logical_id, resource_type, "UPDATE_FAILED", _CANCELLED["update"], new_physical
            )
            outcome.failed_update.append(logical_id)
            return False
        _emit(
            self.stack,
            "UPDATE_COMPLETE",
            logical_id=logical_id,
            resource_type=resource_type,
            physical_id=new_physical,
        )
        return True

    def _previous(self, old_body: Mapping[str, Any], logical_id: str) -> _Prepared | None:
        from moto.cloudformation import parsing

        try:
            body = parsing.clean_json(copy.deepcopy(dict(old_body)), self.rmap)
        except Exception:  # cannot be resolved: the update is not undone in moto
            return None
        resource_type = str(old_body.get("Type"))
        original = self.rmap._parsed_resources.get(logical_id)
        name = physical_id_of(original)
        return _Prepared(
            logical_id, resource_type, parsing.resource_class_from_type(resource_type), body, name
        )

    def _replace_model(self, original: Any, prepared: _Prepared) -> Any:
        """A new physical resource for a replacement (moto updates in place when it cannot
        make a second one, e.g. a name that must stay unique)."""
        if prepared.model is None or original is None:
            return self._update_model(original, prepared)
        try:
            return self._create_model(prepared)
        except Exception:  # e.g. "already exists": moto's own update then
            self.rmap._parsed_resources[prepared.logical_id] = original
            return self._update_model(original, prepared)

    def _update_model(self, original: Any, prepared: _Prepared) -> Any:
        model = prepared.model
        if (
            model is None
            or original is None
            or hasattr(model.update_from_cloudformation_json, "__isabstractmethod__")
        ):
            return original
        updated = model.update_from_cloudformation_json(
            original_resource=original,
            new_resource_name=prepared.name,
            cloudformation_json=prepared.body,
            account_id=self.account,
            region_name=self.region,
        )
        updated.cf_resource_type = prepared.resource_type
        updated.logical_resource_id = prepared.logical_id
        if not physical_id_of(updated):
            self._name_physically(updated, prepared)
        self.rmap._parsed_resources[prepared.logical_id] = updated
        return updated

    # --- many resources --------------------------------------------------------------------

    def deploy(self, adds: Sequence[str], updates: Mapping[str, Mapping[str, Any]]) -> _Outcome:
        """Create ``adds`` and update ``updates`` (id -> previous body), wave by wave."""
        resources = self.rmap._resource_json_map
        deps = dependencies(resources)
        pending = [lid for lid in resources if lid in set(adds) or lid in updates]
        outcome = _Outcome()
        for wave in waves(pending, deps):
            failed = False
            for logical_id in wave:
                if logical_id in updates:
                    done = self.update_one(logical_id, updates[logical_id], outcome, cancel=failed)
                else:
                    done = self.create_one(logical_id, outcome, cancel=failed)
                failed = failed or not done
            if failed:
                break
        return outcome

    def put_back(self, outcome: _Outcome, bodies: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Roll back the updates this operation made, last first, as the caller: an update
        back that is refused fails (the stack cannot finish its rollback). Those refused."""
        stuck: list[str] = []
        replaced = {r.logical_id for r in outcome.replaced}
        while outcome.updated:
            logical_id, original, previous = outcome.updated[-1]
            resource_type = str(bodies[logical_id]["Type"])
            model = model_for(resource_type)
            current = self.rmap._parsed_resources.get(logical_id)
            physical = physical_id_of(current)
            _emit(
                self.stack,
                "UPDATE_IN_PROGRESS",
                logical_id=logical_id,
                resource_type=resource_type,
                physical_id=physical,
            )
            refusal = None
            if logical_id not in replaced and previous is not None and model is not None:
                # Back to the old properties: the update handler again, from new to old.
                current_props = self._resolved_props(bodies[logical_id])
                refusal = self._refusal(
                    logical_id,
                    model,
                    calls=model.calls.update,
                    phase=None,
                    values=self._values(name_of(physical), physical),
                    props=previous.props,
                    old=current_props,
                )
            if refusal is not None:
                self._fail(logical_id, resource_type, "UPDATE_FAILED", refusal, physical)
                stuck.append(logical_id)
                break
            outcome.updated.pop()
            restored = original
            if logical_id in replaced and current is not original and current is not None:
                # The new physical resource goes; the old one is the stack's again.
                with contextlib.suppress(Exception):  # moto cannot always delete its object
                    current.delete(self.account, self.region)
            if previous is not None and logical_id not in replaced:
                try:
                    restored = self._update_model(current, previous)
                except Exception:  # keep moto's object as it was before
                    restored = original
            self.rmap._parsed_resources[logical_id] = restored
            _emit(
                self.stack,
                "UPDATE_COMPLETE",
                logical_id=logical_id,
                resource_type=resource_type,
                physical_id=physical_id_of(restored),
            )
        return stuck

    def _delete_as_caller(
        self,
        logical_id: str,
        resource_type: str,
        physical: str,
        props: Mapping[str, Any],
        *,
        tags: Mapping[str, str] | None = None,
    ) -> str | None:
        """The delete handler's checks for one resource: its message when refused."""
        model = model_for(resource_type)
        if model is None:
            return None
        saved = self.tags
        if tags is not None:
            self.tags = dict(tags)
        try:
            return self._refusal(
                logical_id,
                model,
                calls=model.calls.delete,
                phase=None,
                values=self._values(name_of(physical), physical),
                props=props,
            )
        finally:
            self.tags = saved

    def delete_created(
        self, outcome: _Outcome, bodies: Mapping[str, Mapping[str, Any]]
    ) -> list[str]:
        """Delete what this operation created, as the caller (and close out what it failed
        to create). Those it could not delete."""
        stuck: list[str] = []
        touched = [
            *outcome.created,
            *[f for f in outcome.failed_create if f not in outcome.created],
        ]
        for logical_id in reversed(touched):
            body = bodies[logical_id]
            resource_type = str(body["Type"])
            if logical_id not in outcome.created:
                _emit(
                    self.stack,
                    "DELETE_COMPLETE",
                    logical_id=logical_id,
                    resource_type=resource_type,
                )
                continue
            physical = physical_id_of(self.rmap._parsed_resources.get(logical_id))
            if body.get("DeletionPolicy") == "Retain":
                self.rmap._parsed_resources.pop(logical_id, None)
                _emit(
                    self.stack,
                    "DELETE_SKIPPED",
                    logical_id=logical_id,
                    resource_type=resource_type,
                    physical_id=physical,
                )
                continue
            _emit(
                self.stack,
                "DELETE_IN_PROGRESS",
                logical_id=logical_id,
                resource_type=resource_type,
                physical_id=physical,
            )
            refusal = self._delete_as_caller(
                logical_id, resource_type, physical, self._resolved_props(body, logical_id)
            )
            if refusal is None:
                try:
                    self._delete_model(logical_id, body)
                except Exception as error:  # reported as AWS reports it
                    refusal = general_failure(error)
            if refusal is not None:
                _emit(
                    self.stack,
                    "DELETE_FAILED",
                    refusal,
                    logical_id=logical_id,
                    resource_type=resource_type,
                    physical_id=physical,
                )
                stuck.append(logical_id)
                continue
            outcome.created.remove(logical_id)
            _emit(
                self.stack,
                "DELETE_COMPLETE",
                logical_id=logical_id,
                resource_type=resource_type,
                physical_id=physical,
            )
        outcome.failed_create = [f for f in outcome.failed_create if f in stuck]
        return stuck

    def delete_replaced(self, outcome: _Outcome) -> None:
        """Cleanup after a replacement: delete each old physical resource as the caller.

        NOTE: a refused delete at cleanup leaves the old resource behind with a DELETE_FAILED
        event; the stack still completes its update."""
        for old in outcome.replaced:
            _emit(
                self.stack,
                "DELETE_IN_PROGRESS",
                logical_id=old.logical_id,
                resource_type=old.resource_type,
                physical_id=old.physical,
            )
            refusal = self._delete_as_caller(
                old.logical_id, old.resource_type, old.physical, old.props, tags=self.old_tags
            )
            if refusal is None and old.resource is not None and hasattr(old.resource, "delete"):
                with contextlib.suppress(Exception):  # moto cannot always delete its object
                    old.resource.delete(self.account, self.region)
            _emit(
                self.stack,
                "DELETE_FAILED" if refusal else "DELETE_COMPLETE",
                refusal,
                logical_id=old.logical_id,
                resource_type=old.resource_type,
                physical_id=old.physical,
            )
        outcome.replaced.clear()

    def delete_checked(
        self,
        logical_ids: Sequence[str],
        bodies: Mapping[str, Mapping[str, Any]],
        retain: Iterable[str] = (),
    ) -> list[str]:
        """Delete existing resources as the caller, dependents first. Those that failed."""
        deps = dependencies(bodies)
        order = [lid for wave in waves(list(logical_ids), deps) for lid in wave]
        kept = set(retain)
        failed: list[str] = []
        for logical_id in reversed(order):
            body = bodies[logical_id]
            resource_type = str(body["Type"])
            resource = self.rmap._parsed_resources.get(logical_id)
            if resource is None:
                continue
            if any(logical_id in deps.get(f, set()) for f in failed):
                continue  # something still using it could not be deleted
            physical = physical_id_of(resource)
            if body.get("DeletionPolicy") == "Retain" or logical_id in kept:
                self.rmap._parsed_resources.pop(logical_id, None)
                _emit(
                    self.stack,
                    "DELETE_SKIPPED",
                    logical_id=logical_id,
                    resource_type=resource_type,
                    physical_id=physical,
                )
                continue
            _emit(
                self.stack,
                "DELETE_IN_PROGRESS",
                logical_id=logical_id,
                resource_type=resource_type,
                physical_id=physical,
            )
            refusal = self._delete_as_caller(
                logical_id, resource_type, physical, self._resolved_props(body, logical_id)
            )
            if refusal is None:
                try:
                    self._delete_model(logical_id, body)
                except Exception as error:  # reported as AWS reports it
                    refusal = general_failure(error)
            if refusal is not None:
                _emit(
                    self.stack,
                    "DELETE_FAILED",
                    refusal,
                    logical_id=logical_id,
                    resource_type=resource_type,
                    physical_id=physical,
                )
                failed.append(logical_id)
                continue
            _emit(
                self.stack,
                "DELETE_COMPLETE",
                logical_id=logical_id,
                resource_type=resource_type,
                physical_id=physical,
            )
        return failed


def _made_props(stack: Any) -> dict[str, Mapping[str, Any]]:
    """The properties each resource of ``stack`` was made with, resolved (by logical id)."""
    made: dict[str, Mapping[str, Any]] | None = getattr(stack, "_discover_made_props", None)
    if made is None:
        made = {}
        stack._discover_made_props = made
    return made


# --- the caller ----------------------------------------------------------------------------


CLOUDFORMATION_SERVICE = "cloudformation.amazonaws.com"
SERVICE_ROLE_SESSION = "AWSCloudFormation"  # the session name CloudFormation gives its role


def _trusts_cloudformation(role: Any) -> bool:
    """True when the role's trust policy lets CloudFormation assume it."""
    try:
        trust = json.loads(role.assume_role_policy_document)
    except (TypeError, ValueError):
        return False
    statements = trust.get("Statement") if isinstance(trust, Mapping) else None
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action")
        actions = actions if isinstance(actions, list) else [actions]
        if not any(str(a).lower() in ("sts:assumerole", "sts:*", "*") for a in actions):
            continue
        principal = statement.get("Principal")
        services = principal.get("Service") if isinstance(principal, Mapping) else None
        services = services if isinstance(services, list) else [services]
        if CLOUDFORMATION_SERVICE in services:
            return True
    return False


def check_service_role(account: str, role_arn: str | None) -> None:
    """Refuse a stack operation whose service role CloudFormation cannot assume, as AWS does
    (a ``ValidationError`` at the call, before anything is created)."""
    if not role_arn:
        return
    from moto.cloudformation.exceptions import ValidationError
    from moto.iam.exceptions import NotFoundException

    try:
        role = enforcement.iam_backend(account).get_role_by_arn(role_arn)
    except NotFoundException:
        role = None
    if role is None or not _trusts_cloudformation(role):
        raise ValidationError(message=f"Role {role_arn} is invalid or cannot be assumed")


def caller_for(stack: Any, role_arn: str | None = None) -> Principal | None:
    """Whom CloudFormation acts as: the stack's service role if it has one, else the caller."""
    arn = role_arn or getattr(stack, "role_arn", None)
    if arn:
        from moto.iam.exceptions import NotFoundException

        try:
            role = enforcement.iam_backend(str(stack.account_id)).get_role_by_arn(arn)
        except NotFoundException:
            role = None
        if role is not None:
            # NOTE: CloudFormation acts as a session of the service role; AWS's denials and
            # CloudTrail name it ``assumed-role/ROLE/AWSCloudFormation``.
            return role_session(role, SERVICE_ROLE_SESSION, str(stack.account_id))
    return enforcement.current_principal()


# --- stack operations ------------------------------------------------------------------------


def _enabled(rmap: Any, body: Mapping[str, Any]) -> bool:
    condition = body.get("Condition")
    return not condition or bool(rmap.lazy_condition_map[condition])


def _load_template(
    stack: Any, template: Mapping[str, Any], parameters: Mapping[str, Any] | None
) -> None:
    rmap = stack.resource_map
    rmap._template = template
    if parameters:
        rmap.input_parameters = dict(parameters)
    rmap.load_mapping()
    rmap.load_parameters()
    rmap.load_conditions()
    rmap._resource_json_map = template.get("Resources") or {}
    rmap.tags.update(
        {
            "aws:cloudformation:stack-name": stack.name,
            "aws:cloudformation:stack-id": stack.stack_id,
        }
    )


def _refresh_outputs(stack: Any) -> None:
    from moto.cloudformation.parsing import OutputMap

    stack.output_map = OutputMap(stack.resource_map, stack.template_dict, stack.stack_id)


def _forget_resources(stack: Any) -> None:
    """After a create rolled back: no resources, no outputs (as CloudFormation shows it)."""
    from moto.cloudformation.parsing import OutputMap

    rmap = stack.resource_map
    for logical_id in list(rmap._resource_json_map):
        rmap._parsed_resources.pop(logical_id, None)
    rmap._resource_json_map = {}
    stack.output_map = OutputMap(rmap, {}, stack.stack_id)


def create_stack_resources(stack: Any, caller: Principal | None) -> bool:
    """Create the resources of a stack whose template is loaded; roll back on failure."""
    stack.status = "CREATE_IN_PROGRESS"
    rmap = stack.resource_map
    bodies = dict(rmap._resource_json_map)
    adds = [lid for lid, body in bodies.items() if _enabled(rmap, body)]
    operation = StackOperation(stack, caller)
    outcome = operation.deploy(adds, {})
    if outcome.ok:
        stack.status = "CREATE_COMPLETE"
        _emit(stack, "CREATE_COMPLETE")
        _refresh_outputs(stack)
        return True
    if getattr(stack, "disable_rollback", False):
        stack.status = "CREATE_FAILED"
        _emit(stack, "CREATE_FAILED", outcome.summary().strip())
        return False
    stack.status = "ROLLBACK_IN_PROGRESS"
    _emit(stack, "ROLLBACK_IN_PROGRESS", f"{outcome.summary()}Rollback requested by user.")
    stuck = operation.delete_created(outcome, bodies)
    if stuck:
        stack.status = "ROLLBACK_FAILED"
        _emit(
            stack,
            "ROLLBACK_FAILED",
            failed_to("delete", stuck),
        )
        return False
    _forget_resources(stack)
    stack.status = "ROLLBACK_COMPLETE"
    _emit(stack, "ROLLBACK_COMPLETE")
    return False


def create_from_change_set(stack: Any, change_set: Any, caller: Principal | None) -> bool:
    stack.template = change_set.template
    stack._parse_template()
    _emit(stack, "CREATE_IN_PROGRESS", "User Initiated")
    _load_template(stack, stack.template_dict, change_set.parameters)
    stack.description = stack.template_dict.get("Description")
    return create_stack_resources(stack, caller)


def update_stack_resources(
    stack: Any,
    template: str,
    parameters: Mapping[str, Any] | None,
    caller: Principal | None,
    tags: Mapping[str, str] | None = None,
) -> bool:
    """Apply a new template (and stack tags) to a stack as ``caller``; roll back on failure."""
    from moto.cloudformation.exceptions import ValidationError

    rmap = stack.resource_map
    old_tags = dict(getattr(stack, "tags", None) or {})
    new_tags = dict(tags) if tags is not None else old_tags
    new_template = stack.parse_template(template)
    diff = rmap.build_resource_diff(new_template, dict(parameters) if parameters else None)
    if (
        not any(diff.values())
        and stack.has_template(template)
        and (not parameters or stack.has_parameters(dict(parameters)))
        and new_tags == old_tags
    ):
        # NOTE: UpdateStack with nothing to change is refused; deploy tools rely on it.
        raise ValidationError(stack.stack_id, message="No updates are to be performed.")
    saved = _Saved.of(stack)
    stack.status = "UPDATE_IN_PROGRESS"
    _emit(stack, "UPDATE_IN_PROGRESS", "User Initiated")
    _load_template(stack, new_template, parameters)
    new_bodies = dict(rmap._resource_json_map)
    adds = [lid for lid in diff["Add"] if _enabled(rmap, new_bodies[lid])]
    # NOTE: a change of stack tags is an update of every resource that takes tags.
    retagged = [
        lid
        for lid, body in new_bodies.items()
        if new_tags != old_tags
        and lid in rmap._parsed_resources
        and lid not in diff["Add"]
        and (model := model_for(str(body.get("Type")))) is not None
        and model.tagging_property
    ]
    updates = {
        lid: saved.bodies[lid]
        for lid in [*diff["Modify"], *[r for r in retagged if r not in diff["Modify"]]]
        if lid in rmap._parsed_resources and lid in saved.bodies and _enabled(rmap, new_bodies[lid])
    }
    operation = StackOperation(stack, caller, tags=new_tags, old_tags=old_tags)
    outcome = operation.deploy(adds, updates)
    if outcome.ok:
        stack.status = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
        _emit(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        operation.delete_replaced(outcome)
        removed = [lid for lid in diff["Remove"] if lid in rmap._parsed_resources]
        old_bodies = {lid: saved.bodies[lid] for lid in removed}
        operation.tags = old_tags
        for logical_id in operation.delete_checked(removed, old_bodies):
            rmap._parsed_resources.pop(logical_id, None)  # CloudFormation lets it go anyway
        stack.template = template
        stack._parse_template()
        stack.tags = new_tags
        stack.status = "UPDATE_COMPLETE"
        _emit(stack, "UPDATE_COMPLETE")
        _refresh_outputs(stack)
        return True
    stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
    _emit(stack, "UPDATE_ROLLBACK_IN_PROGRESS", outcome.summary())
    pending = _PendingRollback(outcome, {**saved.bodies, **new_bodies}, new_bodies, saved, new_tags)
    return finish_rollback(stack, pending, caller)


@dataclass(slots=True)
class _PendingRollback:
    """What an update rollback still has to undo (kept while the stack is stuck)."""

    outcome: _Outcome
    bodies: dict[str, Any]  # old and new template entries
    new_bodies: dict[str, Any]
    saved: _Saved
    new_tags: dict[str, str]


_PENDING = "_discover_pending_rollback"


def finish_rollback(stack: Any, pending: _PendingRollback, caller: Principal | None) -> bool:
    """Roll an update back as ``caller``: put updated resources back, delete created ones.

    Always False (the update did not happen); the stack ends UPDATE_ROLLBACK_COMPLETE, or
    UPDATE_ROLLBACK_FAILED when the caller may not undo something (``ContinueUpdateRollback``
    resumes from there)."""
    old_tags = dict(getattr(stack, "tags", None) or {})
    # Rolling back goes from the new state to the old one: the target tags are the old ones.
    operation = StackOperation(stack, caller, tags=old_tags, old_tags=pending.new_tags)
    stuck = operation.put_back(pending.outcome, pending.bodies)
    verb = "update"
    if not stuck:
        stack.status = "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"
        _emit(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        operation.tags = pending.new_tags
        stuck = operation.delete_created(pending.outcome, pending.new_bodies)
        verb = "delete"
    pending.saved.restore(stack)
    if stuck:
        # Resources still there stay the stack's, so a later DeleteStack removes them.
        for logical_id in pending.outcome.created:
            stack.resource_map._resource_json_map.setdefault(
                logical_id, pending.new_bodies[logical_id]
            )
        setattr(stack, _PENDING, pending)
        stack.status = "UPDATE_ROLLBACK_FAILED"
        _emit(stack, "UPDATE_ROLLBACK_FAILED", failed_to(verb, stuck))
        return False
    with contextlib.suppress(AttributeError):
        delattr(stack, _PENDING)
    stack.status = "UPDATE_ROLLBACK_COMPLETE"
    _emit(stack, "UPDATE_ROLLBACK_COMPLETE")
    return False


def continue_update_rollback(
    stack: Any, caller: Principal | None, resources_to_skip: Sequence[str] = ()
) -> None:
    """ContinueUpdateRollback: resume a rollback that stopped, as ``caller``.

    NOTE: only a stack in UPDATE_ROLLBACK_FAILED can continue; skipped resources are marked
    as rolled back without a call.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ContinueUpdateRollback.html
    """
    from moto.cloudformation.exceptions import ValidationError

    pending: _PendingRollback | None = getattr(stack, _PENDING, None)
    if stack.status != "UPDATE_ROLLBACK_FAILED" or pending is None:
        raise ValidationError(
            stack.stack_id,
            message=f"Stack {stack.stack_id} is in {stack.status} state and can not continue "
            "update rollback.",
        )
    skip = set(resources_to_skip)
    pending.outcome.updated = [u for u in pending.outcome.updated if u[0] not in skip]
    pending.outcome.created = [c for c in pending.outcome.created if c not in skip]
    stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
    _emit(stack, "UPDATE_ROLLBACK_IN_PROGRESS", "User Initiated")
    finish_rollback(stack, pending, caller)


@dataclass(slots=True)
class _Saved:
    """A stack's template state before an update, to put back after a rollback."""

    template: Any
    template_text: Any
    bodies: dict[str, Any]
    input_parameters: Any
    resolved_parameters: dict[str, Any]

    @classmethod
    def of(cls, stack: Any) -> _Saved:
        rmap = stack.resource_map
        return cls(
            template=rmap._template,
            template_text=stack.template,
            bodies=dict(rmap._resource_json_map),
            input_parameters=copy.copy(rmap.input_parameters),
            resolved_parameters=dict(rmap.resolved_parameters),
        )

    def restore(self, stack: Any) -> None:
        rmap = stack.resource_map
        rmap._template = self.template
        # A copy: a stuck rollback adds the resources it could not delete to the live map, and
        # those must not leak into the template state a later rollback puts back.
        rmap._resource_json_map = dict(self.bodies)
        rmap.input_parameters = self.input_parameters
        rmap.resolved_parameters = self.resolved_parameters
        rmap._parsed_resources.update(self.resolved_parameters)
        rmap.load_conditions()
        stack.template = self.template_text
        stack._parse_template()
        _refresh_outputs(stack)


def delete_stack_resources(
    stack: Any, caller: Principal | None, retain: Sequence[str] = ()
) -> bool:
    """Delete a stack's resources as ``caller``: True when the stack is gone.

    A stack left DELETE_FAILED is deleted again by the next DeleteStack (``retain``: the
    resources to leave in place, as RetainResources)."""
    rmap = stack.resource_map
    stack.status = "DELETE_IN_PROGRESS"
    _emit(stack, "DELETE_IN_PROGRESS", "User Initiated")
    bodies = dict(rmap._resource_json_map)
    existing = [lid for lid in bodies if rmap._parsed_resources.get(lid) is not None]
    operation = StackOperation(stack, caller)
    failed = operation.delete_checked(existing, bodies, retain)
    if failed:
        stack.status = "DELETE_FAILED"
        _emit(
            stack,
            "DELETE_FAILED",
            failed_to("delete", failed),
        )
        return False
    stack.status = "DELETE_COMPLETE"
    _emit(stack, "DELETE_COMPLETE")
    return True


__all__ = [
    "PlannedCheck",
    "StackOperation",
    "caller_for",
    "check_service_role",
    "continue_update_rollback",
    "create_from_change_set",
    "create_stack_resources",
    "delete_stack_resources",
    "dependencies",
    "handler_message",
    "planned_checks",
    "references",
    "update_stack_resources",
    "waves",
]
