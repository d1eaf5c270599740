"""From a denied (action, resource) to the narrowest stable grant that covers it.

The resource is matched to one of the action's resource types (IAM data ARN formats) and
generalised placeholder by placeholder, never beyond the format: the parts that change from
one deploy to the next (stack ids, random suffixes CloudFormation appends, build folders in
object keys) become ``*``; the parts that name the service and stage stay. ``*`` alone is used
only where IAM has no resource type for the action, or the denial named no resource at all; a
resource that is named but cannot be read as an ARN is not granted (the loop reports it).

Role names stay exact. Serverless names its roles from the service, stage and region
(``demo-dev-us-east-1-lambdaRole``), so the name is already stable from deploy to deploy, and
the actions that take a role (``iam:PassRole``, ``iam:PutRolePolicy``, ``iam:CreateRole``) are
the ones a wildcard makes dangerous: ``role/demo-dev-*`` would let the deploy role pass or
rewrite any role whose name happens to start that way. Only a suffix CloudFormation generated
(``demo-dev-MyRole-1A2B3C4D5E6F``) is replaced, as for every other name.

The text a denial comes from is untrusted: a wildcard in it is never taken as a pattern, with
one exception AWS itself writes: a trailing ``/*`` where a stack's id or the objects of one
bucket go (``stack/demo-dev/*`` for a stack that does not exist yet).
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote, unquote

from discover import iamdb
from discover.denials import Denial
from discover.iamdb import Action
from discover.policy import Condition, Grant

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_SUFFIXED = re.compile(r"^(?P<stem>.+-)(?P<suffix>[A-Za-z0-9]+)$")
_ID_SEGMENT = re.compile(r"^[A-Za-z0-9]+$")
# Ids of resources that outlive deploys and are shared (a KMS key): a deploy uses one it was
# given, rarely one it creates, and "*" there would reach every key in the account.
_LONG_LIVED_IDS = frozenset({"KeyId"})
_VERSIONED = re.compile(r"^(?P<name>[^:*?]+):(?:[0-9]+|\$LATEST)$")
_VARIABLE_SEGMENT = re.compile(r"^(?=.*\d)[0-9A-Za-z_.:-]{8,}$")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
_FIXED_PLACEHOLDERS = frozenset({"Partition", "Region", "Account"})
# Where AWS writes "*" itself: the id of a stack not created yet, the objects of a bucket.
_TRAILING_WILDCARD_PLACEHOLDERS = frozenset({"Id", "StackId", "ChangeSetId", "ObjectName"})
# A name IAM writes as "role NAME" (older messages) instead of an ARN.
_IAM_NAMED = re.compile(
    r"^(?P<key>role|user|group|policy|instance-profile) (?P<name>[\w+=,.@/-]+)$"
)
_PRINCIPAL = re.compile(r"^arn:(?P<partition>aws[a-z-]*):(?:iam|sts)::(?P<account>\d{12}):")

# The service a role is passed to when CloudFormation creates a resource of a given type (the
# type's role property: Lambda's Role, a state machine's RoleArn, ...). Only used for the
# ``iam:PassedToService`` condition, and only where IAM lists that key for the action.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService
PASSED_TO_SERVICE: dict[str, str] = {
    "AWS::ApiGateway::Account": "apigateway.amazonaws.com",
    "AWS::ApiGateway::Method": "apigateway.amazonaws.com",
    "AWS::ApiGatewayV2::Integration": "apigateway.amazonaws.com",
    "AWS::AppSync::DataSource": "appsync.amazonaws.com",
    "AWS::CodeBuild::Project": "codebuild.amazonaws.com",
    "AWS::Cognito::UserPool": "cognito-idp.amazonaws.com",
    "AWS::ECS::TaskDefinition": "ecs-tasks.amazonaws.com",
    "AWS::Events::Rule": "events.amazonaws.com",
    "AWS::IoT::TopicRule": "iot.amazonaws.com",
    "AWS::KinesisFirehose::DeliveryStream": "firehose.amazonaws.com",
    "AWS::Lambda::Function": "lambda.amazonaws.com",
    "AWS::Logs::SubscriptionFilter": "logs.amazonaws.com",
    "AWS::Pipes::Pipe": "pipes.amazonaws.com",
    "AWS::Scheduler::Schedule": "scheduler.amazonaws.com",
    "AWS::StepFunctions::StateMachine": "states.amazonaws.com",
}
PASSED_TO_SERVICE_KEY = "iam:PassedToService"


@dataclass(frozen=True, slots=True)
class Scoped:
    """A grant and, for the report, why its resource is what it is."""

    grant: Grant
    note: str


@dataclass(frozen=True, slots=True)
class StackResource:
    """The template resource a stack-event denial was about."""

    logical_id: str
    resource_type: str


def stack_resource(denial: Denial) -> StackResource | None:
    """The logical id and type of a stack-event denial's resource (None when it has none).

    Read from the denial's fields, never from its message: rewording a message must not
    change a grant.
    """
    if denial.logical_id is None or denial.resource_type is None:
        return None
    return StackResource(denial.logical_id, denial.resource_type)


# --- one placeholder at a time ----------------------------------------------------------------


def _is_name(placeholder: str) -> bool:
    return placeholder.endswith(("Name", "NameWithPath"))


def _is_generated_id(placeholder: str, value: str) -> bool:
    return not _is_name(placeholder) and (placeholder.endswith("Id") or bool(_UUID.match(value)))


def _looks_random(token: str) -> bool:
    """A suffix CloudFormation generates: 12+ letters and digits of one case, well mixed."""
    runs = len(re.findall(r"[0-9]+|[A-Za-z]+", token))
    single_case = token.isupper() or token.islower()
    return len(token) >= 12 and single_case and runs >= 3


def _names_logical_id(stem: str, logical_id: str) -> bool:
    # CloudFormation names what the template leaves unnamed STACK-LOGICALID-SUFFIX, cutting
    # the logical id short when the name would be too long: the stem's last segment is the
    # logical id or its start (a service named like the logical id is not enough).
    last = stem.lower().rstrip("-").rsplit("-", 1)[-1]
    wanted = logical_id.lower()
    return bool(last) and wanted.startswith(last) and len(last) >= min(len(wanted), 8)


@dataclass(frozen=True, slots=True)
class _Context:
    """What scoping one ARN may use besides the ARN: its origin and the grants made so far."""

    action: Action
    type_key: str
    logical_id: str | None
    # Name stems already granted as ``stem*`` (by placeholder), and the exact generated ids
    # already granted for an (action, resource type, placeholder).
    stems: Mapping[str, frozenset[str]]
    ids: Mapping[tuple[str, str, str], frozenset[str]]
    # "service:Placeholder" already granted as * (a REST API id, once seen to change).
    changing: frozenset[str]


_Ids = dict[tuple[str, str, str], frozenset[str]]


def _learned(granted: Iterable[Grant]) -> tuple[dict[str, frozenset[str]], _Ids, frozenset[str]]:
    stems: dict[str, set[str]] = defaultdict(set)
    ids: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    changing: set[str] = set()
    for grant in granted:
        resource_type = iamdb.match_resource_type(grant.action, grant.resource)
        found = resource_type.matching_format(grant.resource) if resource_type else None
        if resource_type is None or found is None:
            continue
        for name, value in found[1].groupdict().items():
            if value is None:
                continue
            if _is_name(name) and re.fullmatch(r"[^*?]+-\*", value):
                stems[name].add(value[:-1])
            elif _is_generated_id(name, value) and value == "*":
                changing.add(f"{resource_type.service}:{name}")
            elif _is_generated_id(name, value) and _ID_SEGMENT.match(value):
                ids[(grant.action, resource_type.key, name)].add(value)
    return (
        {k: frozenset(v) for k, v in stems.items()},
        {k: frozenset(v) for k, v in ids.items()},
        frozenset(changing),
    )


def _generalise_name(placeholder: str, value: str, context: _Context) -> tuple[str, str]:
    version = _VERSIONED.match(value)
    if version is not None:
        # Every deploy publishes a new version of a function (name:1, name:2, ...).
        return f"{version.group('name')}:*", f"{placeholder}: version number -> *"
    match = _SUFFIXED.match(value)
    if match is None:
        return value, ""
    stem, suffix = match.group("stem"), match.group("suffix")
    one_case = suffix.isupper() or suffix.islower()
    logical_id = context.logical_id
    if logical_id and len(suffix) >= 8 and one_case and _names_logical_id(stem, logical_id):
        return f"{stem}*", f"{placeholder}: suffix CloudFormation generated for {logical_id} -> *"
    if _looks_random(suffix):
        return f"{stem}*", f"{placeholder}: random suffix -> *"
    # A suffix that does not look random (all letters, say) after a stem already granted as
    # stem* for a name that did: the same resource, created again.
    if len(suffix) >= 8 and one_case and stem in context.stems.get(placeholder, ()):
        return f"{stem}*", f"{placeholder}: suffix -> *, as already granted for {stem}*"
    return value, ""


def _generalise_object_key(placeholder: str, value: str) -> tuple[str, str]:
    # Keep the key's stable prefix (serverless/SERVICE/STAGE/), drop the build folder on.
    segments = value.split("/")
    for index, segment in enumerate(segments):
        if _VARIABLE_SEGMENT.match(segment) or "." in segment:
            kept = "/".join([*segments[:index], "*"])
            return kept, f"{placeholder}: the part after its stable prefix -> *"
    return value, ""


def _generalise_value(  # noqa: PLR0911 - one return per kind of placeholder
    placeholder: str, value: str, values: dict[str, str], context: _Context
) -> tuple[str, str]:
    """The value for one placeholder, and what was done (empty when kept)."""
    if placeholder in _FIXED_PLACEHOLDERS:
        return value, ""
    if value == "*":
        return value, f"{placeholder}: * as AWS wrote it"
    if placeholder == "ObjectName":
        return _generalise_object_key(placeholder, value)
    if placeholder == "UrlEncodedResourceARN":
        return _generalise_encoded_arn(placeholder, value, context)
    if placeholder == "LayerVersion" and value.isdigit():
        # Every deploy that changes a layer publishes its next version (shared:1, shared:2...).
        return "*", f"{placeholder}: version number -> *"
    if _is_name(placeholder):
        return _generalise_name(placeholder, value, context)
    if _is_generated_id(placeholder, value):
        return _generalise_id(placeholder, value, values, context)
    return value, ""


def _generalise_encoded_arn(placeholder: str, value: str, context: _Context) -> tuple[str, str]:
    # API Gateway tags name the tagged resource by its URL-encoded ARN (/tags/arn%3Aaws...):
    # the ids generated inside it change on every create, as in the resource's own ARN.
    inner = unquote(value)
    if not inner.startswith("arn:") or "*" in inner:
        return value, ""
    found = generalise(context.action, inner) or _generated_path_ids(context.action, inner)
    if found is None or found[0] == inner:
        return value, ""
    return quote(found[0], safe="*"), f"{placeholder}: generated ids in the tagged ARN -> *"


def _generalise_id(
    placeholder: str, value: str, values: dict[str, str], context: _Context
) -> tuple[str, str]:
    if _has_name(values, placeholder):
        return "*", f"{placeholder} (a generated id) -> *"
    # A generated id (a REST API's, a KMS key's) differs on every create, and in every account
    # the policy will be used in: it is never worth keeping, even where it alone names the
    # resource. (Keeping it costs one more deploy run per id, and fails in production.)
    if placeholder in _LONG_LIVED_IDS:
        return value, ""
    if _ID_SEGMENT.match(value) or _UUID.match(value):
        return "*", f"{placeholder}: a generated id, new on every create -> *"
    return value, ""


def _has_name(values: dict[str, str], besides: str) -> bool:
    return any(_is_name(name) and value != "*" for name, value in values.items() if name != besides)


# --- a whole ARN --------------------------------------------------------------------------------


def generalise(
    action: Action,
    arn: str,
    *,
    logical_id: str | None = None,
    granted: Iterable[Grant] = (),
) -> tuple[str, str] | None:
    """``arn`` generalised within its resource type's format, and a note saying how.

    ``granted`` (the grants made so far) tells names and ids that turned out to change from
    one deploy to the next. None when the ARN holds a wildcard anywhere AWS would not write one.
    """
    # The type whose format fits without letting a placeholder span a "/" comes first (an API
    # Gateway method, not its REST API with a long tail).
    rt = iamdb.match_resource_type(action, arn)
    found = rt.matching_format(arn) if rt is not None else None
    if rt is not None and found is not None and not _swallows_path(found[1]):
        context = _Context(action, rt.key, logical_id, *_learned(granted))
        return _generalise_in_format(arn, rt.key, found, context)
    if "*" in arn:
        return None
    learned = _generated_path_ids(action, arn) or _learned_segments(action, arn, granted)
    if learned is not None:
        return learned
    return arn, "exact ARN, as denied (no resource type of the action has its format)"


def _swallows_path(match: re.Match[str]) -> bool:
    """True when an id took the rest of a path (``/restapis/ID`` read from a method's ARN):
    the format does not really fit, the path is of a type the IAM data does not list."""
    return any(
        value is not None and "/" in value and _is_generated_id(name, value)
        for name, value in match.groupdict().items()
    )


def _generalise_in_format(
    arn: str, type_key: str, found: tuple[str, re.Match[str]], context: _Context
) -> tuple[str, str] | None:
    arn_format, match = found
    values = {k: v for k, v in match.groupdict().items() if v is not None}
    if any(
        "*" in v and not (v == "*" and k in _TRAILING_WILDCARD_PLACEHOLDERS)
        for k, v in values.items()
    ):
        return None
    names = _PLACEHOLDER.findall(arn_format)
    if len(names) != len(set(names)) or set(names) != set(values):
        # A placeholder that repeats (rare) or was not captured: keep the concrete ARN.
        return arn, f"exact {type_key} ARN (its format could not be resolved)"
    generalised: dict[str, str] = {}
    changes: list[str] = []
    for name, value in values.items():
        generalised[name], change = _generalise_value(name, value, values, context)
        if change:
            changes.append(change)
    # One pass over the format: a value that looks like a placeholder stays text.
    result = _PLACEHOLDER.sub(lambda m: generalised[m.group(1)], arn_format)
    if result == arn and not changes:
        return arn, f"exact {type_key} ARN: nothing in it changes from deploy to deploy"
    return result, f"{type_key}: {'; '.join(changes)}"


def _learned_segments(action: Action, arn: str, granted: Iterable[Grant]) -> tuple[str, str] | None:
    """An ARN the IAM data has no format for (API Gateway paths, often), generalised where the
    same action was granted on an ARN that differs from it only in id-like path segments: those
    segments change from one deploy to the next."""
    segments = arn.split("/")
    changing: set[int] = set()
    for grant in sorted(granted):
        if grant.action != action or grant.resource == arn:
            continue
        other = grant.resource.split("/")
        if len(other) != len(segments) or other[0] != segments[0]:
            continue
        differ = {i for i, (a, b) in enumerate(zip(segments, other, strict=True)) if a != b}
        if any(i - 1 in differ for i in differ):
            continue  # an id changes under the same parent, not a path into another collection
        if all(
            _ID_SEGMENT.match(segments[i]) and (other[i] == "*" or _ID_SEGMENT.match(other[i]))
            for i in differ
        ):
            changing |= differ
    if not changing:
        return None
    pattern = "/".join("*" if i in changing else s for i, s in enumerate(segments))
    return pattern, "ids in the path that changed between runs -> *"


@cache
def _id_collections(service: str) -> frozenset[str]:
    """Path segments after which the service's ARN formats put a generated id (``restapis``
    before ``${RestApiId}``), read from every resource type of the service in the IAM data."""
    collections: set[str] = set()
    for rt in iamdb.resource_types_of_service(service):
        for arn_format in rt.arn_formats:
            parts = arn_format.split("/")
            for before, after in itertools.pairwise(parts):
                placeholder = _PLACEHOLDER.fullmatch(after)
                if placeholder and placeholder.group(1).endswith("Id") and "$" not in before:
                    collections.add(before)
    return frozenset(collections)


def _generated_path_ids(action: Action, arn: str) -> tuple[str, str] | None:
    """A path ARN no format fits (an API Gateway method's integration, say), with the ids that
    follow a collection segment (``restapis/ID``) generalised: they are generated on create."""
    collections = _id_collections(action.split(":", 1)[0])
    segments = arn.split("/")
    changed = False
    for i in range(1, len(segments)):
        if segments[i - 1] in collections and _ID_SEGMENT.match(segments[i]):
            segments[i] = "*"
            changed = True
    if not changed:
        return None
    return "/".join(segments), "generated ids in the path -> *"


def _arn_from_iam_name(action: Action, resource: str, origin: Denial | None) -> str | None:
    """``role NAME`` (IAM's older messages) as the ARN in the denied principal's account."""
    named = _IAM_NAMED.match(resource)
    if named is None or origin is None or origin.principal is None:
        return None
    principal = _PRINCIPAL.match(origin.principal)
    if principal is None:
        return None
    key = named.group("key")
    if not any(rt.service == "iam" and rt.key == key for rt in iamdb.resource_types(action)):
        return None
    return (
        f"arn:{principal.group('partition')}:iam::{principal.group('account')}:"
        f"{key}/{named.group('name')}"
    )


def _passed_to_service(action: Action, origin: Denial | None) -> tuple[Condition, str]:
    """``iam:PassedToService`` for a role a stack resource takes, from the denial's fields.

    Only a stack event's denial says which resource (and so which service) the role goes to;
    a denial read from the CLI's output does not, and its message is never read for it: the
    same refusal comes from the stack's events too, and that copy is the one kept.
    """
    if origin is None or PASSED_TO_SERVICE_KEY not in iamdb.condition_keys(action):
        return (), ""
    resource = stack_resource(origin)
    if resource is None or resource.resource_type not in PASSED_TO_SERVICE:
        return (), ""
    service = PASSED_TO_SERVICE[resource.resource_type]
    condition: Condition = (("StringEquals", PASSED_TO_SERVICE_KEY, (service,)),)
    why = f"{resource.logical_id}, {resource.resource_type}"
    return condition, f"; passed only to {service} ({why})"


def scope(
    action: Action,
    resource: str | None,
    *,
    origin: Denial | None = None,
    granted: Iterable[Grant] = (),
) -> Scoped | None:
    """The grant for a denial of ``action`` on ``resource`` (None: nothing safe to grant).

    ``origin`` is the denial itself, when known: a stack event's logical id and resource type
    refine the name patterns and give ``iam:PassRole`` its ``iam:PassedToService`` condition;
    its principal turns IAM's ``role NAME`` into an ARN. ``granted`` is the policy so far: a
    name already granted as ``stem*``, or an id that changed between runs, is generalised the
    same way again.

    Returns None when the resource is not something to grant on: a wildcard inside a name
    comes from text someone chose and is never taken as a pattern, and a resource named in a
    form that is not an ARN cannot be scoped (granting ``*`` instead would widen it).
    """
    types = iamdb.resource_types(action)
    if not types:
        return Scoped(Grant(action, "*"), "IAM defines no resource type for this action")
    if resource is None or resource == "*":
        return Scoped(Grant(action, "*"), "the denial named no resource")
    if "?" in resource:
        return None
    arn = resource if resource.startswith("arn:") else _arn_from_iam_name(action, resource, origin)
    if arn is None or not iamdb.is_concrete_arn(arn):
        return None  # not an ARN, or redacted/templated (arn:aws:iam::<account>:role/x)
    resource = arn
    stack = stack_resource(origin) if origin is not None else None
    logical_id = stack.logical_id if stack else None
    generalised = generalise(action, resource, logical_id=logical_id, granted=granted)
    if generalised is None:
        return None
    pattern, note = generalised
    condition, condition_note = _passed_to_service(action, origin)
    return Scoped(Grant(action, pattern, condition), note + condition_note)
