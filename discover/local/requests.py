"""What one HTTP request asks for, in IAM's terms: the action, and the resource it acts on.

An SDK call names an operation (``HeadBucket``, ``GetFunction``); IAM checks an action
(``s3:ListBucket``, ``lambda:GetFunction``) on a resource ARN (the bucket, the function). The
operation -> action step is :func:`discover.operations.operation_to_action` (botocore models,
IAM data, a small table of renamed operations); the resource is read from the request's
parameters by one small resolver per service, in the format IAM documents for the action's
resource type. An action IAM gives no resource type is checked on ``*``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from discover import iamdb, operations
from discover.iamdb import Action


@dataclass(frozen=True, slots=True)
class Request:
    """What the authorizer knows about one call."""

    service: str  # the signing name: "s3", "cloudformation", "lambda", ...
    operation: str  # the SDK operation moto resolved ("ListObjectsV2", "GetFunction")
    method: str
    path: str
    params: Mapping[str, Any]  # query string, JSON body and URI parameters, merged
    account: str
    region: str
    body: bytes = b""


# --- the action ---------------------------------------------------------------------------------

# NOTE: moto 5.2.5 names a few S3 requests by its own labels rather than an SDK operation
# (moto/s3/responses.py ACTION_MAP): map those to the IAM action directly.
_MOTO_S3_LABELS: dict[str, str] = {
    "ListAllMyBuckets": "s3:ListAllMyBuckets",
    "ListBucket": "s3:ListBucket",
    "SelectObject": "s3:GetObject",
    "DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
}


def iam_action(request: Request) -> str:
    """The IAM action checked for ``request``, canonical when IAM knows it."""
    known = operations.operation_to_action(request.service, request.operation)
    if known is not None:
        return known
    if request.service == "s3" and request.operation in _MOTO_S3_LABELS:
        return _MOTO_S3_LABELS[request.operation]
    named = f"{request.service}:{request.operation}"
    return iamdb.canonical_action(named) or named


# --- the resource -------------------------------------------------------------------------------


def _param(request: Request, *names: str) -> str:
    for name in names:
        value = request.params.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return str(value)
    return ""


def _stack_arn(request: Request) -> str:
    name = _param(request, "StackName")
    if not name:
        change_set = _param(request, "ChangeSetName")
        if change_set.startswith("arn:"):
            name = _stack_of_change_set(request, change_set)
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


def _stack_of_change_set(request: Request, change_set_arn: str) -> str:
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends[request.account][request.region]
    change_set = backend.change_sets.get(change_set_arn)
    return str(change_set.stack_id) if change_set is not None else ""


def _apigateway_path_arn(request: Request, action: str) -> str:
    # API Gateway authorises on the request's path; where IAM documents a shorter one for
    # the action (CreateResource posts under its parent, IAM names the collection), the
    # longest prefix that fits one of the action's ARN formats is it.
    path = unquote(urlparse(request.path).path).rstrip("/")
    base = f"arn:aws:apigateway:{request.region}::"
    canonical = iamdb.canonical_action(action)
    if canonical is None or not iamdb.resource_types(Action(canonical)):
        return base + path
    segments = path.split("/")
    for end in range(len(segments), 1, -1):
        candidate = base + "/".join(segments[:end])
        if iamdb.match_resource_type(Action(canonical), candidate) is not None:
            return candidate
    return base + path


def _lambda_arn(request: Request) -> str:
    uuid = _param(request, "UUID")
    if uuid:
        return f"arn:aws:lambda:{request.region}:{request.account}:event-source-mapping:{uuid}"
    name = unquote(_param(request, "FunctionName"))
    if not name:
        arn = _param(request, "Resource", "ARN")
        return unquote(arn) if arn else "*"
    if name.startswith("arn:"):
        return name
    if ":function:" in name:  # a partial ARN: ACCOUNT:function:NAME
        return f"arn:aws:lambda:{request.region}:{name}"
    qualifier = _param(request, "Qualifier")
    suffix = f":{qualifier}" if qualifier else ""
    return f"arn:aws:lambda:{request.region}:{request.account}:function:{name}{suffix}"


# CloudWatch Logs checks its log-group actions on the group's streams: a denial reads
# "on resource: arn:aws:logs:REGION:ACCOUNT:log-group:NAME:log-stream:".
_LOGS_ARN_ACTIONS = frozenset(
    {"logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource"}
)


def _logs_arn(request: Request, action: str) -> str:
    arn = _param(request, "resourceArn")
    if arn:
        return arn
    group = _param(request, "logGroupName", "logGroupIdentifier")
    if not group:
        return "*"
    if group.startswith("arn:"):
        return group
    base = f"arn:aws:logs:{request.region}:{request.account}:log-group:{group}"
    if action in _LOGS_ARN_ACTIONS:
        return base
    stream = _param(request, "logStreamName")
    return f"{base}:log-stream:{stream}"


def _dynamodb_arn(request: Request) -> str:
    arn = _param(request, "ResourceArn")
    if arn:
        return arn
    table = _param(request, "TableName")
    if not table:
        return "*"
    if table.startswith("arn:"):
        return table
    return f"arn:aws:dynamodb:{request.region}:{request.account}:table/{table}"


def _sqs_arn(request: Request) -> str:
    url = _param(request, "QueueUrl")
    name = url.rstrip("/").rsplit("/", 1)[-1] if url else _param(request, "QueueName")
    if not name:
        return "*"
    return f"arn:aws:sqs:{request.region}:{request.account}:{name}"


def _sns_arn(request: Request) -> str:
    arn = _param(request, "TopicArn", "ResourceArn", "TargetArn")
    if arn:
        return arn
    subscription = _param(request, "SubscriptionArn")
    if subscription.count(":") >= 6:
        return subscription.rsplit(":", 1)[0]  # the topic a subscription belongs to
    name = _param(request, "Name")
    if name:
        return f"arn:aws:sns:{request.region}:{request.account}:{name}"
    return "*"


def _events_arn(request: Request) -> str:
    arn = _param(request, "ResourceARN")
    if arn:
        return arn
    rule = _param(request, "Rule", "Name")
    if not rule or request.operation.endswith("EventBus"):
        return "*"
    bus = _param(request, "EventBusName")
    bus_part = f"{bus}/" if bus and bus != "default" else ""
    return f"arn:aws:events:{request.region}:{request.account}:rule/{bus_part}{rule}"


# IAM names its resources by kind and name (with the path, for those created with one).
_IAM_NAMED = (
    ("UserName", "user"),
    ("GroupName", "group"),
    ("InstanceProfileName", "instance-profile"),
)


def _iam_arn(request: Request) -> str:
    role = _param(request, "RoleName")
    if role:
        return _role_arn(request, role)
    policy_arn = _param(request, "PolicyArn")
    if policy_arn:
        return policy_arn
    for param, kind in _IAM_NAMED:
        name = _param(request, param)
        if name:
            return f"arn:aws:iam::{request.account}:{kind}/{name}"
    policy = _param(request, "PolicyName")
    if policy and request.operation == "CreatePolicy":
        path = _param(request, "Path") or "/"
        return f"arn:aws:iam::{request.account}:policy{path}{policy}"
    return "*"


def _role_arn(request: Request, role: str) -> str:
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends

    try:
        return str(iam_backends[request.account]["aws"].get_role(role).arn)
    except NotFoundException:
        path = _param(request, "Path") or "/"
        return f"arn:aws:iam::{request.account}:role{path}{role}"


def _sts_arn(request: Request) -> str:
    return _param(request, "RoleArn") or "*"


_Resolver = Callable[[Request, str], str]
_RESOLVERS: dict[str, _Resolver] = {
    "cloudformation": lambda r, _a: _stack_arn(r),
    "apigateway": _apigateway_path_arn,
    "lambda": lambda r, _a: _lambda_arn(r),
    "logs": _logs_arn,
    "dynamodb": lambda r, _a: _dynamodb_arn(r),
    "sqs": lambda r, _a: _sqs_arn(r),
    "sns": lambda r, _a: _sns_arn(r),
    "events": lambda r, _a: _events_arn(r),
    "iam": lambda r, _a: _iam_arn(r),
    "sts": lambda r, _a: _sts_arn(r),
}


def resource_arn(request: Request, action: str, moto_resource: str = "*") -> str:
    """The ARN ``request`` acts on, as IAM checks ``action``; ``*`` when the action has none."""
    canonical = iamdb.canonical_action(action)
    if canonical is not None and not iamdb.resource_types(Action(canonical)):
        return "*"
    resolver = _RESOLVERS.get(request.service)
    if resolver is not None:
        return resolver(request, action)
    if request.service == "s3":
        return moto_resource if moto_resource != "arn:aws:s3:::*" else "*"
    return moto_resource


# --- condition keys the request itself sets -----------------------------------------------


def request_context(request: Request) -> dict[str, str]:
    """Request-level condition keys (the principal's own keys are added by the caller)."""
    return {"aws:RequestedRegion": request.region}


# --- more than one check for one request ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One authorization a request needs: the action, its resource, extra condition keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def _lambda_role_checks(request: Request) -> list[Check]:
    # CreateFunction and UpdateFunctionConfiguration pass the execution role to Lambda, and
    # Lambda reads the code from S3 with the caller's permissions.
    # https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html
    checks: list[Check] = []
    role = _param(request, "Role")
    if role:
        context = {"iam:PassedToService": "lambda.amazonaws.com"}
        checks.append(Check("iam:PassRole", role, context))
    code = request.params.get("Code")
    if isinstance(code, Mapping) and code.get("S3Bucket") and code.get("S3Key"):
        checks.append(Check("s3:GetObject", f"arn:aws:s3:::{code['S3Bucket']}/{code['S3Key']}"))
    return checks


def _service_role_checks(request: Request) -> list[Check]:
    # NOTE: a stack operation given a service role (RoleARN) passes it to CloudFormation, and
    # IAM checks iam:PassRole of it for the caller then, with the service in the context.
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html
    role = _param(request, "RoleARN")
    if not role:
        return []
    return [Check("iam:PassRole", role, {"iam:PassedToService": "cloudformation.amazonaws.com"})]


_EXTRA_CHECKS: dict[tuple[str, str], Callable[[Request], list[Check]]] = {
    ("cloudformation", "CreateStack"): _service_role_checks,
    ("cloudformation", "CreateChangeSet"): _service_role_checks,
    ("cloudformation", "UpdateStack"): _service_role_checks,
    ("cloudformation", "DeleteStack"): _service_role_checks,
    ("cloudformation", "ContinueUpdateRollback"): _service_role_checks,
    ("lambda", "CreateFunction"): _lambda_role_checks,
    ("lambda", "UpdateFunctionConfiguration"): _lambda_role_checks,
    ("lambda", "UpdateFunctionCode"): _lambda_role_checks,
}


def _deleted_keys(body: bytes) -> list[str]:
    import xmltodict  # type: ignore[import-untyped]

    try:
        document = xmltodict.parse(body or b"<Delete/>")
    except Exception:  # a malformed body is S3's to refuse, not ours
        return []
    objects = (document.get("Delete") or {}).get("Object") or []
    objects = objects if isinstance(objects, list) else [objects]
    return [str(o.get("Key")) for o in objects if isinstance(o, Mapping) and o.get("Key")]


def checks_for(request: Request, moto_resource: str = "*") -> list[Check]:
    """Every authorization ``request`` needs, in the order AWS makes them."""
    action = iam_action(request)
    if (request.service, request.operation) == ("s3", "DeleteObjects"):
        # NOTE: S3 checks s3:DeleteObject per key of a DeleteObjects request (and reports
        # refusals per key in a 200 answer; the sandbox refuses the whole request instead).
        bucket = moto_resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        keys = _deleted_keys(request.body)
        if keys:
            return [Check("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}") for k in keys]
    first = Check(action, resource_arn(request, action, moto_resource))
    extra = _EXTRA_CHECKS.get((request.service, request.operation))
    return [first, *(extra(request) if extra else [])]
