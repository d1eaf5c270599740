"""The sandbox role and stack, through the admin identity: policy, stack state, events.

Writes only what discover owns: its one inline policy on the sandbox role, and the configured
stack when a failed state blocks the next deploy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import unquote

import botocore.exceptions
import botocore.parsers
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from discover.errors import DiscoverError
from discover.known_messages import Target
from discover.policy import PolicyDocument
from discover.ports import StackCleanupError

# States after which CloudFormation refuses a new deploy of the same stack.
BLOCKING_STATES = frozenset(
    {
        "REVIEW_IN_PROGRESS",
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
        "CREATE_FAILED",
        "DELETE_FAILED",
        "UPDATE_ROLLBACK_FAILED",
    }
)
# States a stack is deployed in: an update or a remove can start from them.
DEPLOYED_STATES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
)
DEPLOYMENT_BUCKET_LOGICAL_ID = "ServerlessDeploymentBucket"
_THROTTLING = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)

T = TypeVar("T")


class SandboxError(DiscoverError):
    """The sandbox role or stack is not in a state discover can work with."""

    exit_code = 2


class StackNotDeletedError(SandboxError, StackCleanupError):
    """A blocked stack's delete ended DELETE_FAILED."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        return (
            code in _THROTTLING
            or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
        )
    return isinstance(
        exc, botocore.exceptions.ConnectionError | botocore.exceptions.ReadTimeoutError
    )


aws_retry = retry(
    retry=retry_if_exception(_is_transient),
    wait=wait_random_exponential(multiplier=0.5, max=20),
    stop=stop_after_attempt(6),
    reraise=True,
)


def _decode_document(document: Any) -> dict[str, Any]:
    """IAM returns policy documents URL-encoded; boto3 usually decodes them already."""
    if isinstance(document, str):
        decoded: dict[str, Any] = json.loads(unquote(document))
        return decoded
    return dict(document)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class AwsSandbox:
    """The loop's ``Sandbox`` on AWS (or the local sandbox), with admin boto3 clients."""

    def __init__(
        self,
        session: Any,
        *,
        role_arn: str,
        policy_name: str,
        stack_name: str,
        region: str,
        endpoint_url: str | None = None,
        deployment_bucket: str | None = None,
        managed_stacks: Sequence[str] = (),
        artifact_bucket: tuple[str | None, str] = (None, DEPLOYMENT_BUCKET_LOGICAL_ID),
        stack_wait_s: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.role_arn = role_arn
        self.role_name = role_arn.rsplit("/", 1)[-1]
        self._policy_name = policy_name
        self._stack_name = stack_name
        self._deployment_bucket = deployment_bucket
        # Stacks the deploy CLI creates for itself (SAM's artifact stack): cleaned when blocked.
        self._managed_stacks = tuple(managed_stacks)
        # The stack (None: the configured one) and logical id of the CLI's artifact bucket.
        self._artifact_bucket = artifact_bucket
        self._stack_wait_s = stack_wait_s
        self._sleep = sleep
        kwargs: dict[str, Any] = {"region_name": region}
        if endpoint_url is not None:
            kwargs["endpoint_url"] = endpoint_url
        self.iam = session.client("iam", **kwargs)
        self.cloudformation = session.client("cloudformation", **kwargs)
        self.s3 = session.client("s3", **kwargs)
        self.sts = session.client("sts", **kwargs)

    # --- identity and the role -------------------------------------------------------------

    @aws_retry
    def admin_identity(self) -> dict[str, str]:
        answer = self.sts.get_caller_identity()
        return {"account": str(answer["Account"]), "arn": str(answer["Arn"])}

    @aws_retry
    def read_policy(self) -> PolicyDocument | None:
        """discover's inline policy on the role as it is now; None when there is none."""
        try:
            answer = self.iam.get_role_policy(RoleName=self.role_name, PolicyName=self._policy_name)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                return None
            raise
        return PolicyDocument.from_dict(_decode_document(answer["PolicyDocument"]))

    @aws_retry
    def check_role(self) -> int:
        """The role's MaxSessionDuration; refuse early when the role cannot be read."""
        try:
            role = self.iam.get_role(RoleName=self.role_name)["Role"]
        except botocore.exceptions.ClientError as exc:
            msg = f"cannot read the sandbox role {self.role_arn}: {_code(exc)}"
            raise SandboxError(
                msg,
                tip="Create the role first (see the README), and run discover with "
                "credentials that may edit it.",
            ) from exc
        return int(role.get("MaxSessionDuration", 3600))

    @aws_retry
    def backup(self) -> dict[str, Any]:
        """The role's inline and attached policies as they are now, for the journal."""
        inline: dict[str, Any] = {}
        for page in self.iam.get_paginator("list_role_policies").paginate(RoleName=self.role_name):
            for name in page["PolicyNames"]:
                document = self.iam.get_role_policy(RoleName=self.role_name, PolicyName=name)
                inline[name] = _decode_document(document["PolicyDocument"])
        attached: list[str] = []
        paginator = self.iam.get_paginator("list_attached_role_policies")
        for page in paginator.paginate(RoleName=self.role_name):
            attached += [p["PolicyArn"] for p in page["AttachedPolicies"]]
        return {"inline": inline, "attached": sorted(attached)}

    def restore(self, backup: dict[str, Any]) -> None:
        """Put discover's own inline policy back as the backup had it (or remove it)."""
        document = backup.get("inline", {}).get(self._policy_name)
        if document is None:
            self.apply_policy(PolicyDocument())
        else:
            self._put_document(document)

    @aws_retry
    def _put_document(self, document: dict[str, Any]) -> None:
        self.iam.put_role_policy(
            RoleName=self.role_name,
            PolicyName=self._policy_name,
            PolicyDocument=json.dumps(document, separators=(",", ":")),
        )

    # --- managed policies, for verifying a split policy ----------------------------------

    def attach_managed(self, parts: Sequence[PolicyDocument]) -> list[str]:
        """Create one managed policy per part and attach it to the role; their ARNs."""
        arns: list[str] = []
        try:
            for number, part in enumerate(parts, start=1):
                arn = self._create_policy(f"{self._policy_name}-verify-{number}", part)
                arns.append(arn)
                self._attach(arn)
        except BaseException:
            self.detach_managed(arns)
            raise
        return arns

    @aws_retry
    def _create_policy(self, name: str, part: PolicyDocument) -> str:
        answer = self.iam.create_policy(
            PolicyName=name,
            PolicyDocument=json.dumps(part.to_dict(), separators=(",", ":")),
            Description="discover verify: one part of a policy split for IAM's quota",
        )
        return str(answer["Policy"]["Arn"])

    @aws_retry
    def _attach(self, arn: str) -> None:
        self.iam.attach_role_policy(RoleName=self.role_name, PolicyArn=arn)

    @aws_retry
    def detach_managed(self, arns: Sequence[str]) -> None:
        for arn in arns:
            try:
                self.iam.detach_role_policy(RoleName=self.role_name, PolicyArn=arn)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) != "NoSuchEntity":
                    raise
            try:
                self.iam.delete_policy(PolicyArn=arn)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) != "NoSuchEntity":
                    raise

    # --- the run lock, as a tag on the role ---------------------------------------------

    @aws_retry
    def role_tags(self) -> dict[str, str]:
        tags = self.iam.list_role_tags(RoleName=self.role_name).get("Tags", [])
        return {str(t["Key"]): str(t["Value"]) for t in tags}

    @aws_retry
    def tag_role(self, key: str, value: str) -> None:
        self.iam.tag_role(RoleName=self.role_name, Tags=[{"Key": key, "Value": value}])

    @aws_retry
    def untag_role(self, key: str) -> None:
        self.iam.untag_role(RoleName=self.role_name, TagKeys=[key])

    @aws_retry
    def apply_policy(self, policy: PolicyDocument) -> None:
        if not policy.grants:
            try:
                self.iam.delete_role_policy(RoleName=self.role_name, PolicyName=self._policy_name)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) != "NoSuchEntity":
                    raise
            return
        self.iam.put_role_policy(
            RoleName=self.role_name,
            PolicyName=self._policy_name,
            PolicyDocument=json.dumps(policy.to_dict(), separators=(",", ":")),
        )

    # --- the stack ------------------------------------------------------------------------

    @aws_retry
    def stack_status(self) -> str | None:
        try:
            stacks = self.cloudformation.describe_stacks(StackName=self._stack_name)["Stacks"]
        except botocore.exceptions.ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return str(stacks[0]["StackStatus"]) if stacks else None

    def prepare(self) -> None:
        """Wait out a stack operation in progress; recover a state that blocks deploys.

        A stack stuck in ``UPDATE_ROLLBACK_FAILED`` (a denial during the rollback of an update)
        has its rollback continued, as the admin, so it can be updated again; if that fails
        too, or the state is any other blocking one (``DELETE_FAILED``, a failed create), the
        stack is deleted (again) as the admin.
        """
        for name in self._managed_stacks:
            if self._status_of(name) in BLOCKING_STATES:
                self._delete_managed(name)
        status = self._settled()
        if status == "UPDATE_ROLLBACK_FAILED" and self._continue_rollback():
            return
        if status in BLOCKING_STATES:
            self.delete_stack()

    def deployed(self) -> bool:
        """True when the stack exists in a state an update or a remove can start from."""
        return self._settled() in DEPLOYED_STATES

    def _settled(self) -> str | None:
        deadline = time.monotonic() + self._stack_wait_s
        status = self.stack_status()
        while (
            status is not None
            and status.endswith("_IN_PROGRESS")
            and status != "REVIEW_IN_PROGRESS"
        ):
            if time.monotonic() > deadline:
                msg = f"stack {self._stack_name} stayed {status} for {self._stack_wait_s:.0f} s"
                raise SandboxError(msg, tip="Wait for it to finish in the console, then run again.")
            self._sleep(5)
            status = self.stack_status()
        return status

    def _continue_rollback(self) -> bool:
        """``ContinueUpdateRollback`` as the admin; True once the stack is back to its last state.

        NOTE: a stack in UPDATE_ROLLBACK_FAILED can only be rolled back further or deleted.
        https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-continueupdaterollback.html
        """
        try:
            self.cloudformation.continue_update_rollback(StackName=self._stack_name)
        except botocore.exceptions.ClientError:
            return False
        return self._settled() == "UPDATE_ROLLBACK_COMPLETE"

    def delete_stack(self) -> None:
        """Delete the configured stack (emptying its deployment bucket first) and wait."""
        # A bucket in another stack (SAM's managed one) is shared: never emptied here.
        bucket = self._bucket_name() if self._artifact_bucket[0] is None else None
        if bucket is not None:
            self._empty_bucket(bucket)
        self._delete_stack_call()
        deadline = time.monotonic() + self._stack_wait_s
        while (status := self.stack_status()) is not None and status != "DELETE_COMPLETE":
            if status == "DELETE_FAILED":
                msg = f"could not delete stack {self._stack_name} ({status})"
                raise StackNotDeletedError(msg, tip="Delete it by hand, then run again.")
            if time.monotonic() > deadline:
                msg = f"could not delete stack {self._stack_name} ({status})"
                raise SandboxError(msg, tip="Delete it by hand, then run again.")
            self._sleep(2)

    @aws_retry
    def _status_of(self, stack_name: str) -> str | None:
        try:
            stacks = self.cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        except botocore.exceptions.ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return str(stacks[0]["StackStatus"]) if stacks else None

    def _delete_managed(self, stack_name: str) -> None:
        self.cloudformation.delete_stack(StackName=stack_name)
        deadline = time.monotonic() + self._stack_wait_s
        while (status := self._status_of(stack_name)) not in {None, "DELETE_COMPLETE"}:
            if status == "DELETE_FAILED" or time.monotonic() > deadline:
                msg = f"could not delete stack {stack_name} ({status})"
                raise SandboxError(msg, tip="Delete it by hand, then run again.")
            self._sleep(2)

    @aws_retry
    def change_set_reasons_since(self, since: datetime) -> tuple[str, ...]:
        """Why change sets created since ``since`` failed, on the stack and the managed ones.

        A CLI may print only that a change set FAILED (SAM's managed stack does): the reason,
        such as a refused transform, is in the change set's ``StatusReason``.
        """
        reasons: list[str] = []
        for name in (self._stack_name, *self._managed_stacks):
            try:
                summaries = self.cloudformation.list_change_sets(StackName=name)["Summaries"]
            except botocore.exceptions.ClientError:
                continue  # no such stack
            for summary in summaries:
                created = summary.get("CreationTime")
                if summary.get("StackName", name) != name or summary.get("Status") != "FAILED":
                    continue
                if created is not None and created < since:
                    continue
                reason = summary.get("StatusReason")
                if reason is None:
                    detail = self.cloudformation.describe_change_set(
                        ChangeSetName=summary["ChangeSetId"]
                    )
                    reason = detail.get("StatusReason")
                if reason:
                    reasons.append(f"change set {summary.get('ChangeSetName')} of {name}: {reason}")
        return tuple(reasons)

    @aws_retry
    def _delete_stack_call(self) -> None:
        self.cloudformation.delete_stack(StackName=self._stack_name)

    def _empty_bucket(self, bucket: str) -> None:
        try:
            paginator = self.s3.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=bucket):
                objects = [
                    {"Key": o["Key"], "VersionId": o["VersionId"]}
                    for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
                ]
                if objects:
                    self.s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
        except botocore.exceptions.ClientError as exc:
            if _code(exc) not in {"NoSuchBucket", "404"}:
                raise

    def stack_events_since(self, since: datetime) -> tuple[dict[str, object], ...]:
        """The events of the stack, then of the CLI's managed stacks, at or after ``since``."""
        events: list[dict[str, object]] = []
        for name in (self._stack_name, *self._managed_stacks):
            events += self._events_of(name, since)
        return tuple(events)

    @aws_retry
    def _events_of(self, stack_name: str, since: datetime) -> tuple[dict[str, object], ...]:
        events: list[dict[str, object]] = []
        try:
            paginator = self.cloudformation.get_paginator("describe_stack_events")
            for page in paginator.paginate(StackName=stack_name):
                for event in page["StackEvents"]:
                    if event["Timestamp"] < since:
                        return tuple(events)
                    events.append(event)
        except botocore.exceptions.ClientError as exc:
            if "does not exist" in str(exc):
                return tuple(events)
            raise
        return tuple(events)

    # --- resources named by CLI messages ---------------------------------------------------

    def _bucket_name(self) -> str | None:
        if self._deployment_bucket:
            return self._deployment_bucket
        stack, logical_id = self._artifact_bucket
        try:
            answer = self.cloudformation.describe_stack_resource(
                StackName=stack or self._stack_name, LogicalResourceId=logical_id
            )
        except (
            botocore.exceptions.ClientError,
            botocore.exceptions.BotoCoreError,
            botocore.parsers.ResponseParserError,
        ):
            return None
        physical = answer["StackResourceDetail"].get("PhysicalResourceId")
        return str(physical) if physical else None

    def decode_authorization_message(self, encoded: str) -> str | None:
        try:
            answer = self.sts.decode_authorization_message(EncodedMessage=encoded)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in {"AccessDenied", "AccessDeniedException"}:
                return None
            raise
        return str(answer["DecodedMessage"])

    def locate(self, target: Target) -> str | None:
        # Every target today is the deployment bucket (its objects get "/*" from the loop).
        bucket = self._bucket_name()
        return f"arn:aws:s3:::{bucket}" if bucket and target in Target else None
