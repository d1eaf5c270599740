"""The overrides of the generated handler model: what the schemas cannot say, by hand.

CloudFormation's resource handlers call the service APIs with the caller's permissions
(forward access sessions): creating an ``AWS::IAM::Role`` is an ``iam:CreateRole`` by the
caller, then an ``iam:PutRolePolicy`` per inline policy, and so on. ``handler_model``
generates those calls for every type from its registry schema; the entries here override it,
per (type, action), where the schema's flat permission list is not enough: the condition under
which a call is made (a property present or changed, one call per list element), the resource
it names (a path for API Gateway, a queue's ARN from its URL, a role passed), the condition
keys it carries and the wording of its refusal. Actions of a type's schema that neither an
override nor the generated rule makes are listed in ``ledger`` with the reason.

``tests/test_local_stack_calls.py`` checks every action here against the schema's list and
every resource against IAM's ARN format for the action.

Templates in ``resource`` and ``context`` values:

- ``{arn}``: the resource's own ARN; ``{name}``: its physical name; ``{ref}``: its physical id
  (known only after it exists, so only in ``after`` calls and in updates and deletes);
- ``{region}``, ``{account}``, ``{partition}``;
- ``{p:Path.To.Property}``: a property value; ``{function:Property}``: a Lambda function ARN
  from a property holding a function name or ARN;
- ``{item}``, ``{item:Key}``: the current element of an ``each:``/``added:``/``removed:`` list.

``when``: ``always``; ``has:Prop`` (set and not empty); ``each:Prop`` (once per element);
in updates ``changed:Prop[,Prop...]`` (new value differs), ``changed-set:Prop`` /
``changed-unset:Prop`` (differs, and is now set / no longer set), ``changed-other:Prop`` (a
property other than these differs), ``added:Prop`` (elements new or changed), ``removed:Prop``
(elements whose key is gone); ``roles`` / ``changed-roles``: each IAM role ARN the properties
name (new ones, in an update).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Phase(str, Enum):
    BEFORE = "before"  # checked before the resource exists (the create call itself)
    AFTER = "after"  # checked once it exists (reads that stabilise the create)


class MessageShape(str, Enum):
    """How the handler words a denial (see ``stack_engine.handler_message``)."""

    STANDARD = "standard"
    LAMBDA_S3_CODE = "lambda-s3-code"  # Lambda relaying S3's refusal to read the code
    LOGS_TAGS = "logs-tags"  # CloudWatch Logs' "CreateLogGroup with Tags" wording


@dataclass(frozen=True, slots=True)
class Call:
    """One permission check a handler's operation makes."""

    action: str
    resource: str = "{arn}"
    when: str = "always"
    phase: Phase = Phase.BEFORE
    context: Mapping[str, str] = field(default_factory=dict)
    shape: MessageShape = MessageShape.STANDARD


@dataclass(frozen=True, slots=True)
class ResourceCalls:
    """A resource type's calls per operation, and how AWS names the service in messages."""

    service: str  # as in "(Service: Iam, Status Code: 403, ...)"
    status: int  # the HTTP status the service answers a denial with
    arn: Callable[[Mapping[str, str], Mapping[str, Any]], str]
    create: tuple[Call, ...]
    update: tuple[Call, ...] = ()
    delete: tuple[Call, ...] = ()
    schema: str = ""  # the cfn-lint schema file the permissions are read from


# Elements of list properties are matched by this key when an update adds or removes some.
COLLECTION_KEYS: dict[str, str] = {
    "Policies": "PolicyName",
    "Tags": "Key",
    "Subscription": "Endpoint",
    "Targets": "Id",
}


def _v(values: Mapping[str, str], key: str) -> str:
    return values.get(key, "")


def _role_arn(v: Mapping[str, str], props: Mapping[str, Any]) -> str:
    path = str(props.get("Path") or "/")
    return f"arn:{_v(v, 'partition')}:iam::{_v(v, 'account')}:role{path}{_v(v, 'name')}"


def _named_role_arn(v: Mapping[str, str], props: Mapping[str, Any]) -> str:
    """The role a policy resource writes on: its ``RoleName`` (a name, or an ARN)."""
    name = str(props.get("RoleName") or "")
    if name.startswith("arn:"):
        return name
    return f"arn:{_v(v, 'partition')}:iam::{_v(v, 'account')}:role/{name}"


def _regional(service: str, resource: str) -> Callable[[Mapping[str, str], Mapping[str, Any]], str]:
    def build(v: Mapping[str, str], _props: Mapping[str, Any]) -> str:
        tail = resource.format(name=_v(v, "name"), ref=_v(v, "ref"))
        return f"arn:{_v(v, 'partition')}:{service}:{_v(v, 'region')}:{_v(v, 'account')}:{tail}"

    return build


def _events_rule_arn(v: Mapping[str, str], props: Mapping[str, Any]) -> str:
    bus = str(props.get("EventBusName") or "default")
    if bus.startswith("arn:"):
        bus = bus.rsplit("/", 1)[-1]
    bus_part = "" if bus == "default" else f"{bus}/"
    return (
        f"arn:{_v(v, 'partition')}:events:{_v(v, 'region')}:{_v(v, 'account')}:"
        f"rule/{bus_part}{_v(v, 'name')}"
    )


def _s3_bucket_arn(v: Mapping[str, str], props: Mapping[str, Any]) -> str:
    bucket = str(props.get("Bucket") or _v(v, "name"))
    return f"arn:{_v(v, 'partition')}:s3:::{bucket}"


def _apigateway(path: str) -> Callable[[Mapping[str, str], Mapping[str, Any]], str]:
    def build(v: Mapping[str, str], props: Mapping[str, Any]) -> str:
        return f"arn:{_v(v, 'partition')}:apigateway:{_v(v, 'region')}::" + path.format(
            ref=_v(v, "ref"), **{k: str(x) for k, x in props.items() if isinstance(x, str)}
        )

    return build


def _function_of(v: Mapping[str, str], props: Mapping[str, Any]) -> str:
    return function_arn(str(props.get("FunctionName") or ""), v)


def function_arn(name: str, v: Mapping[str, str]) -> str:
    """A Lambda function ARN from a name, a partial ARN or an ARN (qualifier dropped)."""
    if name.startswith("arn:"):
        parts = name.split(":")
        return ":".join(parts[:7])
    if ":function:" in name:
        return f"arn:{_v(v, 'partition')}:lambda:{_v(v, 'region')}:{name}"
    return f"arn:{_v(v, 'partition')}:lambda:{_v(v, 'region')}:{_v(v, 'account')}:function:{name}"


_API = "arn:{partition}:apigateway:{region}::"

# NOTE: CloudWatch Logs checks log-group actions on the group's streams; AWS's denial reads
# "on resource: arn:aws:logs:REGION:ACCOUNT:log-group:NAME:log-stream:".
_LOG_STREAMS = "{arn}:log-stream:"

OVERRIDES: dict[str, ResourceCalls] = {
    # --- IAM ---------------------------------------------------------------------------------
    "AWS::IAM::Role": ResourceCalls(
        service="Iam",
        status=403,
        arn=_role_arn,
        schema="fc1cc88c36933c6f",
        create=(
            # A permissions boundary goes in the CreateRole call, as its condition key.
            Call("iam:CreateRole", context={"iam:PermissionsBoundary": "{p:PermissionsBoundary}"}),
            Call("iam:TagRole", when="has:Tags"),
            Call("iam:PutRolePolicy", when="each:Policies"),
            Call(
                "iam:AttachRolePolicy",
                when="each:ManagedPolicyArns",
                context={"iam:PolicyARN": "{item}"},
            ),
            Call("iam:GetRole", phase=Phase.AFTER),
        ),
        update=(
            Call("iam:UpdateAssumeRolePolicy", when="changed:AssumeRolePolicyDocument"),
            Call("iam:UpdateRole", when="changed:MaxSessionDuration,Description"),
            Call("iam:PutRolePolicy", when="added:Policies"),
            Call("iam:DeleteRolePolicy", when="removed:Policies"),
            Call(
                "iam:AttachRolePolicy",
                when="added:ManagedPolicyArns",
                context={"iam:PolicyARN": "{item}"},
            ),
            Call(
                "iam:DetachRolePolicy",
                when="removed:ManagedPolicyArns",
                context={"iam:PolicyARN": "{item}"},
            ),
            Call("iam:TagRole", when="added:Tags"),
            Call("iam:UntagRole", when="removed:Tags"),
        ),
        delete=(
            Call("iam:DeleteRolePolicy", when="each:Policies"),
            Call(
                "iam:DetachRolePolicy",
                when="each:ManagedPolicyArns",
                context={"iam:PolicyARN": "{item}"},
            ),
            Call("iam:DeleteRole"),
        ),
    ),
    # --- Lambda ------------------------------------------------------------------------------
    "AWS::Lambda::Function": ResourceCalls(
        service="Lambda",
        status=403,
        arn=_regional("lambda", "function:{name}"),
        schema="408e096ba2007b98",
        create=(
            Call("lambda:CreateFunction"),
            Call(
                "iam:PassRole",
                resource="{p:Role}",
                context={"iam:PassedToService": "lambda.amazonaws.com"},
            ),
            Call(
                "s3:GetObject",
                resource="arn:{partition}:s3:::{p:Code.S3Bucket}/{p:Code.S3Key}",
                when="has:Code.S3Bucket",
                shape=MessageShape.LAMBDA_S3_CODE,
            ),
            Call(
                "s3:GetObjectVersion",
                resource="arn:{partition}:s3:::{p:Code.S3Bucket}/{p:Code.S3Key}",
                when="has:Code.S3ObjectVersion",
                shape=MessageShape.LAMBDA_S3_CODE,
            ),
            Call("lambda:TagResource", when="has:Tags"),
            Call("lambda:GetLayerVersion", resource="{item}", when="each:Layers"),
            Call("ec2:DescribeSecurityGroups", resource="*", when="has:VpcConfig"),
            Call("ec2:DescribeSubnets", resource="*", when="has:VpcConfig"),
            Call("ec2:DescribeVpcs", resource="*", when="has:VpcConfig"),
            Call("lambda:PutFunctionConcurrency", when="has:ReservedConcurrentExecutions"),
            Call("lambda:GetFunction", phase=Phase.AFTER),
        ),
        update=(
            Call(
                "lambda:UpdateFunctionConfiguration",
                when="changed:Role,Handler,Runtime,MemorySize,Timeout,Environment,Layers,"
                "VpcConfig,Description,TracingConfig,DeadLetterConfig,KmsKeyArn,"
                "EphemeralStorage",
            ),
            Call(
                "iam:PassRole",
                resource="{p:Role}",
                when="changed:Role",
                context={"iam:PassedToService": "lambda.amazonaws.com"},
            ),
            Call("lambda:UpdateFunctionCode", when="changed:Code"),
            Call(
                "s3:GetObject",
                resource="arn:{partition}:s3:::{p:Code.S3Bucket}/{p:Code.S3Key}",
                when="changed:Code",
                shape=MessageShape.LAMBDA_S3_CODE,
            ),
            Call("lambda:PutFunctionConcurrency", when="changed:ReservedConcurrentExecutions"),
            Call("lambda:TagResource", when="added:Tags"),
            Call("lambda:UntagResource", when="removed:Tags"),
            Call("lambda:GetFunction"),
        ),
        delete=(Call("lambda:DeleteFunction"),),
    ),
    # The inline policy of a role the template names (RoleName): IAM checks the writes on
    # that role, not on the policy's own generated id.
    "AWS::IAM::RolePolicy": ResourceCalls(
        service="Iam",
        status=403,
        arn=_named_role_arn,
        schema="d930ea4463e25855",
        create=(Call("iam:PutRolePolicy"), Call("iam:GetRolePolicy", phase=Phase.AFTER)),
        update=(Call("iam:PutRolePolicy"),),
        delete=(Call("iam:DeleteRolePolicy"),),
    ),
    "AWS::Lambda::Permission": ResourceCalls(
        service="Lambda",
        status=403,
        arn=_function_of,
        schema="273a66a590dfa9f0",
        create=(
            Call(
                "lambda:AddPermission",
                context={"lambda:Principal": "{p:Principal}"},
            ),
        ),
        delete=(Call("lambda:RemovePermission"),),
    ),
    "AWS::Lambda::Version": ResourceCalls(
        service="Lambda",
        status=403,
        arn=_function_of,
        schema="2bb0ad3a1fae9e7b",
        create=(
            Call("lambda:PublishVersion"),
            Call("lambda:GetFunctionConfiguration", resource="{ref}", phase=Phase.AFTER),
        ),
        update=(Call("lambda:GetFunctionConfiguration", resource="{ref}"),),
        delete=(Call("lambda:DeleteFunction", resource="{ref}"),),
    ),
    "AWS::Lambda::EventSourceMapping": ResourceCalls(
        service="Lambda",
        status=403,
        arn=_regional("lambda", "event-source-mapping:{ref}"),
        schema="fda57d3016dc05c0",
        create=(
            Call(
                "lambda:CreateEventSourceMapping",
                resource="*",
                context={"lambda:FunctionArn": "{function:FunctionName}"},
            ),
            Call("lambda:TagResource", when="has:Tags", phase=Phase.AFTER),
            Call(
                "lambda:GetEventSourceMapping",
                phase=Phase.AFTER,
                context={"lambda:FunctionArn": "{function:FunctionName}"},
            ),
        ),
        update=(
            Call(
                "lambda:UpdateEventSourceMapping",
                context={"lambda:FunctionArn": "{function:FunctionName}"},
            ),
            Call(
                "lambda:GetEventSourceMapping",
                context={"lambda:FunctionArn": "{function:FunctionName}"},
            ),
        ),
        delete=(
            Call(
                "lambda:DeleteEventSourceMapping",
                context={"lambda:FunctionArn": "{function:FunctionName}"},
            ),
        ),
    ),
    # --- CloudWatch Logs ---------------------------------------------------------------------
    "AWS::Logs::LogGroup": ResourceCalls(
        service="CloudWatchLogs",
        status=400,
        arn=_regional("logs", "log-group:{name}"),
        schema="8614d83fb64a3f33",
        create=(
            Call("logs:CreateLogGroup", resource=_LOG_STREAMS),
            Call("logs:TagResource", when="has:Tags", shape=MessageShape.LOGS_TAGS),
            Call("logs:PutRetentionPolicy", resource=_LOG_STREAMS, when="has:RetentionInDays"),
            Call(
                "logs:PutDataProtectionPolicy",
                resource=_LOG_STREAMS,
                when="has:DataProtectionPolicy",
            ),
            Call("logs:DescribeLogGroups", resource="*", phase=Phase.AFTER),
        ),
        update=(
            Call(
                "logs:PutRetentionPolicy", resource=_LOG_STREAMS, when="changed-set:RetentionInDays"
            ),
            Call(
                "logs:DeleteRetentionPolicy",
                resource=_LOG_STREAMS,
                when="changed-unset:RetentionInDays",
            ),
            Call("logs:TagResource", when="added:Tags"),
            Call("logs:UntagResource", when="removed:Tags"),
            Call("logs:DescribeLogGroups", resource="*"),
        ),
        delete=(Call("logs:DeleteLogGroup", resource=_LOG_STREAMS),),
    ),
    # --- S3 ----------------------------------------------------------------------------------
    "AWS::S3::Bucket": ResourceCalls(
        service="S3",
        status=403,
        arn=_s3_bucket_arn,
        schema="69ff2c30cdaed778",
        create=(
            Call("s3:CreateBucket"),
            Call("s3:PutBucketTagging", when="has:Tags"),
            Call("s3:PutEncryptionConfiguration", when="has:BucketEncryption"),
            Call("s3:PutBucketVersioning", when="has:VersioningConfiguration"),
            Call("s3:PutLifecycleConfiguration", when="has:LifecycleConfiguration"),
            Call("s3:PutBucketPublicAccessBlock", when="has:PublicAccessBlockConfiguration"),
            Call("s3:PutBucketOwnershipControls", when="has:OwnershipControls"),
            Call("s3:PutBucketCORS", when="has:CorsConfiguration"),
            Call("s3:PutBucketWebsite", when="has:WebsiteConfiguration"),
            Call("s3:PutBucketLogging", when="has:LoggingConfiguration"),
            Call("s3:PutBucketNotification", when="has:NotificationConfiguration"),
            Call("s3:PutAccelerateConfiguration", when="has:AccelerateConfiguration"),
        ),
        update=(
            Call("s3:PutBucketTagging", when="changed:Tags"),
            Call("s3:PutEncryptionConfiguration", when="changed:BucketEncryption"),
            Call("s3:PutBucketVersioning", when="changed:VersioningConfiguration"),
            Call("s3:PutLifecycleConfiguration", when="changed:LifecycleConfiguration"),
            Call("s3:PutBucketPublicAccessBlock", when="changed:PublicAccessBlockConfiguration"),
            Call("s3:PutBucketCORS", when="changed:CorsConfiguration"),
        ),
        delete=(Call("s3:DeleteBucket"),),
    ),
    "AWS::S3::BucketPolicy": ResourceCalls(
        service="S3",
        status=403,
        arn=_s3_bucket_arn,
        schema="052a5ef1e32d1349",
        create=(Call("s3:GetBucketPolicy"), Call("s3:PutBucketPolicy")),
        update=(Call("s3:GetBucketPolicy"), Call("s3:PutBucketPolicy")),
        delete=(Call("s3:GetBucketPolicy"), Call("s3:DeleteBucketPolicy")),
    ),
    # --- API Gateway (REST) --------------------------------------------------------------------
    # NOTE: API Gateway authorises by HTTP method on the path the call goes to.
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-create-and-manage-api.html
    "AWS::ApiGateway::RestApi": ResourceCalls(
        service="ApiGateway",
        status=403,
        arn=_apigateway("/restapis/{ref}"),
        schema="c8114a4cebbb4dcd",
        create=(
            Call("apigateway:POST", resource=_API + "/restapis"),
            Call("apigateway:PUT", when="has:Body", phase=Phase.AFTER),
            Call("apigateway:PUT", when="has:BodyS3Location", phase=Phase.AFTER),
            Call(
                "s3:GetObject",
                resource="arn:{partition}:s3:::{p:BodyS3Location.Bucket}/{p:BodyS3Location.Key}",
                when="has:BodyS3Location",
            ),
            # NOTE: API Gateway authorises tagging as a PUT on /tags/URL-ENCODED-ARN.
            Call(
                "apigateway:PUT",
                resource=_API + "/tags/{arn_encoded}",
                when="has:Tags",
                phase=Phase.AFTER,
            ),
            Call("apigateway:UpdateRestApiPolicy", when="has:Policy", phase=Phase.AFTER),
            Call("apigateway:PATCH", when="has:Policy", phase=Phase.AFTER),
            Call("apigateway:GET", phase=Phase.AFTER),
        ),
        update=(
            Call("apigateway:PATCH", when="changed:Name,Description,Policy,EndpointConfiguration"),
            Call("apigateway:PUT", when="changed:Body,BodyS3Location"),
            Call("apigateway:PUT", resource=_API + "/tags/{arn_encoded}", when="added:Tags"),
            Call("apigateway:DELETE", resource=_API + "/tags/{arn_encoded}", when="removed:Tags"),
            Call("apigateway:GET"),
        ),
        delete=(Call("apigateway:DELETE"),),
    ),
    "AWS::ApiGateway::Resource": ResourceCalls(
        service="ApiGateway",
        status=403,
        arn=_apigateway("/restapis/{RestApiId}/resources/{ref}"),
        schema="7bc03cb00d6eac21",
        # CreateResource posts to /restapis/ID/resources/PARENT; IAM names it by the
        # collection it adds to (resource type "Resources").
        create=(Call("apigateway:POST", resource=_API + "/restapis/{p:RestApiId}/resources"),),
        update=(Call("apigateway:GET"), Call("apigateway:PATCH")),
        delete=(Call("apigateway:DELETE"),),
    ),
    "AWS::ApiGateway::Method": ResourceCalls(
        service="ApiGateway",
        status=403,
        arn=_apigateway("/restapis/{RestApiId}/resources/{ResourceId}/methods/{HttpMethod}"),
        schema="af2b8744618e1ebe",
        create=(
            Call("apigateway:PUT"),
            Call("apigateway:PUT", resource="{arn}/integration", when="has:Integration"),
            Call(
                "iam:PassRole",
                resource="{p:Integration.Credentials}",
                when="has:Integration.Credentials",
                context={"iam:PassedToService": "apigateway.amazonaws.com"},
            ),
            Call(
                "apigateway:PUT",
                resource="{arn}/responses/{item:StatusCode}",
                when="each:MethodResponses",
            ),
            Call("apigateway:GET", phase=Phase.AFTER),
        ),
        update=(
            Call("apigateway:GET"),
            Call("apigateway:DELETE"),
            Call("apigateway:PUT"),
            Call("apigateway:PUT", resource="{arn}/integration", when="has:Integration"),
        ),
        delete=(Call("apigateway:DELETE"),),
    ),
    "AWS::ApiGateway::Deployment": ResourceCalls(
        service="ApiGateway",
        status=403,
        arn=_apigateway("/restapis/{RestApiId}/deployments/{ref}"),
        schema="75a2510533fcb770",
        create=(
            Call("apigateway:POST", resource=_API + "/restapis/{p:RestApiId}/deployments"),
            Call("apigateway:GET", phase=Phase.AFTER),
        ),
        update=(Call("apigateway:PATCH"), Call("apigateway:GET")),
        delete=(Call("apigateway:GET"), Call("apigateway:DELETE")),
    ),
    # --- DynamoDB ----------------------------------------------------------------------------
    "AWS::DynamoDB::Table": ResourceCalls(
        service="DynamoDb",
        status=400,
        arn=_regional("dynamodb", "table/{name}"),
        schema="8de1012311991c4d",
        create=(
            Call("dynamodb:CreateTable"),
            Call("dynamodb:TagResource", when="has:Tags"),
            Call("dynamodb:DescribeTable", phase=Phase.AFTER),
            Call(
                "dynamodb:UpdateTimeToLive", when="has:TimeToLiveSpecification", phase=Phase.AFTER
            ),
            Call(
                "dynamodb:UpdateContinuousBackups",
                when="has:PointInTimeRecoverySpecification",
                phase=Phase.AFTER,
            ),
            Call(
                "dynamodb:UpdateContributorInsights",
                when="has:ContributorInsightsSpecification",
                phase=Phase.AFTER,
            ),
        ),
        update=(
            Call(
                "dynamodb:UpdateTable",
                when="changed:BillingMode,ProvisionedThroughput,AttributeDefinitions,"
                "GlobalSecondaryIndexes,StreamSpecification,SSESpecification",
            ),
            Call("dynamodb:UpdateTimeToLive", when="changed:TimeToLiveSpecification"),
            Call(
                "dynamodb:UpdateContinuousBackups", when="changed:PointInTimeRecoverySpecification"
            ),
            Call("dynamodb:TagResource", when="added:Tags"),
            Call("dynamodb:UntagResource", when="removed:Tags"),
            Call("dynamodb:DescribeTable"),
        ),
        delete=(Call("dynamodb:DeleteTable"), Call("dynamodb:DescribeTable")),
    ),
    # --- SQS ---------------------------------------------------------------------------------
    "AWS::SQS::Queue": ResourceCalls(
        service="Sqs",
        status=403,
        arn=_regional("sqs", "{name}"),
        schema="0b0fc52a92647916",
        create=(
            Call("sqs:CreateQueue"),
            Call("sqs:TagQueue", when="has:Tags"),
            Call("sqs:GetQueueAttributes", phase=Phase.AFTER),
        ),
        update=(
            Call(
                "sqs:SetQueueAttributes",
                when="changed:VisibilityTimeout,MessageRetentionPeriod,DelaySeconds,"
                "MaximumMessageSize,ReceiveMessageWaitTimeSeconds,RedrivePolicy,"
                "KmsMasterKeyId,SqsManagedSseEnabled",
            ),
            Call("sqs:TagQueue", when="added:Tags"),
            Call("sqs:UntagQueue", when="removed:Tags"),
            Call("sqs:GetQueueAttributes"),
        ),
        delete=(Call("sqs:DeleteQueue"),),
    ),
    # --- SNS ---------------------------------------------------------------------------------
    "AWS::SNS::Topic": ResourceCalls(
        service="Sns",
        status=403,
        arn=_regional("sns", "{name}"),
        schema="55996ca553a6ab0c",
        create=(
            Call("sns:CreateTopic"),
            Call("sns:TagResource", when="has:Tags"),
            Call(
                "sns:Subscribe",
                when="each:Subscription",
                phase=Phase.AFTER,
                context={"sns:Protocol": "{item:Protocol}", "sns:Endpoint": "{item:Endpoint}"},
            ),
            Call("sns:GetTopicAttributes", phase=Phase.AFTER),
        ),
        update=(
            Call(
                "sns:SetTopicAttributes",
                when="changed:DisplayName,KmsMasterKeyId,DeliveryStatusLogging,"
                "ContentBasedDeduplication,TracingConfig,SignatureVersion",
            ),
            Call(
                "sns:Subscribe",
                when="added:Subscription",
                context={"sns:Protocol": "{item:Protocol}", "sns:Endpoint": "{item:Endpoint}"},
            ),
            Call("sns:Unsubscribe", when="removed:Subscription"),
            Call("sns:TagResource", when="added:Tags"),
            Call("sns:UntagResource", when="removed:Tags"),
            Call("sns:GetTopicAttributes"),
        ),
        delete=(Call("sns:GetTopicAttributes"), Call("sns:DeleteTopic")),
    ),
    "AWS::SNS::Subscription": ResourceCalls(
        service="Sns",
        status=403,
        arn=lambda v, props: str(props.get("TopicArn") or ""),
        schema="bfe3b47089380bde",
        create=(
            Call(
                "sns:Subscribe",
                context={"sns:Protocol": "{p:Protocol}", "sns:Endpoint": "{p:Endpoint}"},
            ),
            Call(
                "iam:PassRole",
                resource="{p:SubscriptionRoleArn}",
                when="has:SubscriptionRoleArn",
                context={"iam:PassedToService": "sns.amazonaws.com"},
            ),
        ),
        update=(Call("sns:SetSubscriptionAttributes"),),
        delete=(Call("sns:Unsubscribe"),),
    ),
    # --- EventBridge -------------------------------------------------------------------------
    "AWS::Events::Rule": ResourceCalls(
        service="EventBridge",
        status=400,
        arn=_events_rule_arn,
        schema="17f1d0bd2ac17e93",
        create=(
            Call("events:PutRule"),
            Call("events:TagResource", when="has:Tags"),
            Call(
                "iam:PassRole",
                resource="{p:RoleArn}",
                when="has:RoleArn",
                context={"iam:PassedToService": "events.amazonaws.com"},
            ),
            Call(
                "events:PutTargets",
                when="each:Targets",
                context={"events:TargetArn": "{item:Arn}"},
            ),
            Call("events:DescribeRule", phase=Phase.AFTER),
        ),
        update=(
            Call(
                "events:PutRule",
                when="changed:ScheduleExpression,EventPattern,State,Description,RoleArn",
            ),
            Call(
                "events:PutTargets",
                when="added:Targets",
                context={"events:TargetArn": "{item:Arn}"},
            ),
            Call("events:RemoveTargets", when="removed:Targets"),
            Call("events:DescribeRule"),
        ),
        delete=(
            Call("events:DescribeRule"),
            Call("events:RemoveTargets", when="each:Targets"),
            Call("events:DeleteRule"),
        ),
    ),
    # --- API Gateway (HTTP APIs) ---------------------------------------------------------------
    # NOTE: the v2 API's calls go to /v2/apis/... and IAM names them without the /v2 prefix;
    # tags travel in the create call's body (no separate tagging call at create).
    "AWS::ApiGatewayV2::Api": ResourceCalls(
        service="ApiGatewayV2",
        status=403,
        arn=_apigateway("/apis/{ref}"),
        schema="",
        create=(Call("apigateway:POST", resource=_API + "/apis"),),
        update=(
            Call("apigateway:PATCH", when="changed-other:Tags"),
            Call("apigateway:PUT", when="changed:Body,BodyS3Location"),
            Call("apigateway:GET"),
        ),
        delete=(Call("apigateway:GET"), Call("apigateway:DELETE")),
    ),
    "AWS::ApiGatewayV2::Stage": ResourceCalls(
        service="ApiGatewayV2",
        status=403,
        arn=_apigateway("/apis/{ApiId}/stages/{StageName}"),
        schema="",
        create=(Call("apigateway:POST", resource=_API + "/apis/{p:ApiId}/stages"),),
        update=(Call("apigateway:PATCH", when="changed-other:Tags"),),
        delete=(Call("apigateway:DELETE"),),
    ),
    "AWS::ApiGatewayV2::Integration": ResourceCalls(
        service="ApiGatewayV2",
        status=403,
        arn=_apigateway("/apis/{ApiId}/integrations/{ref}"),
        schema="",
        create=(
            Call("apigateway:POST", resource=_API + "/apis/{p:ApiId}/integrations"),
            Call(
                "iam:PassRole",
                resource="{p:CredentialsArn}",
                when="has:CredentialsArn",
                context={"iam:PassedToService": "apigateway.amazonaws.com"},
            ),
        ),
        update=(Call("apigateway:PATCH"), Call("apigateway:GET")),
        delete=(Call("apigateway:GET"), Call("apigateway:DELETE")),
    ),
    "AWS::ApiGatewayV2::Route": ResourceCalls(
        service="ApiGatewayV2",
        status=403,
        arn=_apigateway("/apis/{ApiId}/routes/{ref}"),
        schema="",
        create=(Call("apigateway:POST", resource=_API + "/apis/{p:ApiId}/routes"),),
        update=(Call("apigateway:PATCH"), Call("apigateway:GET")),
        delete=(Call("apigateway:GET"), Call("apigateway:DELETE")),
    ),
    # --- Lambda: URLs and layers ---------------------------------------------------------------
    "AWS::Lambda::Url": ResourceCalls(
        service="Lambda",
        status=403,
        arn=lambda v, props: function_arn(str(props.get("TargetFunctionArn") or ""), v),
        schema="",
        create=(Call("lambda:CreateFunctionUrlConfig"),),
        update=(Call("lambda:UpdateFunctionUrlConfig"),),
        delete=(Call("lambda:DeleteFunctionUrlConfig"),),
    ),
    "AWS::Lambda::LayerVersion": ResourceCalls(
        service="Lambda",
        status=403,
        arn=lambda v, props: (
            f"arn:{_v(v, 'partition')}:lambda:{_v(v, 'region')}:{_v(v, 'account')}:"
            f"layer:{props.get('LayerName') or _v(v, 'name')}"
        ),
        schema="",
        create=(
            Call("lambda:PublishLayerVersion"),
            Call(
                "s3:GetObject",
                resource="arn:{partition}:s3:::{p:Content.S3Bucket}/{p:Content.S3Key}",
                when="has:Content.S3Bucket",
                shape=MessageShape.LAMBDA_S3_CODE,
            ),
        ),
        # A layer version is immutable: every change replaces it (all its properties are
        # create-only), so there is no update call.
        delete=(Call("lambda:DeleteLayerVersion", resource="{ref}"),),
    ),
    # --- SQS queue policies, log subscription filters --------------------------------------------
    "AWS::SQS::QueuePolicy": ResourceCalls(
        service="Sqs",
        status=403,
        arn=lambda v, props: "*",
        schema="",
        # One SetQueueAttributes (Policy) per queue, named by URL in Queues.
        create=(Call("sqs:SetQueueAttributes", resource="{queue:item}", when="each:Queues"),),
        update=(Call("sqs:SetQueueAttributes", resource="{queue:item}", when="each:Queues"),),
        delete=(Call("sqs:SetQueueAttributes", resource="{queue:item}", when="each:Queues"),),
    ),
    "AWS::Logs::SubscriptionFilter": ResourceCalls(
        service="CloudWatchLogs",
        status=400,
        arn=lambda v, props: (
            f"arn:{_v(v, 'partition')}:logs:{_v(v, 'region')}:{_v(v, 'account')}:"
            f"log-group:{props.get('LogGroupName') or ''}:log-stream:"
        ),
        schema="",
        create=(
            Call("logs:PutSubscriptionFilter"),
            Call(
                "iam:PassRole",
                resource="{p:RoleArn}",
                when="has:RoleArn",
                context={"iam:PassedToService": "logs.amazonaws.com"},
            ),
            Call("logs:DescribeSubscriptionFilters", phase=Phase.AFTER),
        ),
        update=(Call("logs:PutSubscriptionFilter"), Call("logs:DescribeSubscriptionFilters")),
        delete=(Call("logs:DeleteSubscriptionFilter"),),
    ),
}


def override_keys() -> frozenset[tuple[str, str]]:
    """Every (type, action) an override decides."""
    return frozenset(
        (type_name, call.action)
        for type_name, entry in OVERRIDES.items()
        for call in (*entry.create, *entry.update, *entry.delete)
    )
