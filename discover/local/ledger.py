"""The ledger: every schema action of the types the services use, modelled or excluded, and why.

For the resource types in ``EXCLUDED`` (those the sample and test services deploy), each
(type, operation, permission name) of the type's registry schema is either checked by the
handler model (``handler_model``: an override or a generated call) or listed here with the
reason the sandbox does not check it. ``tests/test_local_ledger.py`` fails when a schema (a
cfn-lint update) brings a name that is in neither list, and when an entry here is no longer in
the schema.

``excluded_for(types)`` answers, for the types of a template, what the sandbox did not check
and why: for a ledger type the entries here; for any other type every schema action the
generated model does not make. It is what AWS might still ask for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from discover.local.schemas import Operation, iam_action, schema_of


class Why(str, Enum):
    """Why a schema action is not checked (the reasons, grouped)."""

    NOT_IAM = "not an IAM action (a wildcard, an SDK or REST operation name, a typo)"
    READ_HANDLER = "read handler only: drift detection and import, not stack operations"
    LIST_HANDLER = "list handler: resource discovery, never run by stack operations"
    PROPERTY = "made only for a property the sandbox does not model for this type"
    KMS = "made only with a customer-managed KMS key"
    VPC = "made only for a function in a VPC"
    OTHER_CASE = "listed for a case that does not arise here (another operation's call)"
    NOT_MODELLED = "not modelled for this type: the sandbox checks its main calls, reads, tags"


# type -> operation -> schema permission name -> why. Read and list handlers are listed
# whole (their actions are checked only where create, update or delete make them too).
_P, _K, _V, _O, _N = Why.PROPERTY, Why.KMS, Why.VPC, Why.OTHER_CASE, Why.NOT_IAM
_R, _L = Why.READ_HANDLER, Why.LIST_HANDLER

EXCLUDED: dict[str, dict[str, dict[str, Why]]] = {
    "AWS::ApiGateway::Deployment": {
        "create": {"apigateway:PATCH": _P, "apigateway:PUT": _P},
        "read": {"apigateway:GET": _R},
        "update": {"apigateway:PUT": _P, "apigateway:DELETE": _P},
        "list": {"apigateway:GET": _L},
    },
    "AWS::IAM::RolePolicy": {
        "delete": {"iam:GetRolePolicy": Why.NOT_MODELLED},
        "read": {"iam:GetRolePolicy": _R},
        "update": {"iam:GetRolePolicy": Why.NOT_MODELLED},
    },
    "AWS::ApiGateway::Method": {
        "read": {"apigateway:GET": _R},
        "update": {"iam:PassRole": _P},
    },
    "AWS::ApiGateway::Resource": {
        "read": {"apigateway:GET": _R},
        "list": {"apigateway:GET": _L},
    },
    "AWS::ApiGateway::RestApi": {
        "create": {"iam:PassRole": _P},
        "read": {"apigateway:GET": _R},
        "update": {"apigateway:UpdateRestApiPolicy": _P, "s3:GetObject": _P, "iam:PassRole": _P},
        "list": {"apigateway:GET": _L},
    },
    "AWS::ApiGatewayV2::Api": {
        "create": {"apigateway:PUT": _P, "s3:getObject": _P},
        "read": {"apigateway:GET": _R, "s3:getObject": _R},
        "update": {"apigateway:POST": _P, "apigateway:DELETE": _P, "s3:getObject": _P},
        "delete": {"s3:getObject": _P},
        "list": {"apigateway:GET": _L, "s3:getObject": _L},
    },
    "AWS::ApiGatewayV2::Integration": {
        "read": {"apigateway:GET": _R},
        "update": {"apigateway:PUT": _P, "iam:PassRole": _P},
        "list": {"apigateway:GET": _L},
    },
    "AWS::ApiGatewayV2::Route": {
        "read": {"apigateway:GET": _R},
        "update": {"apigateway:PUT": _P},
        "list": {"apigateway:GET": _L},
    },
    "AWS::ApiGatewayV2::Stage": {
        "create": {"apigateway:TagResource": _N},
        "read": {"apigateway:GET": _R},
        "update": {
            "apigateway:POST": _P,
            "apigateway:DELETE": _P,
            "apigateway:TagResource": _N,
            "apigateway:UntagResource": _N,
        },
        "list": {"apigateway:GET": _L},
    },
    "AWS::DynamoDB::Table": {
        "create": {
            "dynamodb:DescribeImport": _P,
            "dynamodb:DescribeTimeToLive": _P,
            "dynamodb:DescribeContinuousBackups": _P,
            "dynamodb:DescribeContributorInsights": _P,
            "dynamodb:EnableKinesisStreamingDestination": _P,
            "dynamodb:DisableKinesisStreamingDestination": _P,
            "dynamodb:DescribeKinesisStreamingDestination": _P,
            "dynamodb:ImportTable": _P,
            "dynamodb:ListTagsOfResource": _P,
            "dynamodb:UpdateTable": _P,
            "dynamodb:GetResourcePolicy": _P,
            "dynamodb:PutResourcePolicy": _P,
            "dynamodb:CreateTableReplica": _P,
            "dynamodb:Scan": _P,
            "dynamodb:Query": _P,
            "dynamodb:UpdateItem": _P,
            "dynamodb:PutItem": _P,
            "dynamodb:GetItem": _P,
            "dynamodb:DeleteItem": _P,
            "dynamodb:BatchWriteItem": _P,
            "dynamodb:AssociateTableReplica": _P,
            "kinesis:DescribeStream": _P,
            "kinesis:PutRecords": _P,
            "iam:CreateServiceLinkedRole": _P,
            "kms:CreateGrant": _K,
            "kms:Decrypt": _K,
            "kms:DescribeKey": _K,
            "kms:ListAliases": _K,
            "kms:Encrypt": _K,
            "kms:RevokeGrant": _K,
            "logs:CreateLogGroup": _P,
            "logs:CreateLogStream": _P,
            "logs:DescribeLogGroups": _P,
            "logs:DescribeLogStreams": _P,
            "logs:PutLogEvents": _P,
            "logs:PutRetentionPolicy": _P,
            "s3:GetObject": _P,
            "s3:GetObjectMetadata": _P,
            "s3:ListBucket": _P,
        },
        "read": {
            "dynamodb:DescribeTable": _R,
            "dynamodb:DescribeContinuousBackups": _R,
            "dynamodb:DescribeContributorInsights": _R,
            "dynamodb:DescribeKinesisStreamingDestination": _R,
            "dynamodb:ListTagsOfResource": _R,
            "dynamodb:GetResourcePolicy": _R,
            "dynamodb:DescribeTimeToLive": _R,
        },
        "update": {
            "dynamodb:DescribeTimeToLive": _P,
            "dynamodb:UpdateContributorInsights": _P,
            "dynamodb:UpdateKinesisStreamingDestination": _P,
            "dynamodb:DescribeContinuousBackups": _P,
            "dynamodb:DescribeKinesisStreamingDestination": _P,
            "dynamodb:ListTagsOfResource": _P,
            "dynamodb:DescribeContributorInsights": _P,
            "dynamodb:EnableKinesisStreamingDestination": _P,
            "dynamodb:DisableKinesisStreamingDestination": _P,
            "dynamodb:GetResourcePolicy": _P,
            "dynamodb:PutResourcePolicy": _P,
            "dynamodb:DeleteResourcePolicy": _P,
            "dynamodb:CreateTable": _P,
            "dynamodb:CreateTableReplica": _P,
            "dynamodb:Scan": _P,
            "dynamodb:Query": _P,
            "dynamodb:UpdateItem": _P,
            "dynamodb:PutItem": _P,
            "dynamodb:GetItem": _P,
            "dynamodb:DeleteItem": _P,
            "dynamodb:BatchWriteItem": _P,
            "dynamodb:AssociateTableReplica": _P,
            "kinesis:DescribeStream": _P,
            "kinesis:PutRecords": _P,
            "iam:CreateServiceLinkedRole": _P,
            "kms:CreateGrant": _K,
            "kms:DescribeKey": _K,
            "kms:ListAliases": _K,
            "kms:RevokeGrant": _K,
        },
        "list": {"dynamodb:ListTables": _L},
    },
    "AWS::Events::Rule": {
        "read": {
            "iam:PassRole": _R,
            "events:DescribeRule": _R,
            "events:ListTargetsByRule": _R,
            "events:ListTagsForResource": _R,
        },
        "update": {"iam:PassRole": _P, "events:UntagResource": _O, "events:TagResource": _O},
        "delete": {"iam:PassRole": _P, "events:ListTargetsByRule": _P},
        "list": {"events:ListRules": _L},
    },
    "AWS::IAM::Role": {
        "create": {"iam:GetRolePolicy": _P, "iam:UntagRole": _O},
        "read": {
            "iam:GetRole": _R,
            "iam:ListAttachedRolePolicies": _R,
            "iam:ListRolePolicies": _R,
            "iam:GetRolePolicy": _R,
        },
        "update": {
            "iam:UpdateRoleDescription": _P,
            "iam:DeleteRolePermissionsBoundary": _P,
            "iam:PutRolePermissionsBoundary": _P,
        },
        "delete": {
            "iam:GetRole": _P,
            "iam:ListAttachedRolePolicies": _P,
            "iam:ListRolePolicies": _P,
            "iam:TagRole": _O,
            "iam:UntagRole": _O,
        },
        "list": {"iam:ListRoles": _L},
    },
    "AWS::Lambda::EventSourceMapping": {
        "create": {"kms:DescribeKey": _K, "kms:GenerateDataKey": _K, "kms:Decrypt": _K},
        "read": {"lambda:GetEventSourceMapping": _R, "lambda:ListTags": _R, "kms:Decrypt": _R},
        "update": {
            "lambda:TagResource": _O,
            "lambda:UntagResource": _O,
            "kms:DescribeKey": _K,
            "kms:GenerateDataKey": _K,
            "kms:Decrypt": _K,
        },
        "delete": {"lambda:GetEventSourceMapping": _P, "kms:Decrypt": _K},
        "list": {"lambda:ListEventSourceMappings": _L},
    },
    "AWS::Lambda::Function": {
        "create": {
            "elasticfilesystem:DescribeMountTargets": _P,
            "s3files:ListMountTargets": _P,
            "kms:CreateGrant": _K,
            "kms:Decrypt": _K,
            "kms:DescribeKey": _K,
            "kms:Encrypt": _K,
            "kms:GenerateDataKey": _K,
            "lambda:GetCodeSigningConfig": _P,
            "lambda:GetFunctionCodeSigningConfig": _P,
            "lambda:GetRuntimeManagementConfig": _P,
            "lambda:PutRuntimeManagementConfig": _P,
            "lambda:PutFunctionRecursionConfig": _P,
            "lambda:GetFunctionRecursionConfig": _P,
            "lambda:PutFunctionScalingConfig": _P,
            "lambda:PassCapacityProvider": _P,
            "lambda:AssociateRuntimeAlias": _N,
        },
        "read": {
            "lambda:GetFunction": _R,
            "kms:Decrypt": _R,
            "lambda:GetFunctionCodeSigningConfig": _R,
            "lambda:GetFunctionRecursionConfig": _R,
            "lambda:GetRuntimeManagementConfig": _R,
            "lambda:GetFunctionScalingConfig": _R,
        },
        "update": {
            "lambda:DeleteFunctionConcurrency": _P,
            "s3:GetObjectVersion": _P,
            "ec2:DescribeSecurityGroups": _V,
            "ec2:DescribeSubnets": _V,
            "ec2:DescribeVpcs": _V,
            "elasticfilesystem:DescribeMountTargets": _P,
            "s3files:ListMountTargets": _P,
            "kms:CreateGrant": _K,
            "kms:Decrypt": _K,
            "kms:DescribeKey": _K,
            "kms:GenerateDataKey": _K,
            "lambda:GetRuntimeManagementConfig": _P,
            "lambda:PutRuntimeManagementConfig": _P,
            "lambda:PutFunctionCodeSigningConfig": _P,
            "lambda:DeleteFunctionCodeSigningConfig": _P,
            "lambda:GetCodeSigningConfig": _P,
            "lambda:GetFunctionCodeSigningConfig": _P,
            "lambda:PutFunctionRecursionConfig": _P,
            "lambda:GetFunctionRecursionConfig": _P,
            "lambda:PutFunctionScalingConfig": _P,
            "lambda:PublishVersion": _P,
            "lambda:PassCapacityProvider": _P,
            "lambda:AssociateRuntimeAlias": _N,
        },
        "delete": {"lambda:GetFunction": _P, "ec2:DescribeNetworkInterfaces": _V},
        "list": {"lambda:ListFunctions": _L},
    },
    "AWS::Lambda::LayerVersion": {
        "create": {"s3:GetObjectVersion": _P},
        "read": {"lambda:GetLayerVersion": _R},
        "delete": {"lambda:GetLayerVersion": _P},
        "list": {"lambda:ListLayerVersions": _L},
    },
    "AWS::Lambda::Permission": {
        "read": {"lambda:GetPolicy": _R},
        "list": {"lambda:GetPolicy": _L},
    },
    "AWS::Lambda::Url": {
        "read": {"lambda:GetFunctionUrlConfig": _R},
        "list": {"lambda:ListFunctionUrlConfigs": _L},
    },
    "AWS::Lambda::Version": {
        "create": {
            "lambda:PutProvisionedConcurrencyConfig": _P,
            "lambda:GetProvisionedConcurrencyConfig": _P,
            "lambda:PutRuntimeManagementConfig": _P,
            "lambda:GetRuntimeManagementConfig": _P,
            "lambda:PutFunctionScalingConfig": _P,
            "lambda:ListVersionsByFunction": _P,
        },
        "read": {
            "lambda:GetFunctionConfiguration": _R,
            "lambda:GetProvisionedConcurrencyConfig": _R,
            "lambda:GetRuntimeManagementConfig": _R,
            "lambda:GetFunctionScalingConfig": _R,
        },
        "update": {"lambda:PutFunctionScalingConfig": _P},
        "delete": {"lambda:GetFunctionConfiguration": _P},
        "list": {"lambda:ListVersionsByFunction": _L},
    },
    "AWS::Logs::LogGroup": {
        "create": {
            "logs:GetDataProtectionPolicy": _P,
            "logs:CreateLogDelivery": _P,
            "s3:REST.PUT.OBJECT": _N,
            "firehose:TagDeliveryStream": _O,
            "logs:PutResourcePolicy": _P,
            "logs:DescribeResourcePolicies": _P,
            "logs:PutIndexPolicy": _P,
            "logs:DescribeIndexPolicies": _P,
            "logs:PutBearerTokenAuthentication": _P,
        },
        "read": {
            "logs:DescribeLogGroups": _R,
            "logs:ListTagsForResource": _R,
            "logs:GetDataProtectionPolicy": _R,
            "logs:DescribeIndexPolicies": _R,
            "logs:DescribeResourcePolicies": _R,
        },
        "update": {
            "logs:AssociateKmsKey": _P,
            "logs:DisassociateKmsKey": _P,
            "logs:ListTagsForResource": _P,
            "logs:GetDataProtectionPolicy": _P,
            "logs:PutDataProtectionPolicy": _P,
            "logs:CreateLogDelivery": _P,
            "s3:REST.PUT.OBJECT": _N,
            "firehose:TagDeliveryStream": _O,
            "logs:PutIndexPolicy": _P,
            "logs:DeleteIndexPolicy": _P,
            "logs:PutResourcePolicy": _P,
            "logs:DescribeResourcePolicies": _P,
            "logs:DeleteResourcePolicy": _P,
            "logs:PutLogGroupDeletionProtection": _P,
            "logs:PutBearerTokenAuthentication": _P,
        },
        "delete": {"logs:DescribeLogGroups": _P, "logs:DeleteDataProtectionPolicy": _P},
        "list": {"logs:DescribeLogGroups": _L, "logs:ListTagsForResource": _L},
    },
    "AWS::Logs::SubscriptionFilter": {
        "read": {"logs:DescribeSubscriptionFilters": _R},
        "update": {"iam:PassRole": _P},
        "list": {"logs:DescribeSubscriptionFilters": _L},
    },
    "AWS::S3::Bucket": {
        "create": {
            "s3:TagResource": _O,
            "s3:PutBucketAbac": _P,
            "s3:PutAnalyticsConfiguration": _P,
            "s3:PutInventoryConfiguration": _P,
            "s3:PutMetricsConfiguration": _P,
            "s3:PutBucketReplication": _P,
            "s3:PutReplicationConfiguration": _P,
            "s3:PutObjectAcl": _P,
            "s3:PutBucketObjectLockConfiguration": _P,
            "s3:GetBucketAcl": _P,
            "s3:ListBucket": _P,
            "iam:PassRole": _P,
            "s3:DeleteObject": _P,
            "s3:PutObjectLockConfiguration": _P,
            "s3:PutIntelligentTieringConfiguration": _P,
            "s3:GetBucketMetadataTableConfiguration": _P,
            "s3:CreateBucketMetadataTableConfiguration": _P,
            "s3tables:CreateNamespace": _P,
            "s3tables:CreateTable": _P,
            "s3tables:CreateTableBucket": _P,
            "s3tables:GetTable": _P,
            "s3tables:PutTableBucketPolicy": _P,
            "s3tables:PutTableEncryption": _P,
            "s3tables:PutTablePolicy": _P,
            "s3tables:GetTableMetadataLocation": _P,
            "s3tables:UpdateTableMetadataLocation": _P,
        },
        "read": {
            "s3:GetAccelerateConfiguration": _R,
            "s3:GetLifecycleConfiguration": _R,
            "s3:GetBucketPublicAccessBlock": _R,
            "s3:GetAnalyticsConfiguration": _R,
            "s3:GetBucketCORS": _R,
            "s3:GetEncryptionConfiguration": _R,
            "s3:GetInventoryConfiguration": _R,
            "s3:GetBucketLogging": _R,
            "s3:GetMetricsConfiguration": _R,
            "s3:GetBucketNotification": _R,
            "s3:GetBucketVersioning": _R,
            "s3:GetReplicationConfiguration": _R,
            "s3:GetBucketWebsite": _R,
            "s3:GetBucketObjectLockConfiguration": _R,
            "s3:GetBucketTagging": _R,
            "s3:ListTagsForResource": _R,
            "s3:GetBucketAbac": _R,
            "s3:GetBucketOwnershipControls": _R,
            "s3:GetIntelligentTieringConfiguration": _R,
            "s3:GetBucketMetadataTableConfiguration": _R,
            "s3:ListBucket": _R,
        },
        "update": {
            "s3:PutBucketAcl": _P,
            "s3:TagResource": _O,
            "s3:UntagResource": _O,
            "s3:PutBucketAbac": _P,
            "s3:PutAnalyticsConfiguration": _P,
            "s3:PutInventoryConfiguration": _P,
            "s3:PutMetricsConfiguration": _P,
            "s3:PutBucketNotification": _P,
            "s3:PutBucketReplication": _P,
            "s3:PutBucketWebsite": _P,
            "s3:PutAccelerateConfiguration": _P,
            "s3:GetBucketMetadataTableConfiguration": _P,
            "s3:DeleteBucketMetadataTableConfiguration": _P,
            "s3:CreateBucketMetadataTableConfiguration": _P,
            "s3:UpdateBucketMetadataJournalTableConfiguration": _P,
            "s3:UpdateBucketMetadataInventoryTableConfiguration": _P,
            "s3:UpdateBucketMetadataAnnotationTableConfiguration": _P,
            "s3tables:CreateNamespace": _P,
            "s3tables:CreateTable": _P,
            "s3tables:CreateTableBucket": _P,
            "s3tables:GetTable": _P,
            "s3tables:PutTableBucketPolicy": _P,
            "s3tables:PutTableEncryption": _P,
            "s3tables:PutTablePolicy": _P,
            "s3tables:GetTableMetadataLocation": _P,
            "s3tables:UpdateTableMetadataLocation": _P,
            "s3:PutReplicationConfiguration": _P,
            "s3:PutBucketOwnershipControls": _P,
            "s3:PutIntelligentTieringConfiguration": _P,
            "s3:DeleteBucketWebsite": _P,
            "s3:PutBucketLogging": _P,
            "s3:PutObjectLockConfiguration": _P,
            "s3:PutBucketObjectLockConfiguration": _P,
            "s3:DeleteBucketAnalyticsConfiguration": _P,
            "s3:DeleteBucketMetricsConfiguration": _P,
            "s3:DeleteBucketReplication": _P,
            "iam:PassRole": _P,
            "s3:ListBucket": _P,
        },
        "delete": {"s3:ListBucket": _P},
        "list": {"s3:ListAllMyBuckets": _L},
    },
    "AWS::S3::BucketPolicy": {
        "read": {"s3:GetBucketPolicy": _R},
        "list": {"s3:GetBucketPolicy": _L, "s3:ListAllMyBuckets": _L},
    },
    "AWS::SNS::Subscription": {
        "create": {"iam:GetRole": _P},
        "read": {"sns:GetSubscriptionAttributes": _R},
        "update": {"iam:GetRole": _P, "iam:PassRole": _P},
        "delete": {"sns:GetSubscriptionAttributes": _P},
        "list": {"sns:ListSubscriptions": _L},
    },
    "AWS::SNS::Topic": {
        "create": {"sns:PutDataProtectionPolicy": _P, "iam:GetRole": _P, "iam:PassRole": _P},
        "read": {
            "sns:GetTopicAttributes": _R,
            "sns:ListTagsForResource": _R,
            "sns:ListSubscriptionsByTopic": _R,
            "sns:GetDataProtectionPolicy": _R,
        },
        "update": {
            "sns:ListTagsForResource": _P,
            "sns:ListSubscriptionsByTopic": _P,
            "sns:GetDataProtectionPolicy": _P,
            "sns:PutDataProtectionPolicy": _P,
            "iam:GetRole": _P,
            "iam:PassRole": _P,
        },
        "list": {"sns:ListTopics": _L},
    },
    "AWS::SQS::Queue": {
        "create": {"sqs:GetQueueUrl": _P, "sqs:ListQueueTags": _P},
        "read": {"sqs:GetQueueAttributes": _R, "sqs:ListQueueTags": _R},
        "update": {"sqs:ListQueueTags": _P},
        "delete": {"sqs:GetQueueAttributes": _P},
        "list": {"sqs:ListQueues": _L},
    },
    "AWS::SQS::QueuePolicy": {},
    "AWS::StepFunctions::StateMachine": {
        "create": {
            "s3:GetObject": _P,
            "s3:GetObjectVersion": _P,
            "kms:DescribeKey": _K,
            "kms:GenerateDataKey": _K,
        },
        "read": {
            "states:DescribeStateMachine": _R,
            "states:ListTagsForResource": _R,
            "kms:Decrypt": _R,
        },
        "update": {
            "states:ListTagsForResource": _P,
            "kms:DescribeKey": _K,
            "kms:GenerateDataKey": _K,
            "s3:GetObject": _P,
            "s3:GetObjectVersion": _P,
        },
        "list": {"states:ListStateMachines": _L},
    },
}


@dataclass(frozen=True, slots=True)
class Exclusion:
    """One schema action the sandbox did not check for a type's operation."""

    type_name: str
    operation: Operation
    permission: str  # as the schema writes it
    action: str | None  # the IAM action it stands for, if any
    why: Why


def excluded_actions_of(type_name: str) -> dict[Operation, frozenset[str]]:
    """The IAM actions the ledger excludes for ``type_name``, per operation."""
    result: dict[Operation, frozenset[str]] = {}
    for op, names in EXCLUDED.get(type_name, {}).items():
        found = {iam_action(n).action for n in names}
        result[Operation(op)] = frozenset(str(a) for a in found if a is not None)
    return result


def _listed(type_name: str) -> Iterable[Exclusion]:
    for op, names in EXCLUDED[type_name].items():
        for name, why in names.items():
            action = iam_action(name).action
            yield Exclusion(type_name, Operation(op), name, str(action) if action else None, why)


def _unmodelled(type_name: str) -> Iterable[Exclusion]:
    from discover.local.handler_model import model_for

    schema = schema_of(type_name)
    model = model_for(type_name)
    if schema is None:
        return
    for op in Operation:
        modelled = model.modelled(op) if model is not None else frozenset()
        for name in schema.permissions(op):
            read = iam_action(name)
            if read.action is None:
                yield Exclusion(type_name, op, name, None, Why.NOT_IAM)
            elif op in {Operation.READ, Operation.LIST}:
                why = Why.READ_HANDLER if op is Operation.READ else Why.LIST_HANDLER
                yield Exclusion(type_name, op, name, str(read.action), why)
            elif str(read.action) not in modelled:
                yield Exclusion(type_name, op, name, str(read.action), Why.NOT_MODELLED)


def excluded_for(types: Iterable[str]) -> tuple[Exclusion, ...]:
    """What the sandbox did not check for ``types``, sorted by type, operation, name."""
    found: list[Exclusion] = []
    for type_name in sorted(set(types)):
        found.extend(_listed(type_name) if type_name in EXCLUDED else _unmodelled(type_name))
    order = {op: i for i, op in enumerate(Operation)}
    return tuple(sorted(found, key=lambda e: (e.type_name, order[e.operation], e.permission)))


def counts(exclusions: Iterable[Exclusion]) -> Mapping[Why, int]:
    """How many exclusions each reason has."""
    result: dict[Why, int] = {}
    for exclusion in exclusions:
        result[exclusion.why] = result.get(exclusion.why, 0) + 1
    return result
