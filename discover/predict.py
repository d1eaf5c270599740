"""Predict the permissions a deploy needs before it runs, from its template.

Two sources:

- **Resource handlers.** CloudFormation creates each resource with the caller's permissions.
  The resource type's registry schema (cfn-lint ships them) lists what its create handler
  may call (``handlers.create.permissions``) and, in its ``tagging`` block, what tagging
  needs. That list covers every property; it is narrowed to what this resource's properties
  make the handler call:

  - the create call and the reads that stabilise it: actions of the type's own service whose
    verb creates (``Create``, ``Publish``, ``Add``, ``Put`` + the type's noun) or reads
    (``Get``, ``Describe``, ``List``) something named after the type;
  - actions for a property the resource sets (``PutRolePolicy`` for ``Policies``,
    ``PutEncryptionConfiguration`` for ``BucketEncryption``), matched by name;
  - other services' actions only for a property that names that service's things
    (``KmsKeyArn`` -> kms, ``VpcConfig`` -> ec2), and the two dependencies AWS documents:
    ``iam:PassRole`` of a role a property names, ``s3:GetObject`` of code a property points at;
  - the tagging permissions when the resource sets tags;
  - never an action CloudTrail cannot show (data-plane calls), unless it is such a
    dependency: nothing could prove it was used.

- **The CLI's own calls** (stack, change sets, deployment bucket, uploads), from data learned
  from observed runs and kept in ``discover/data/``, on the service's own stack and bucket.

Every prediction is scoped with :func:`discover.scoping.scope`, the function that scopes an
observed denial, on the ARN the call will be made on (the name the template gives or the CLI
derives; generated parts as CloudFormation generates them), so a prediction is never wider
than what the observed loop would grant for the same call. Names from the schemas that are
not IAM actions (``s3:REST.PUT.OBJECT``) are dropped. High-risk actions go through the same
confirmation as observed grants (the caller applies it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources as package_data
from typing import Any

from discover import iamdb
from discover.denials import Denial, Reason
from discover.iamdb import Action
from discover.policy import Grant
from discover.scoping import scope
from discover.template import GENERATED_ID, GENERATED_UUID, Resource, ServiceTemplate, schema
from discover.trail import not_in_event_history


class Source(str, Enum):
    """Where a prediction comes from."""

    HANDLER = "handler"  # the resource type's registry schema
    TAGGING = "tagging"  # the schema's tagging block
    DEPENDENCY = "dependency"  # documented: PassRole of a named role, S3 code read
    CLI = "cli"  # the deploy CLI's own calls, learned from observed runs


@dataclass(frozen=True, slots=True, order=True)
class Prediction:
    """A grant the deploy is expected to need, and why."""

    grant: Grant
    source: Source
    why: str  # "HelloLambdaFunction (AWS::Lambda::Function) create", "serverless deploy: ..."
    note: str  # how the resource was scoped
    logical_id: str = ""
    # For a dependency: the action whose use implies this one (lambda:CreateFunction).
    implied_by: Action | None = None

    @property
    def provable_by_trail(self) -> bool:
        """True when a CloudTrail event can show this permission was used."""
        return self.implied_by is None and not not_in_event_history(self.grant.action)


# --- names and tokens ----------------------------------------------------------------------------

_VERB = re.compile(r"^([A-Z][a-z]+)(.*)$")
_CREATING = frozenset({"Create", "Publish", "Add"})
_READING = frozenset({"Get", "Describe", "List"})
_REMOVING = frozenset({"Delete", "Remove", "Detach"})  # a delete handler's own calls
# Tagging on create: TagResource, TagRole, PutBucketTagging; API Gateway's PUT /tags/ARN.
_TAGGING_VERBS = re.compile(r"^(Tag|Put\w*Tagging$|PUT$)")


def _norm(text: str, own: str = "") -> str:
    """A property or action noun, comparable: lowercase, without the type's own noun, the
    ``Configuration`` tail, or a plural ending."""
    value = text.lower()
    if own and value.startswith(own.lower()) and len(value) > len(own):
        value = value[len(own) :]
    for tail in ("configuration", "config", "specification"):
        value = value.removesuffix(tail)
    if value.endswith("ies"):
        value = value[:-3] + "y"
    elif value.endswith("s") and not value.endswith("ss"):
        value = value[:-1]
    return value


def _related(noun: str, prop: str, own: str) -> bool:
    a, b = _norm(noun, own), _norm(prop, own)
    if not a or not b:
        return False
    return a == b or (len(a) >= 6 and len(b) >= 6 and a[:6] == b[:6])


def _own_noun(resource_type: str) -> str:
    return resource_type.rsplit("::", 1)[-1]


def _service_of(resource_type: str, actions: Iterable[str]) -> str:
    """The IAM prefix of a type's own service (``AWS::Logs::LogGroup`` -> ``logs``)."""
    middle = resource_type.split("::")[1].lower() if resource_type.count("::") == 2 else ""
    prefixes = [a.split(":", 1)[0] for a in actions]
    if middle in prefixes:
        return middle
    return max(set(prefixes), key=prefixes.count) if prefixes else middle


def _present(props: Mapping[str, Any]) -> list[str]:
    return [k for k, v in props.items() if v not in (None, "", [], {})]


# --- the template's references ------------------------------------------------------------------


def _ref_target(value: Any) -> str | None:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` points at."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str) and not arg.startswith("AWS::"):
            return arg
        if key == "Fn::GetAtt":
            if isinstance(arg, list) and arg:
                return str(arg[0])
            if isinstance(arg, str):
                return arg.split(".", 1)[0]
    return None


def _walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, node
    if isinstance(node, Mapping) and _ref_target(node) is None:
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, (*path, str(index)))


class _Names:
    """Physical names and ARNs of the template's resources, as the deploy will create them."""

    def __init__(self, template: ServiceTemplate) -> None:
        self.template = template

    def fixed(self, placeholder: str) -> str | None:
        return {
            "Partition": self.template.partition,
            "Region": self.template.region,
            "Account": self.template.account,
        }.get(placeholder)

    def name_of(self, value: Any) -> str | None:
        """A name a property gives: a string, or the physical name of what it refers to."""
        target = _ref_target(value)
        if target is not None:
            resource = self.template.resource(target)
            return resource.name if resource is not None else None
        if isinstance(value, str) and "${" not in value:
            if value.startswith("arn:"):
                return re.split(r"[:/]", value)[-1] or None
            return value
        return None

    def role_arn(self, value: Any) -> str | None:
        """The ARN of the IAM role a property names (None when it names no role)."""
        target = _ref_target(value)
        if target is not None:
            resource = self.template.resource(target)
            if resource is None or resource.type != "AWS::IAM::Role" or not resource.name:
                return None
            path = str(resource.properties.get("Path") or "/")
            partition, account = self.template.partition, self.template.account
            return f"arn:{partition}:iam::{account}:role{path}{resource.name}"
        if isinstance(value, str) and re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/", value):
            return value
        return None

    def fill(self, arn_format: str, resource: Resource, *, own: bool) -> str | None:
        """``arn_format`` with its placeholders filled for ``resource``; None if one cannot be."""
        missing = False

        def one(match: re.Match[str]) -> str:
            nonlocal missing
            placeholder = match.group(1)
            value = self.fixed(placeholder) or self._value(placeholder, resource, own=own)
            if value is None:
                missing = True
                return ""
            return value

        text = re.sub(r"\$\{([A-Za-z0-9]+)\}", one, arn_format)
        return None if missing else text

    def _value(self, placeholder: str, resource: Resource, *, own: bool) -> str | None:  # noqa: PLR0911 - one return per source of a value
        props = resource.properties
        if placeholder in props:
            if placeholder.endswith("Id") and _ref_target(props[placeholder]) is not None:
                return GENERATED_ID
            return self.name_of(props[placeholder])
        is_name = placeholder.endswith(("Name", "NameWithPath"))
        # A property named for the thing itself holds its name (a bucket policy's Bucket).
        bare = re.sub(r"Name(WithPath)?$", "", placeholder)
        if is_name and bare in props:
            return self.name_of(props[bare])
        if own and is_name and bare.lower() == _own_noun(resource.type).lower():
            return resource.name
        if own and placeholder.endswith("Id"):
            return GENERATED_ID
        if own and placeholder.upper() == "UUID":
            return GENERATED_UUID
        if own and placeholder.lower() == _own_noun(resource.type).lower():
            return "1"  # the number a version gets on create (scoped to *)
        return None


# --- resource handlers ------------------------------------------------------------------------


def _canonical(names: Iterable[str]) -> list[Action]:
    found: list[Action] = []
    for name in names:
        action = iamdb.canonical_action(str(name))
        if action is not None and action not in found:
            found.append(action)
    return found


def _handler_actions(
    resource: Resource, operation: str, *, stack_tagged: bool = False
) -> tuple[list[Action], list[Action]]:
    """The schema's handler permissions and tagging permissions, as IAM actions.

    Tagging is needed when the resource sets tags, or when the stack has tags: CloudFormation
    propagates a stack's tags to each taggable resource it creates (``tagOnCreate``).
    """
    found = schema(resource.type)
    if found is None:
        return [], []
    handler = (found.get("handlers") or {}).get(operation) or {}
    tagging = found.get("tagging") or {}
    tag_actions: list[Action] = []
    tag_property = str(tagging.get("tagProperty", "/properties/Tags")).removeprefix("/properties/")
    propagated = stack_tagged and tagging.get("tagOnCreate", True) is not False
    creating = operation == "create"  # tags are written when a resource is made
    if (
        creating
        and tagging.get("taggable")
        and (resource.properties.get(tag_property) or propagated)
    ):
        tag_actions = [
            a
            for a in _canonical(tagging.get("permissions") or [])
            if _TAGGING_VERBS.match(a.split(":", 1)[1])
        ]
    return _canonical(handler.get("permissions") or []), tag_actions


def _narrow(resource: Resource, actions: list[Action]) -> list[Action]:
    """The handler's actions this resource's properties make it call (see the module doc)."""
    own = _own_noun(resource.type)
    service = _service_of(resource.type, actions)
    present = [p for p in _present(resource.properties) if p != "Tags"]
    same = [a for a in actions if a.startswith(f"{service}:")]
    kept: list[Action] = []
    for action in same:
        match = _VERB.match(action.split(":", 1)[1])
        verb, noun = (match.group(1), match.group(2)) if match else ("", "")
        creates = (verb in _CREATING or (verb == "Put" and noun == own)) and (
            noun.startswith(own) or len(same) <= 2
        )
        reads = verb in _READING and noun.startswith(own)
        removes = verb in _REMOVING and noun.startswith(own)
        by_property = any(_related(noun or verb, p, own) for p in present)
        # API Gateway's actions are HTTP methods: which paths they take is decided per call.
        by_method = action.split(":", 1)[1].isupper()
        if len(same) <= 2 or creates or reads or removes or by_property or by_method:
            kept.append(action)
    others: dict[str, list[Action]] = {}
    for action in actions:
        prefix = action.split(":", 1)[0]
        if prefix != service and action not in {"iam:PassRole", "s3:GetObject"}:
            others.setdefault(prefix, []).append(action)
    for prefix, group in others.items():
        named = any(p.lower().startswith(prefix) for p in present)
        nouns = [(_VERB.match(a.split(":", 1)[1]) or _VERB.match("X")) for a in group]
        matched = any(
            m is not None and _related(m.group(2), p, own) for m in nouns for p in present
        )
        if named or matched:
            kept += group
    return [a for a in kept if not not_in_event_history(a)]


def _own_types(action: Action, resource_type: str) -> list[iamdb.ResourceType]:
    """The action's IAM resource types, the one that is this CloudFormation type's first."""
    own = _own_noun(resource_type).lower()
    types = list(iamdb.resource_types(action))
    return sorted(types, key=lambda rt: not rt.key.replace("-", "").lower().startswith(own))


def _arns(action: Action, resource: Resource, names: _Names) -> list[str]:
    """The ARNs ``action`` will be checked on for ``resource`` (empty: cannot tell)."""
    if not iamdb.resource_types(action):
        return ["*"]
    if action.startswith("apigateway:"):
        return _apigateway_arns(action, resource, names)
    found = _read_of_own(action, resource, names)
    if found:
        return found
    own = _own_noun(resource.type).lower()
    for rt in _own_types(action, resource.type):
        is_own = rt.key.replace("-", "").lower().startswith(own)
        for arn_format in rt.arn_formats:
            arn = names.fill(arn_format, resource, own=is_own)
            if arn is None:
                continue
            if action.startswith("logs:") and rt.key == "log-group" and not _logs_arn_level(action):
                # NOTE: CloudWatch Logs checks its log-group actions on the group's streams:
                # a denial names "arn:aws:logs:REGION:ACCOUNT:log-group:NAME:log-stream:".
                arn += ":log-stream:"
            return [arn]
    return []


def _read_of_own(action: Action, resource: Resource, names: _Names) -> list[str]:
    """A read that stabilises a create is made on the created resource itself: a Lambda
    version's read names ``function:NAME:1``, although IAM lists the action on functions.
    The resource type of the service named for the CloudFormation type (``function version``)
    whose ARN extends one of the action's own formats is used, when there is one."""
    match = _VERB.match(action.split(":", 1)[1])
    if match is None or match.group(1) not in _READING:
        return []
    own = _own_noun(resource.type).lower()
    formats = [f for rt in iamdb.resource_types(action) for f in rt.arn_formats]
    if any(rt.key.replace("-", "").lower().startswith(own) for rt in iamdb.resource_types(action)):
        return []
    for rt in iamdb.resource_types_of_service(action.split(":", 1)[0]):
        if not rt.key.replace(" ", "").replace("-", "").lower().endswith(own):
            continue
        for arn_format in rt.arn_formats:
            if any(arn_format.startswith(f + ":") for f in formats):
                arn = names.fill(arn_format, resource, own=True)
                if arn is not None:
                    return [arn]
    return []


def _logs_arn_level(action: Action) -> bool:
    return action in {"logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource"}


@cache
def _apigateway_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("apigateway")


def _apigateway_arns(action: Action, resource: Resource, names: _Names) -> list[str]:
    """API Gateway is authorised per HTTP method on a path: the paths of the calls its
    handler makes (botocore's URIs: the create, the read, a ``Put<Property>``)."""
    method = action.split(":", 1)[1]
    model = _apigateway_model()
    own = _own_noun(resource.type)
    operations = [f"Create{own}", f"Put{own}", f"Get{own}", f"Update{own}", f"Delete{own}"]
    operations += [f"Put{p.removesuffix('s')}" for p in _present(resource.properties)]
    arns: list[str] = []
    for name in operations:
        if name not in model.operation_names:
            continue
        http = model.operation_model(name).http
        if str(http.get("method", "")).upper() != method:
            continue
        uri = str(http.get("requestUri", "")).split("?", 1)[0]
        if method == "POST" and name.startswith("Create"):
            # A create is authorised on the collection it adds to (IAM's "Resources", not
            # "Resource"): the parent's id the URI ends with is not part of it.
            uri = re.sub(r"/\{[^}]+\}$", "", uri)
        path = _fill_uri(uri, resource, names)
        arn = f"arn:{names.template.partition}:apigateway:{names.template.region}::{path}"
        if iamdb.match_resource_type(action, arn) is not None and arn not in arns:
            arns.append(arn)
    return arns


def _apigateway_tag_arns(resource: Resource, names: _Names) -> list[str]:
    """API Gateway tags a resource with ``PUT /tags/{resource_arn}``, the ARN URL-encoded."""
    from urllib.parse import quote

    model = _apigateway_model()
    name = f"Get{_own_noun(resource.type)}"
    if name not in model.operation_names:
        return []
    uri = str(model.operation_model(name).http.get("requestUri", "")).split("?", 1)[0]
    base = f"arn:{names.template.partition}:apigateway:{names.template.region}::"
    own = base + _fill_uri(uri, resource, names)
    arn = f"{base}/tags/{quote(own, safe='')}"
    return [arn] if iamdb.match_resource_type(Action("apigateway:PUT"), arn) is not None else []


def _fill_uri(uri: str, resource: Resource, names: _Names) -> str:
    props = {k.lower(): v for k, v in resource.properties.items()}

    def one(match: re.Match[str]) -> str:
        label = match.group(1).replace("_", "").lower()
        value = props.get(label)
        if value is None or _ref_target(value) is not None:
            return GENERATED_ID
        return names.name_of(value) or GENERATED_ID

    return re.sub(r"\{([^}+]+)\+?\}", one, uri)


def _origin(resource: Resource, action: Action, arn: str) -> Denial:
    # scope() reads a stack event denial's logical id and type (name patterns,
    # PassedToService): the prediction is described to it as that call's denial would be.
    return Denial(
        action=action,
        resource=arn,
        principal=None,
        reason=Reason.UNSPECIFIED,
        source="stack-event",
        message=f"{resource.logical_id} ({resource.type}) CREATE_FAILED: predicted",
        logical_id=resource.logical_id,
        resource_type=resource.type,
    )


def _scoped(action: Action, arn: str, resource: Resource | None) -> tuple[Grant, str] | None:
    origin = _origin(resource, action, arn) if resource is not None else None
    found = scope(action, arn, origin=origin)
    return (found.grant, found.note) if found is not None else None


def _dependencies(resource: Resource, names: _Names, primary: Action | None) -> list[Prediction]:
    """PassRole of each role a property names; s3:GetObject of code a property points at."""
    found: list[Prediction] = []
    why = f"{resource.logical_id} ({resource.type}) create"
    for path, value in _walk(resource.properties):
        if not path or path[0] == "Tags":
            continue
        role = names.role_arn(value) if path[-1].endswith(("Role", "RoleArn")) else None
        if role is not None:
            scoped = _scoped(Action("iam:PassRole"), role, resource)
            if scoped is not None:
                found.append(
                    Prediction(
                        scoped[0],
                        Source.DEPENDENCY,
                        f"{why}: passes the role {'.'.join(path)} names",
                        scoped[1],
                        resource.logical_id,
                        primary,
                    )
                )
        if isinstance(value, Mapping) and "S3Bucket" in value and "S3Key" in value:
            bucket, key = names.name_of(value["S3Bucket"]), value["S3Key"]
            if bucket and isinstance(key, str):
                scoped = _scoped(Action("s3:GetObject"), f"arn:aws:s3:::{bucket}/{key}", resource)
                if scoped is not None:
                    found.append(
                        Prediction(
                            scoped[0],
                            Source.DEPENDENCY,
                            f"{why}: the service reads the code {'.'.join(path)} points at",
                            scoped[1],
                            resource.logical_id,
                            primary,
                        )
                    )
    return found


def _primary(actions: list[Action], resource: Resource) -> Action | None:
    own = _own_noun(resource.type)
    for action in actions:
        match = _VERB.match(action.split(":", 1)[1])
        if match and match.group(1) in _CREATING and match.group(2).startswith(own):
            return action
    return actions[0] if actions else None


def predict_resource(
    resource: Resource, template: ServiceTemplate, operation: str = "create"
) -> list[Prediction]:
    """What creating (``operation``) ``resource`` needs, scoped to its names."""
    names = _Names(template)
    actions, tag_actions = _handler_actions(
        resource, operation, stack_tagged=bool(template.stack_tags)
    )
    kept = _narrow(resource, actions)
    found: list[Prediction] = []
    why = f"{resource.logical_id} ({resource.type}) {operation}"
    for source, group in ((Source.HANDLER, kept), (Source.TAGGING, tag_actions)):
        for action in group:
            tagging = source is Source.TAGGING and action.startswith("apigateway:")
            arns = (
                _apigateway_tag_arns(resource, names) if tagging else _arns(action, resource, names)
            )
            for arn in arns:
                scoped = _scoped(action, arn, resource)
                if scoped is not None:
                    found.append(Prediction(scoped[0], source, why, scoped[1], resource.logical_id))
    if "iam:PassRole" in actions or "s3:GetObject" in actions:
        found += _dependencies(resource, names, _primary(kept, resource))
    return found


# --- the CLI's own calls ------------------------------------------------------------------------


@cache
def cli_calls(cli: str, command: str = "deploy") -> tuple[Mapping[str, str], ...]:
    """The calls a deploy CLI makes itself in ``command`` (deploy, remove), as recorded in
    ``discover/data/CLI.json``."""
    path = package_data.files("discover") / "data" / f"{cli}.json"
    if not path.is_file():
        return ()
    data = json.loads(path.read_text(encoding="utf-8"))
    return tuple(data.get(command, ()))


# A stack's id is generated on create: any id stands for it (scoped to *).
_GENERATED_STACK_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def _cli_arns(target: str, template: ServiceTemplate) -> list[str]:  # noqa: PLR0911 - one return per target
    partition, region, account = template.partition, template.region, template.account
    bucket = template.deployment_bucket_name
    if target == "*":
        return ["*"]
    if target in {"stack", "managed-stack"}:
        names = (
            [template.stack_name] if target == "stack" else [m.stack_name for m in template.managed]
        )
        return [
            f"arn:{partition}:cloudformation:{region}:{account}:stack/{name}/{_GENERATED_STACK_ID}"
            for name in names
        ]
    if target == "companion-stacks":
        # NOTE: sam delete looks for the stacks SAM names after the service's: its image
        # repositories' and its web functions' code bucket's (samcli/lib/bootstrap).
        digest = hashlib.md5(template.stack_name.encode(), usedforsecurity=False).hexdigest()[:8]
        names = [
            f"{template.stack_name[:104]}-{digest}-CompanionStack",
            f"{template.stack_name[:100]}-{digest}-WebFunctionCode",
        ]
        return [
            f"arn:{partition}:cloudformation:{region}:{account}:stack/{n}/{_GENERATED_STACK_ID}"
            for n in names
        ]
    if target == "transform":
        # NOTE: a template declaring AWS's SAM transform needs CreateChangeSet on it.
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/transform-aws-serverless.html
        return [f"arn:{partition}:cloudformation:{region}:aws:transform/Serverless-2016-10-31"]
    if target == "deployment-bucket" and bucket:
        return [f"arn:{partition}:s3:::{bucket}"]
    if target == "artifacts" and bucket and template.artifact_prefix:
        build = "1700000000000-2023-11-14T22:13:20.000Z"  # the CLI's build folder: scoped to *
        return [f"arn:{partition}:s3:::{bucket}/{template.artifact_prefix}{build}/artifact.zip"]
    if target == "functions":
        return [
            f"arn:{partition}:lambda:{region}:{account}:function:{r.name}"
            for r in template.resources
            if r.type == "AWS::Lambda::Function" and r.name
        ]
    return []


def predict_cli(
    template: ServiceTemplate, cli: str = "serverless", command: str = "deploy"
) -> list[Prediction]:
    """The CLI's own calls, on the service's own stack, bucket, artifacts and functions."""
    found: list[Prediction] = []
    bucket = template.resource(template.deployment_bucket or "")
    for call in cli_calls(cli, command):
        action = iamdb.canonical_action(call["action"])
        if action is None:
            continue
        for arn in _cli_arns(call["on"], template):
            origin = bucket if call["on"] in {"deployment-bucket", "artifacts"} else None
            scoped = _scoped(action, arn, origin)
            if scoped is not None:
                why = f"{cli} {command}: {call['call']}"
                found.append(Prediction(scoped[0], Source.CLI, why, scoped[1]))
    return found


def predict(
    template: ServiceTemplate,
    *,
    cli: str | None = "serverless",
    operation: str = "create",
    command: str = "deploy",
) -> tuple[Prediction, ...]:
    """Everything one step of ``template``'s life is predicted to need, one prediction per
    grant (the first reason kept), sorted: each resource's ``operation`` handler (create,
    update, delete) and the CLI's own calls in ``command`` (deploy, remove)."""
    found: list[Prediction] = []
    for resource in template.resources:
        found += predict_resource(resource, template, operation)
    if operation == "create":  # the CLI's own stacks are made on a first deploy, kept after
        for managed in template.managed:
            for resource in managed.resources:
                found += predict_resource(resource, managed, operation)
    if cli is not None:
        found += predict_cli(template, cli, command)
    unique: dict[Grant, Prediction] = {}
    for prediction in found:
        unique.setdefault(prediction.grant, prediction)
    return tuple(sorted(unique.values()))
