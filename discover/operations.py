"""API operations and the IAM actions that authorise them.

An SDK names what it called by operation (``ListObjectsV2``, ``HeadBucket``, ``Invoke``); IAM
names what it checks by action (``s3:ListBucket``, ``lambda:InvokeFunction``). Most pairs share
their name; the ones that do not are listed here, each with a comment.

``operation_to_action(service, operation)`` answers with botocore's service models (which
operations a service has, its signing name and endpoint prefix, the HTTP method of each
operation) and the IAM data (which actions exist). ``service`` is a botocore service name
(``logs``, ``elbv2``, ``stepfunctions``) or a signing name / endpoint prefix (``monitoring``,
``elasticloadbalancing``, ``states``); a name botocore does not know is taken as an IAM
service prefix.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # botocore is imported when a model is first read: a quarter of a second
    import botocore.loaders
    from botocore.model import ServiceModel

from discover import iamdb
from discover.iamdb import Action

# --- operations whose action has another name ----------------------------------------------
#
# Keyed by (IAM service prefix, operation). The first action is the one the operation is
# checked against first; the others it may need as well (a copy also reads its source).
# NOTE: the Service Authorization Reference lists, per action, the operations it covers:
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
_RENAMED: dict[tuple[str, str], tuple[str, ...]] = {
    # S3 checks listing, heads and multipart steps against the broader object/bucket actions.
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjectVersions"): ("s3:ListBucketVersions",),
    ("s3", "ListMultipartUploads"): ("s3:ListBucketMultipartUploads",),
    ("s3", "ListParts"): ("s3:ListMultipartUploadParts",),
    ("s3", "ListBuckets"): ("s3:ListAllMyBuckets",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    # Needs read access to the object, then the attributes permission on top.
    ("s3", "GetObjectAttributes"): ("s3:GetObject", "s3:GetObjectAttributes"),
    ("s3", "SelectObjectContent"): ("s3:GetObject",),
    ("s3", "CopyObject"): ("s3:PutObject", "s3:GetObject"),
    ("s3", "UploadPartCopy"): ("s3:PutObject", "s3:GetObject"),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
    # Bucket sub-resources: one Get/Put action per configuration; deleting one is a Put.
    ("s3", "GetBucketLifecycle"): ("s3:GetLifecycleConfiguration",),
    ("s3", "GetBucketLifecycleConfiguration"): ("s3:GetLifecycleConfiguration",),
    ("s3", "PutBucketLifecycle"): ("s3:PutLifecycleConfiguration",),
    ("s3", "PutBucketLifecycleConfiguration"): ("s3:PutLifecycleConfiguration",),
    ("s3", "DeleteBucketLifecycle"): ("s3:PutLifecycleConfiguration",),
    ("s3", "GetBucketNotificationConfiguration"): ("s3:GetBucketNotification",),
    ("s3", "PutBucketNotificationConfiguration"): ("s3:PutBucketNotification",),
    ("s3", "GetBucketEncryption"): ("s3:GetEncryptionConfiguration",),
    ("s3", "PutBucketEncryption"): ("s3:PutEncryptionConfiguration",),
    ("s3", "DeleteBucketEncryption"): ("s3:PutEncryptionConfiguration",),
    ("s3", "GetBucketReplication"): ("s3:GetReplicationConfiguration",),
    ("s3", "PutBucketReplication"): ("s3:PutReplicationConfiguration",),
    ("s3", "DeleteBucketReplication"): ("s3:PutReplicationConfiguration",),
    ("s3", "GetObjectLockConfiguration"): ("s3:GetBucketObjectLockConfiguration",),
    ("s3", "PutObjectLockConfiguration"): ("s3:PutBucketObjectLockConfiguration",),
    ("s3", "DeleteBucketCors"): ("s3:PutBucketCORS",),
    ("s3", "GetBucketAccelerateConfiguration"): ("s3:GetAccelerateConfiguration",),
    ("s3", "PutBucketAccelerateConfiguration"): ("s3:PutAccelerateConfiguration",),
    ("s3", "GetBucketAnalyticsConfiguration"): ("s3:GetAnalyticsConfiguration",),
    ("s3", "ListBucketAnalyticsConfigurations"): ("s3:GetAnalyticsConfiguration",),
    ("s3", "PutBucketAnalyticsConfiguration"): ("s3:PutAnalyticsConfiguration",),
    ("s3", "DeleteBucketAnalyticsConfiguration"): ("s3:PutAnalyticsConfiguration",),
    ("s3", "GetBucketInventoryConfiguration"): ("s3:GetInventoryConfiguration",),
    ("s3", "ListBucketInventoryConfigurations"): ("s3:GetInventoryConfiguration",),
    ("s3", "PutBucketInventoryConfiguration"): ("s3:PutInventoryConfiguration",),
    ("s3", "DeleteBucketInventoryConfiguration"): ("s3:PutInventoryConfiguration",),
    ("s3", "GetBucketMetricsConfiguration"): ("s3:GetMetricsConfiguration",),
    ("s3", "ListBucketMetricsConfigurations"): ("s3:GetMetricsConfiguration",),
    ("s3", "PutBucketMetricsConfiguration"): ("s3:PutMetricsConfiguration",),
    ("s3", "DeleteBucketMetricsConfiguration"): ("s3:PutMetricsConfiguration",),
    ("s3", "GetBucketIntelligentTieringConfiguration"): ("s3:GetIntelligentTieringConfiguration",),
    ("s3", "ListBucketIntelligentTieringConfigurations"): (
        "s3:GetIntelligentTieringConfiguration",
    ),
    ("s3", "PutBucketIntelligentTieringConfiguration"): ("s3:PutIntelligentTieringConfiguration",),
    ("s3", "DeleteBucketIntelligentTieringConfiguration"): (
        "s3:PutIntelligentTieringConfiguration",
    ),
    ("s3", "GetPublicAccessBlock"): ("s3:GetBucketPublicAccessBlock",),
    ("s3", "PutPublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "DeletePublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "DeleteBucketOwnershipControls"): ("s3:PutBucketOwnershipControls",),
    ("s3", "DeleteBucketTagging"): ("s3:PutBucketTagging",),
    # Directory buckets and Object Lambda are separate IAM services behind the S3 API.
    ("s3", "ListDirectoryBuckets"): ("s3express:ListAllMyDirectoryBuckets",),
    ("s3", "CreateSession"): ("s3express:CreateSession",),
    ("s3", "WriteGetObjectResponse"): ("s3-object-lambda:WriteGetObjectResponse",),
    # Lambda: the API's Invoke is the IAM InvokeFunction, streaming or not.
    ("lambda", "Invoke"): ("lambda:InvokeFunction",),
    ("lambda", "InvokeWithResponseStream"): ("lambda:InvokeFunction",),
    ("lambda", "GetLayerVersionByArn"): ("lambda:GetLayerVersion",),
    # Batch calls are checked as their single-message action.
    ("sqs", "SendMessageBatch"): ("sqs:SendMessage",),
    ("sqs", "DeleteMessageBatch"): ("sqs:DeleteMessage",),
    ("sqs", "ChangeMessageVisibilityBatch"): ("sqs:ChangeMessageVisibility",),
    ("sns", "PublishBatch"): ("sns:Publish",),
    ("dynamodb", "TransactGetItems"): ("dynamodb:GetItem",),
    # ReEncrypt needs both halves: decrypt under the source key, encrypt under the target.
    ("kms", "ReEncrypt"): ("kms:ReEncryptFrom", "kms:ReEncryptTo"),
    ("cloudfront", "CreateDistributionWithTags"): (
        "cloudfront:CreateDistribution",
        "cloudfront:TagResource",
    ),
    # API Gateway's WebSocket management API signs as execute-api and has one action.
    ("execute-api", "PostToConnection"): ("execute-api:ManageConnections",),
    ("execute-api", "GetConnection"): ("execute-api:ManageConnections",),
    ("execute-api", "DeleteConnection"): ("execute-api:ManageConnections",),
}

# Signing names / endpoint prefixes that are not themselves botocore service names, for the
# services a deploy commonly touches (moto and CloudFormation name services this way).
_BOTOCORE_ALIASES: dict[str, tuple[str, ...]] = {
    "monitoring": ("cloudwatch",),
    "elasticloadbalancing": ("elbv2", "elb"),
    "states": ("stepfunctions",),
    "email": ("sesv2", "ses"),
    "execute-api": ("apigatewaymanagementapi",),
    "elasticfilesystem": ("efs",),
    "elasticmapreduce": ("emr",),
    "tagging": ("resourcegroupstaggingapi",),
    "iotdata": ("iot-data",),
    "servicequotas": ("service-quotas",),
    # SDK service identifiers (Go v2 service IDs, Java client names) that squash to no
    # botocore name of their own.
    "cloudwatchlogs": ("logs",),
    "eventbridge": ("events",),
    "elasticloadbalancingv2": ("elbv2",),
    "sfn": ("stepfunctions",),
    "ses": ("ses", "sesv2"),
    "simpleemailservice": ("ses", "sesv2"),
    "simplesystemsmanagement": ("ssm",),
    "simplestorageservice": ("s3",),
    "identityandaccessmanagement": ("iam",),
    "securitytokenservice": ("sts",),
    "keymanagementservice": ("kms",),
}

# botocore services whose IAM prefix is neither their name, signing name nor endpoint prefix.
_IAM_PREFIX_OVERRIDES: dict[str, str] = {
    "iot-data": "iot",
}

# API Gateway's control plane is authorised per HTTP method on a path ARN
# (apigateway:GET on arn:aws:apigateway:region::/restapis), not per operation.
_HTTP_METHOD_SERVICES = frozenset({"apigateway", "apigatewayv2"})


def operation_to_action(service: str, operation: str) -> Action | None:
    """The IAM action checked first when ``service``'s ``operation`` is called; None if unknown.

    ``operation_to_action("s3", "ListObjectsV2")`` is ``s3:ListBucket``;
    ``operation_to_action("logs", "CreateLogGroup")`` is ``logs:CreateLogGroup``.
    """
    actions = operation_actions(service, operation)
    return actions[0] if actions else None


# Bounded: the parser asks with names read from untrusted text.
@lru_cache(maxsize=4096)
def operation_actions(service: str, operation: str) -> tuple[Action, ...]:
    """Every IAM action ``operation`` is documented to need, the first-checked one first."""
    name = service.strip().lower()
    models = _botocore_names(name)
    if not models:
        # Not a service botocore knows: take the name as an IAM prefix, same-name lookup.
        return _lookup((name,), _squash(operation))
    for model_name in models:
        model = _service_model(model_name)
        op = _operation_names(model_name).get(_squash(operation))
        if op is None:
            continue
        if model_name in _HTTP_METHOD_SERVICES:
            method = str(model.operation_model(op).http.get("method", ""))
            action = known_action(f"apigateway:{method}")
            return (action,) if action is not None else ()
        return _lookup(_iam_prefixes(model_name), op)
    return ()


def has_operation(service: str, operation: str) -> bool:
    """True when botocore's model of ``service`` has ``operation`` (any case, ``snake_case``)."""
    squashed = _squash(operation)
    return any(
        squashed in _operation_names(name) for name in _botocore_names(service.strip().lower())
    )


def known_action(text: str) -> Action | None:
    """``iamdb.canonical_action``, in memory bounded by the IAM data, not by what is asked.

    ``SNS:publish`` -> ``sns:Publish``; None for anything that is not a real IAM action. It
    remembers each real service's actions, never a miss: the parser asks it about every
    action-shaped word of a log, and a hostile log can hold millions of distinct ones.
    """
    text = text.strip()
    if not iamdb.is_action_shaped(text):
        return None
    service, name = text.split(":")
    service = service.lower()
    if not iamdb.service_exists(service):
        return None
    return _actions_by_name(service).get(name.lower())


@cache
def _actions_by_name(service: str) -> dict[str, Action]:
    # Only ever called with a real service: the cache holds at most the IAM data.
    return {action.split(":", 1)[1].lower(): action for action in iamdb.actions_of_service(service)}


def _lookup(prefixes: tuple[str, ...], operation: str) -> tuple[Action, ...]:
    for prefix in prefixes:
        renamed = _renamed_index().get((prefix, operation.lower()))
        if renamed is not None:
            return renamed
    for prefix in prefixes:
        action = known_action(f"{prefix}:{operation}")
        if action is not None:
            return (action,)
    return ()


@cache
def _renamed_index() -> dict[tuple[str, str], tuple[Action, ...]]:
    index: dict[tuple[str, str], tuple[Action, ...]] = {}
    for (prefix, op), names in _RENAMED.items():
        actions = tuple(a for a in (iamdb.canonical_action(n) for n in names) if a is not None)
        if actions:
            index[(prefix, op.lower())] = actions
    return index


def _squash(operation: str) -> str:
    """``PutObject``, ``putObject``, ``put_object`` and ``put-object`` all become ``putobject``."""
    return operation.strip().replace("_", "").replace("-", "").lower()


@cache
def _loader() -> botocore.loaders.Loader:
    import botocore.loaders  # deferred: most logs name no operation

    return botocore.loaders.create_loader()


@cache
def _available() -> frozenset[str]:
    return frozenset(_loader().list_available_services("service-2"))


def _botocore_names(service: str) -> tuple[str, ...]:
    if service in _available():
        return (service,)
    return tuple(n for n in _BOTOCORE_ALIASES.get(service, ()) if n in _available())


@cache
def _service_model(name: str) -> ServiceModel:
    from botocore.model import ServiceModel  # deferred with the loader

    raw: dict[str, Any] = _loader().load_service_model(name, "service-2")
    return ServiceModel(raw, service_name=name)


@cache
def _operation_names(name: str) -> dict[str, str]:
    if name not in _available():
        return {}
    return {_squash(op): op for op in _service_model(name).operation_names}


@cache
def _iam_prefixes(name: str) -> tuple[str, ...]:
    model = _service_model(name)
    metadata = model.metadata
    candidates = (
        _IAM_PREFIX_OVERRIDES.get(name),
        metadata.get("signingName"),
        metadata.get("endpointPrefix"),
        name,
    )
    seen: list[str] = []
    for candidate in candidates:
        if isinstance(candidate, str) and candidate not in seen and iamdb.service_exists(candidate):
            seen.append(candidate)
    return tuple(seen)


# --- naming a service from what an SDK or a log shows ---------------------------------------

# "Amazon S3", "AmazonEC2", "AWSLambda", "AWS Lambda": Java and .NET name clients so.
_VENDOR_PREFIX = re.compile(r"^(?:amazon|aws)[\s_-]*", re.IGNORECASE)
# A region label of an endpoint host: us-east-1, eu-west-2, us-gov-west-1, cn-north-1.
_REGION_LABEL = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
_LEGACY_S3_HOST = re.compile(r"^s3-(?:external-\d|[a-z]{2}(?:-[a-z]+)+-\d{1,2})$")


def sdk_service(name: str) -> str | None:
    """The service name (for ``operation_to_action``) an SDK's own name stands for, or None.

    ``EC2``, ``Secrets Manager`` (Go v2 service IDs), ``ec2``, ``cloudFormation`` (JavaScript
    v2 identifiers), ``AmazonEC2``, ``Amazon S3``, ``AWSLambda`` (Java), ``email`` (an
    endpoint prefix) all name a botocore service.
    """
    text = name.strip()
    if not text or len(text) > 64:
        return None
    for candidate in (text.lower(), _VENDOR_PREFIX.sub("", text).lower()):
        squashed = _squash(candidate).replace(" ", "")
        if not squashed:
            continue
        # The name itself when botocore knows it (or it is an alias of several models).
        for key in (squashed, candidate):
            if _botocore_names(key):
                return key
        found = _squashed_services().get(squashed)
        if found is not None:
            return found
    return None


def endpoint_service(host: str) -> str | None:
    """The botocore service an AWS endpoint host belongs to, or None for any other host.

    ``ec2.ap-south-1.amazonaws.com`` -> ``ec2``; ``bucket.s3.eu-west-1.amazonaws.com``,
    ``s3-eu-west-1.amazonaws.com`` -> ``s3``; ``email.us-west-2.amazonaws.com`` -> ``ses``.
    """
    labels = host.strip().lower().rstrip(".").split(".")
    if "amazonaws" not in labels:
        return None
    labels = labels[: labels.index("amazonaws")]
    while labels and (_REGION_LABEL.match(labels[-1]) or labels[-1] in {"fips", "dualstack"}):
        labels.pop()
    if not labels:
        return None
    prefix = labels[-1].removesuffix("-fips")
    if _LEGACY_S3_HOST.match(prefix):
        prefix = "s3"
    return sdk_service(prefix)


@cache
def _squashed_services() -> dict[str, str]:
    return {_squash(name): name for name in sorted(_available())}


__all__ = [
    "endpoint_service",
    "has_operation",
    "known_action",
    "operation_actions",
    "operation_to_action",
    "sdk_service",
]
