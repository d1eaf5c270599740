"""The CloudFormation registry schemas cfn-lint ships, read as the sandbox needs them.

Each resource type's schema (``cfnlint/data/schemas/resources/HASH.json``, named by
``providers/us-east-1.json``) lists the permissions each handler may need
(``handlers.create.permissions``, ``read``, ``update``, ``delete``, ``list``), how the type is
tagged (the ``tagging`` block: ``taggable``, ``tagOnCreate``, ``tagUpdatable``,
``cloudFormationSystemTags``, ``permissions``) and which properties cannot change in place
(``createOnlyProperties``: changing one replaces the resource).

The names in those lists are written by each service team and are not all IAM actions
(``s3:DeleteBucketCors``, ``s3:REST.PUT.OBJECT``, ``lambda:TagResource20170331v2``, lower-case
``s3:getObject``, wildcards): ``iam_action`` maps each to the IAM action IAM checks, or says
why there is none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint  # type: ignore[import-untyped]

from discover import iamdb

_SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
_REGION = "us-east-1"


class Operation(str, Enum):
    """A resource handler's operation."""

    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    LIST = "list"


class Generation(str, Enum):
    """Which kind of handler CloudFormation runs for a type, which decides its wording."""

    # Registry resource providers: "Resource handler returned message: ... (HandlerErrorCode: X)"
    REGISTRY = "registry"
    # Types with no registry handlers yet (CloudFormation's built-in code): "API: svc:Op ..."
    LEGACY = "legacy"


@dataclass(frozen=True, slots=True)
class Tagging:
    """A type's ``tagging`` block."""

    taggable: bool
    tag_on_create: bool
    tag_updatable: bool
    system_tags: bool
    tag_property: str  # "Tags" from "/properties/Tags", or ""
    permissions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TypeSchema:
    """The parts of a registry schema the sandbox reads."""

    type_name: str
    schema_file: str
    handlers: dict[Operation, tuple[str, ...]]
    tagging: Tagging
    create_only: tuple[str, ...]  # top-level property names
    primary_identifier: tuple[str, ...] = ()  # top-level property names, as the schema orders

    @property
    def generation(self) -> Generation:
        return Generation.REGISTRY if self.handlers else Generation.LEGACY

    def permissions(self, operation: Operation) -> tuple[str, ...]:
        return self.handlers.get(operation, ())


def _top_property(pointer: str) -> str:
    parts = pointer.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "properties" else ""


@cache
def _providers() -> dict[str, str]:
    loaded: dict[str, str] = json.loads(
        (_SCHEMAS / "providers" / f"{_REGION}.json").read_text(encoding="utf-8")
    )
    return loaded


def schema_types() -> tuple[str, ...]:
    """Every resource type cfn-lint has a schema for, sorted."""
    return tuple(sorted(_providers()))


@cache
def schema_of(type_name: str) -> TypeSchema | None:
    """The schema of ``type_name``, or None when cfn-lint has none (Custom::..., typos)."""
    schema_file = _providers().get(type_name)
    if schema_file is None:
        return None
    raw: dict[str, Any] = json.loads(
        (_SCHEMAS / "resources" / f"{schema_file}.json").read_text(encoding="utf-8")
    )
    handlers = {
        Operation(op): tuple(str(p) for p in (body or {}).get("permissions", []))
        for op, body in (raw.get("handlers") or {}).items()
        if op in Operation._value2member_map_
    }
    tagging_raw = raw.get("tagging") or {}
    tagging = Tagging(
        taggable=bool(tagging_raw.get("taggable", False)),
        tag_on_create=bool(tagging_raw.get("tagOnCreate", tagging_raw.get("taggable", False))),
        tag_updatable=bool(tagging_raw.get("tagUpdatable", tagging_raw.get("taggable", False))),
        system_tags=bool(tagging_raw.get("cloudFormationSystemTags", False)),
        tag_property=_top_property(str(tagging_raw.get("tagProperty", "/properties/Tags")))
        if tagging_raw.get("taggable")
        else "",
        permissions=tuple(str(p) for p in tagging_raw.get("permissions", [])),
    )
    create_only = tuple(
        sorted({_top_property(str(p)) for p in raw.get("createOnlyProperties", [])} - {""})
    )
    primary = tuple(
        p for p in (_top_property(str(x)) for x in raw.get("primaryIdentifier", [])) if p
    )
    return TypeSchema(type_name, schema_file, handlers, tagging, create_only, primary)


# --- schema names -> IAM actions -------------------------------------------------------------


class NotAnAction(str, Enum):
    """Why a name a schema lists is not checked as an IAM action."""

    WILDCARD = "a wildcard, not one action: IAM checks the action the handler calls"
    NO_SUCH_ACTION = "IAM has no such action (the name is the handler's, not IAM's)"
    S3_LOG_DELIVERY = "an S3 REST operation name for log delivery, made by the logs service"


# Names a schema writes for a call IAM authorises under another action.
# NOTE: S3 authorises its DELETE sub-resource calls with the matching Put action, and the
# Head/List operations with s3:ListBucket / s3:GetObject:
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
ALIASES: dict[str, str] = {
    "s3:DeleteBucketCors": "s3:PutBucketCORS",
    "s3:DeleteBucketEncryption": "s3:PutEncryptionConfiguration",
    "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "s3:DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
    "s3:DeleteBucketReplication": "s3:PutReplicationConfiguration",
    "s3:PutBucketReplication": "s3:PutReplicationConfiguration",
    "s3:DeleteBucketTagging": "s3:PutBucketTagging",
    "s3:DeleteBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration",
    "s3:DeleteBucketMetricsConfiguration": "s3:PutMetricsConfiguration",
    "s3:PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration",
    "s3:GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "s3:PutBucketNotificationConfiguration": "s3:PutBucketNotification",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:GetObjectMetadata": "s3:GetObject",
    "s3:DoesObjectExist": "s3:GetObject",
    "s3:listBuckets": "s3:ListAllMyBuckets",
    # Lambda's API version suffixes are SDK operation names; IAM has one action each.
    "lambda:TagResource20170331v2": "lambda:TagResource",
    "lambda:UntagResource20170331v2": "lambda:UntagResource",
    "lambda:GetLayerVersionByArn": "lambda:GetLayerVersion",
    "lambda:Invoke": "lambda:InvokeFunction",
    # Step Functions' IAM prefix is "states".
    "stepfunctions:DescribeStateMachine": "states:DescribeStateMachine",
    "stepfunctions:StartExecution": "states:StartExecution",
    "stepfunctions:StopExecution": "states:StopExecution",
    "stepfunctions:TagResource": "states:TagResource",
    "iam:assumeRole": "sts:AssumeRole",
    "iam:AssumeRole": "sts:AssumeRole",
    "events:CreateRule": "events:PutRule",
}


@dataclass(frozen=True, slots=True)
class SchemaName:
    """One name a schema lists, read as an IAM action (``action``) or not (``why``)."""

    written: str
    action: iamdb.Action | None
    why: NotAnAction | None


@cache
def iam_action(written: str) -> SchemaName:
    """The IAM action a schema's permission name stands for, or why it has none."""
    if "*" in written:
        return SchemaName(written, None, NotAnAction.WILDCARD)
    if written.startswith("s3:REST."):
        return SchemaName(written, None, NotAnAction.S3_LOG_DELIVERY)
    target = ALIASES.get(written, written)
    action = iamdb.canonical_action(target)
    if action is None:
        return SchemaName(written, None, NotAnAction.NO_SUCH_ACTION)
    return SchemaName(written, action, None)


def actions(schema: TypeSchema, operation: Operation) -> tuple[iamdb.Action, ...]:
    """The IAM actions of ``operation``'s permissions, in the schema's order, once each."""
    seen: dict[iamdb.Action, None] = {}
    for written in schema.permissions(operation):
        name = iam_action(written)
        if name.action is not None:
            seen.setdefault(name.action, None)
    return tuple(seen)
