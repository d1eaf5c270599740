"""What each resource type's handlers call as the caller, generated from the registry schemas.

For every resource type, per operation, the sandbox checks calls made of three parts:

- the **overrides** (``stack_calls.OVERRIDES``, keyed by type and action): the calls whose
  condition (a property present or changed, tags present), ARN or wording the schema cannot
  give, written by hand for the types the sample services use;
- the **generated** calls, read from the type's schema (``schemas``) for every action that is
  neither overridden nor excluded in the ledger (``ledger``): the operation's main call
  (``Create<Type>``, ``Update<Type>``, ``Delete<Type>``, or the service's nearest verb), the
  reads the handler makes after it (the actions the operation shares with the read handler),
  the tagging calls when the resource carries tags (its own or the stack's), and
  ``iam:PassRole`` for each role a property names;
- nothing else: an action of the schema that is neither is listed by ``ledger.excluded_for``
  with the reason, for the report.

Types without registry handlers (the legacy ones) get their main calls from the IAM data
(``svc:CreateName``, ``svc:DeleteName``...), and are worded as CloudFormation's built-in code
words them (``API: svc:Op ...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from discover import iamdb
from discover.local import ledger
from discover.local.schemas import Generation, Operation, TypeSchema, actions, schema_of
from discover.local.stack_calls import OVERRIDES, Call, Phase, ResourceCalls

# Types CloudFormation runs itself: no service call is made with the caller's permissions.
# NOTE: a custom resource's function is invoked by CloudFormation, not with the caller's
# credentials. https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-custom-resources.html
CLOUDFORMATION_OWN = re.compile(
    r"^(Custom::.+|AWS::CloudFormation::(CustomResource|WaitCondition|WaitConditionHandle|Macro)"
    r"|AWS::CDK::Metadata)$"
)

# How a service names itself in "(Service: X, Status Code: N, ...)", and the status of a denial.
SERVICE_WORDING: dict[str, tuple[str, int]] = {
    "iam": ("Iam", 403),
    "lambda": ("Lambda", 403),
    "logs": ("CloudWatchLogs", 400),
    "s3": ("S3", 403),
    "apigateway": ("ApiGateway", 403),
    "dynamodb": ("DynamoDb", 400),
    "sqs": ("Sqs", 403),
    "sns": ("Sns", 403),
    "events": ("EventBridge", 400),
    "states": ("Sfn", 400),
    "cloudwatch": ("CloudWatch", 403),
    "kms": ("Kms", 400),
    "ec2": ("Ec2", 403),
    "secretsmanager": ("SecretsManager", 400),
    "ssm": ("Ssm", 400),
    "kinesis": ("Kinesis", 400),
    "cognito-idp": ("CognitoIdentityProvider", 400),
}

# The IAM prefix of a type's service where it differs from the type's middle part.
_TYPE_SERVICE: dict[str, str] = {
    "apigatewayv2": "apigateway",
    "stepfunctions": "states",
    "elasticloadbalancingv2": "elasticloadbalancing",
    "elasticsearch": "es",
    "certificatemanager": "acm",
    "cognito": "cognito-idp",
    "kinesisanalyticsv2": "kinesisanalytics",
    "pinpointemail": "ses",
    "wafregional": "waf-regional",
}

_MAIN_VERBS: dict[Operation, tuple[str, ...]] = {
    Operation.CREATE: (
        "Create", "Put", "Publish", "Add", "Register", "Set", "Run", "Start", "Import",
        "Allocate", "Associate", "Attach", "Enable", "POST", "PUT",
    ),
    Operation.UPDATE: ("Update", "Put", "Set", "Modify", "Replace", "Change", "PATCH", "PUT"),
    Operation.DELETE: (
        "Delete", "Remove", "Deregister", "Disassociate", "Detach", "Disable", "Terminate",
        "DELETE",
    ),
}  # fmt: skip
_TAG_VERBS = ("Tag", "AddTags", "CreateTags")
_UNTAG_VERBS = ("Untag", "RemoveTags", "DeleteTags")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/")


@dataclass(frozen=True, slots=True)
class HandlerModel:
    """The checks a type's handlers make, and where each came from."""

    type_name: str
    schema: TypeSchema | None
    calls: ResourceCalls
    generation: Generation
    generated: frozenset[tuple[Operation, str]]  # (operation, action) made by the generic rule

    @property
    def tagging_property(self) -> str:
        if self.schema is None or not self.schema.tagging.taggable:
            return ""
        return self.schema.tagging.tag_property or "Tags"

    def modelled(self, operation: Operation) -> frozenset[str]:
        """Every action this model may check for ``operation``."""
        calls = {
            Operation.CREATE: self.calls.create,
            Operation.UPDATE: self.calls.update,
            Operation.DELETE: self.calls.delete,
        }.get(operation, ())
        return frozenset(c.action for c in calls)


def type_service(type_name: str) -> str:
    """The IAM prefix of a type's service: AWS::StepFunctions::X -> states."""
    parts = type_name.split("::")
    middle = parts[1].lower() if len(parts) > 2 else ""
    return _TYPE_SERVICE.get(middle, middle)


def _short_name(type_name: str) -> str:
    return type_name.rsplit("::", 1)[-1]


def _verb_of(action: str) -> str:
    return action.split(":", 1)[1]


def _is_tagging(action: str, tagging_actions: frozenset[str]) -> bool:
    name = _verb_of(action)
    return (
        action in tagging_actions
        or "Tagging" in iamdb.access_level(iamdb.Action(action))
        or (
            name.startswith(("ListTags", "ListRoleTags", "ListQueueTags"))
            or name.endswith("Tagging")
        )
    )


def _primary_service(type_name: str, create: Iterable[str]) -> str:
    service = type_service(type_name)
    if iamdb.service_exists(service):
        return service
    for action in create:
        if action != "iam:PassRole":
            return action.split(":", 1)[0]
    return service


def _pick_main(
    operation: Operation, candidates: Iterable[str], service: str, short: str
) -> str | None:
    pool = [a for a in candidates if a.split(":", 1)[0] == service]
    exact = {
        Operation.CREATE: f"{service}:Create{short}",
        Operation.UPDATE: f"{service}:Update{short}",
        Operation.DELETE: f"{service}:Delete{short}",
    }[operation]
    if exact in pool:
        return exact
    for verb in _MAIN_VERBS[operation]:
        for action in pool:
            if _verb_of(action).startswith(verb) and "Tag" not in _verb_of(action):
                return action
    # A handler whose operation is another verb (a policy removed with Set..., Put...): its
    # first write call of the service.
    for action in pool:
        level = iamdb.access_level(iamdb.Action(action))
        if ("Write" in level or "Permissions" in level) and "Tag" not in _verb_of(action):
            return action
    return None


def _tag_action(pool: Iterable[str], verbs: tuple[str, ...], fallback: str) -> str | None:
    for action in pool:
        name = _verb_of(action)
        if name.startswith(verbs) or (fallback and name == fallback):
            return action
    return None


# --- ARNs ------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def _resource_formats(action: str, short: str) -> tuple[str, ...]:
    types = iamdb.resource_types(iamdb.Action(action))
    if not types:
        return ()
    wanted = short.lower()
    for rt in types:
        # The IAM data names some types in the plural (API Gateway's Stages, Deployments).
        key = rt.key.lower().replace("-", "")
        if key in {wanted, f"{wanted}s"}:
            return rt.arn_formats
    return types[0].arn_formats if len(types) == 1 else ()


def generic_arn(
    action: str, type_name: str
) -> Callable[[Mapping[str, str], Mapping[str, Any]], str]:
    """The resource a generated call names: the ARN format of the action's resource type for
    this type (of several, the one the properties fill: a REST API's stage, not an HTTP
    API's), filled from the properties of the same name, else the resource's own name; ``*``
    when a part stays unknown."""
    arn_formats = _resource_formats(action, _short_name(type_name))

    def build(values: Mapping[str, str], props: Mapping[str, Any]) -> str:
        if not arn_formats:
            return "*"
        ref = values.get("ref", "")
        if ref.startswith("arn:") and iamdb.match_resource_type(iamdb.Action(action), ref):
            return ref
        fixed = {
            "Partition": values.get("partition", "aws"),
            "Region": values.get("region", ""),
            "Account": values.get("account", ""),
        }
        own = values.get("name") or ref

        def filled(arn_format: str) -> tuple[str, int] | None:
            """The ARN, and how many placeholders the own name had to fill (0 is best)."""
            used_own = 0

            def fill(match: re.Match[str]) -> str:
                nonlocal used_own
                key = match.group(1)
                if key in fixed:
                    return fixed[key]
                value = props.get(key)
                if isinstance(value, str) and value and not value.startswith("arn:"):
                    return value
                if not used_own and own:
                    used_own = 1
                    return own
                raise KeyError(key)

            try:
                return _PLACEHOLDER.sub(fill, arn_format), used_own
            except KeyError:
                return None

        found = [f for f in (filled(a) for a in arn_formats) if f is not None]
        return min(found, key=lambda f: f[1])[0] if found else "*"

    return build


# --- the generated calls -----------------------------------------------------------------------


def _registry_calls(
    schema: TypeSchema, skip: Callable[[Operation, str], bool]
) -> tuple[dict[Operation, list[Call]], str]:
    type_name = schema.type_name
    short = _short_name(type_name)
    create = actions(schema, Operation.CREATE)
    read = set(actions(schema, Operation.READ))
    service = _primary_service(type_name, create)
    tagging_actions = frozenset(
        a for a in (schemas_action(p) for p in schema.tagging.permissions) if a
    )
    tag_prop = schema.tagging.tag_property or "Tags"
    out: dict[Operation, list[Call]] = {op: [] for op in _MAIN_VERBS}
    main_action = ""
    for operation in (Operation.CREATE, Operation.UPDATE, Operation.DELETE):
        pool = actions(schema, operation)
        main = _pick_main(operation, pool, service, short)
        if operation is Operation.CREATE and main:
            main_action = main
        reads = [
            a
            for a in pool
            if a in read
            and a != main
            and not _is_tagging(a, tagging_actions)
            and iamdb.access_level(iamdb.Action(a)) in {"Read", "List"}
        ]
        calls = out[operation]
        if operation is Operation.DELETE:
            calls.extend(Call(a, resource="{arn}") for a in reads if not skip(operation, a))
        if main and not skip(operation, main):
            when = "changed-other:" + tag_prop if operation is Operation.UPDATE else "always"
            calls.append(Call(main, resource="{arn}", when=when))
        if (
            "iam:PassRole" in pool
            and operation is not Operation.DELETE
            and not skip(operation, "iam:PassRole")
        ):
            calls.append(
                Call(
                    "iam:PassRole",
                    resource="{item}",
                    when="roles" if operation is Operation.CREATE else "changed-roles",
                    context={"iam:PassedToService": f"{service}.amazonaws.com"},
                )
            )
        if schema.tagging.taggable:
            tag_pool = [*pool, *tagging_actions]
            tag = _tag_action(tag_pool, _TAG_VERBS, "PutBucketTagging")
            untag = _tag_action(tag_pool, _UNTAG_VERBS, "")
            if operation is Operation.CREATE and tag and not skip(operation, tag):
                calls.append(Call(tag, resource="{arn}", when=f"has:{tag_prop}"))
            if operation is Operation.UPDATE:
                if tag and not skip(operation, tag):
                    calls.append(Call(tag, resource="{arn}", when=f"added:{tag_prop}"))
                if untag and not skip(operation, untag):
                    calls.append(Call(untag, resource="{arn}", when=f"removed:{tag_prop}"))
        if operation is not Operation.DELETE:
            phase = Phase.AFTER if operation is Operation.CREATE else Phase.BEFORE
            calls.extend(
                Call(a, resource="{arn}", phase=phase) for a in reads if not skip(operation, a)
            )
    return out, main_action


def schemas_action(written: str) -> str | None:
    from discover.local.schemas import iam_action

    found = iam_action(written).action
    return str(found) if found else None


def _legacy_calls(type_name: str) -> tuple[dict[Operation, list[Call]], str]:
    service = type_service(type_name)
    short = _short_name(type_name)
    out: dict[Operation, list[Call]] = {op: [] for op in _MAIN_VERBS}
    main_action = ""
    if not iamdb.service_exists(service):
        return out, main_action
    verbs = {
        Operation.CREATE: ("Create", "Put", "Register"),
        Operation.UPDATE: ("Update", "Modify"),
        Operation.DELETE: ("Delete", "Deregister"),
    }
    for operation, candidates in verbs.items():
        for verb in candidates:
            action = iamdb.canonical_action(f"{service}:{verb}{short}")
            if action is not None:
                when = "changed-other:Tags" if operation is Operation.UPDATE else "always"
                out[operation].append(Call(str(action), resource="{arn}", when=when))
                if operation is Operation.CREATE:
                    main_action = str(action)
                break
    return out, main_action


@cache
def model_for(type_name: str) -> HandlerModel | None:
    """The handler model of ``type_name``; None for the types CloudFormation runs itself."""
    if CLOUDFORMATION_OWN.match(type_name):
        return None
    schema = schema_of(type_name)
    override = OVERRIDES.get(type_name)
    excluded = ledger.excluded_actions_of(type_name)

    def overridden(operation: Operation, action: str) -> bool:
        if override is None:
            return False
        calls = {
            Operation.CREATE: override.create,
            Operation.UPDATE: override.update,
            Operation.DELETE: override.delete,
        }[operation]
        return any(c.action == action for c in calls)

    def skip(operation: Operation, action: str) -> bool:
        return overridden(operation, action) or action in excluded.get(operation, frozenset())

    if schema is not None and schema.generation is Generation.REGISTRY:
        generated, main_action = _registry_calls(schema, skip)
        generation = Generation.REGISTRY
    else:
        generated, main_action = _legacy_calls(type_name)
        generation = Generation.LEGACY
    service = _primary_service(type_name, [main_action] if main_action else [])
    wording, status = SERVICE_WORDING.get(service, (service.title().replace("-", ""), 400))
    if override is not None:
        arn = override.arn
        wording, status = override.service, override.status
    else:
        arn = generic_arn(main_action, type_name) if main_action else (lambda _v, _p: "*")

    def merged(operation: Operation, own: tuple[Call, ...]) -> tuple[Call, ...]:
        extra = generated[operation]
        before = [c for c in extra if c.phase is Phase.BEFORE]
        after = [c for c in extra if c.phase is Phase.AFTER]
        if operation is Operation.DELETE:
            return (*before, *own) if own else tuple(before)
        return (*own, *before, *after)

    calls = ResourceCalls(
        service=wording,
        status=status,
        arn=arn,
        create=merged(Operation.CREATE, override.create if override else ()),
        update=merged(Operation.UPDATE, override.update if override else ()),
        delete=merged(Operation.DELETE, override.delete if override else ()),
        schema=schema.schema_file if schema else "",
    )
    made = frozenset((op, c.action) for op, cs in generated.items() for c in cs)
    return HandlerModel(type_name, schema, calls, generation, made)


__all__ = ["CLOUDFORMATION_OWN", "HandlerModel", "generic_arn", "model_for", "type_service"]
