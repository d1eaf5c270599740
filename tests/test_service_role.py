"""The CloudFormation service role: its session, how the deploy is told, routing, the gate.

Unit tests over the pure parts and the loop with fakes (``tests.test_loop``); the sandbox's
side is in ``test_service_role_sandbox.py``, a whole run in ``test_service_role_e2e.py``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from discover.decision import Rules, Verdict, decide
from discover.denials import Denial, Reason
from discover.fence import build_fence
from discover.iamdb import Action
from discover.journal import Journal, read_events
from discover.loop import LoopSettings, discover
from discover.ownership import Owner, attribute
from discover.policy import Grant, PolicyDocument
from discover.ports import StackCleanupError
from discover.report import render_report
from discover.run_events import ServiceRoleGranted, StopReason, last_service_role_policy
from discover.service_role import (
    PASSED_TO_CLOUDFORMATION,
    SERVERLESS_COPY,
    ServiceRole,
    ServiceRoleError,
    ServiceRolePolicy,
    deploy_argv,
    passed_to_deploy,
    serverless_copy,
)
from tests.test_loop import (
    ACCOUNT,
    LAMBDA_ROLE,
    ROLE,
    SESSION,
    STACK,
    T0,
    Clock,
    FakeSandbox,
    FakeSessions,
    ScriptedDeployer,
    denied,
    failed,
    succeeded,
)

SERVICE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/cfn-deploy"
SERVICE_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/cfn-deploy/AWSCloudFormation"
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-hello"


def denial(principal: str | None, source: str = "stack-event", action: str = "x:Y") -> Denial:
    return Denial(
        action=action,
        resource=None,
        principal=principal,
        reason=Reason.NO_IDENTITY_POLICY,
        source=source,
        message="",
    )


# --- the role and its session ---------------------------------------------------------------


def test_the_session_is_the_one_cloudformation_names() -> None:
    """CloudFormation's calls are made as ``assumed-role/ROLE/AWSCloudFormation``."""
    assert ServiceRole(SERVICE_ROLE).session == SERVICE_SESSION
    with_path = ServiceRole(f"arn:aws:iam::{ACCOUNT}:role/deploy/cfn-deploy")
    assert with_path.session == SERVICE_SESSION  # the path is not part of the session ARN


@pytest.mark.parametrize(
    "text",
    ["cfn-deploy", f"arn:aws:iam::{ACCOUNT}:user/cfn-deploy", "arn:aws:s3:::bucket", ""],
)
def test_a_service_role_must_be_a_role_arn(text: str) -> None:
    with pytest.raises(ServiceRoleError, match="not a role ARN"):
        ServiceRole(text)


@pytest.mark.parametrize(
    ("name", "principal", "source", "owner"),
    [
        ("the run's session", SESSION, "output", Owner.SESSION),
        (
            "the service role, in the stack's events",
            SERVICE_SESSION,
            "stack-event",
            Owner.SERVICE_ROLE,
        ),
        ("the service role, decoded", SERVICE_SESSION, "output (decoded)", Owner.SERVICE_ROLE),
        # Text in the deploy's output naming the role's session is anyone's: never its own.
        ("the service role, in the output", SERVICE_SESSION, "output", Owner.FOREIGN),
        ("another session of the role", SERVICE_SESSION + "x", "stack-event", Owner.FOREIGN),
        (
            "another role's CloudFormation",
            SERVICE_SESSION.replace("cfn-deploy", "admin"),
            "stack-event",
            Owner.FOREIGN,
        ),
        # With a service role, CloudFormation makes every resource's calls as it.
        ("nobody named, stack event", None, "stack-event", Owner.SERVICE_ROLE),
        ("nobody named, CLI message", None, "cli-message (GetObject)", Owner.TRUSTED),
        ("nobody named, output", None, "output", Owner.UNATTRIBUTED),
    ],
)
def test_whose_denial(name: str, principal: str | None, source: str, owner: Owner) -> None:
    assert attribute(denial(principal, source), SESSION, SERVICE_SESSION) is owner, name


def test_without_a_service_role_its_session_is_foreign() -> None:
    assert attribute(denial(SERVICE_SESSION), SESSION) is Owner.FOREIGN


def test_pass_role_of_the_service_role_is_only_to_cloudformation() -> None:
    role = ServiceRole(SERVICE_ROLE)
    passed = role.pass_role(Grant(Action("iam:PassRole"), SERVICE_ROLE))
    assert passed.condition == PASSED_TO_CLOUDFORMATION
    assert role.is_pass_to_cloudformation(passed)
    other = Grant(Action("iam:PassRole"), LAMBDA_ROLE)
    assert role.pass_role(other) == other  # another role's PassRole keeps its own condition


# --- telling the deploy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tool", "command", "custom", "expected"),
    [
        (
            "serverless deploy",
            "serverless",
            ("sls", "deploy", "--stage", "dev"),
            False,
            ("sls", "deploy", "--stage", "dev", "--config", SERVERLESS_COPY),
        ),
        (
            "serverless remove",
            "serverless",
            ("sls", "remove"),
            False,
            ("sls", "remove", "--config", SERVERLESS_COPY),
        ),
        (
            "sam deploy",
            "sam",
            ("sam", "deploy", "--resolve-s3"),
            False,
            ("sam", "deploy", "--resolve-s3", "--role-arn", SERVICE_ROLE),
        ),
        (
            "sam delete (uses the stack's role)",
            "sam",
            ("sam", "delete", "--no-prompts"),
            False,
            ("sam", "delete", "--no-prompts"),
        ),
        ("a command of the user's own", "serverless", ("sls", "deploy"), True, ("sls", "deploy")),
        ("another program", "serverless", ("make", "deploy"), False, ("make", "deploy")),
    ],
)
def test_deploy_argv(
    name: str, tool: str, command: tuple[str, ...], custom: bool, expected: tuple[str, ...]
) -> None:
    cli = command[0] if command[0] != "make" else "sls"
    role = ServiceRole(SERVICE_ROLE)
    assert deploy_argv(command, tool=tool, cli=cli, role=role, custom=custom) == expected, name


SERVERLESS_YML = """\
service: demo
provider:
  name: aws
  iam:
    role:
      statements:
        - Effect: Allow
          Action: dynamodb:GetItem
          Resource: !GetAtt Table.Arn
package:
  patterns:
    - "!.discover/**"
resources:
  Outputs:
    TableName:
      Value: !Ref Table
"""


def test_the_serverless_copy_sets_the_deployment_role_and_nothing_else(tmp_path: Path) -> None:
    """The copy is serverless.yml as osls reads it, plus provider.iam.deploymentRole, and it
    keeps itself out of the package; the original is not touched."""
    (tmp_path / "serverless.yml").write_text(SERVERLESS_YML, encoding="utf-8")
    copy = serverless_copy(tmp_path, ServiceRole(SERVICE_ROLE))
    assert copy["provider"]["iam"]["deploymentRole"] == SERVICE_ROLE
    statement = copy["provider"]["iam"]["role"]["statements"][0]
    assert statement["Resource"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert copy["resources"]["Outputs"]["TableName"]["Value"] == {"Ref": "Table"}
    assert copy["package"]["patterns"] == ["!.discover/**", f"!{SERVERLESS_COPY}"]
    assert (tmp_path / "serverless.yml").read_text(encoding="utf-8") == SERVERLESS_YML


def test_the_copy_lives_only_while_the_run_does(tmp_path: Path) -> None:
    (tmp_path / "serverless.yml").write_text(SERVERLESS_YML, encoding="utf-8")
    role = ServiceRole(SERVICE_ROLE)
    path = tmp_path / SERVERLESS_COPY
    with passed_to_deploy(tmp_path, role, tool="serverless", custom=False):
        assert json.loads(path.read_text("utf-8"))["provider"]["iam"]["deploymentRole"]
    assert not path.exists()
    with (
        pytest.raises(RuntimeError),
        passed_to_deploy(tmp_path, role, tool="serverless", custom=False),
    ):
        raise RuntimeError
    assert not path.exists()  # removed after a failed run too
    with passed_to_deploy(tmp_path, role, tool="sam", custom=False):
        assert not path.exists()  # SAM takes --role-arn


def test_a_symlink_where_the_copy_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "serverless.yml").write_text(SERVERLESS_YML, encoding="utf-8")
    target = tmp_path / "elsewhere.json"
    target.write_text("{}", encoding="utf-8")
    (tmp_path / SERVERLESS_COPY).symlink_to(target)
    with (
        pytest.raises(ServiceRoleError, match="not a plain file"),
        passed_to_deploy(tmp_path, ServiceRole(SERVICE_ROLE), tool="serverless", custom=False),
    ):
        pass
    assert target.read_text(encoding="utf-8") == "{}"


def test_an_unreadable_serverless_yml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "serverless.yml").write_text("service: [unclosed\n", encoding="utf-8")
    with pytest.raises(ServiceRoleError, match="cannot read") as caught:
        serverless_copy(tmp_path, ServiceRole(SERVICE_ROLE))
    assert caught.value.tip


# --- the gate ----------------------------------------------------------------------------------


def rules(**extra: Any) -> Rules:
    fence = build_fence(
        stack_name="demo-dev",
        service="demo",
        stage="dev",
        region="us-east-1",
        account=ACCOUNT,
        template={
            "Resources": {
                "IamRoleLambdaExecution": {
                    "Type": "AWS::IAM::Role",
                    "Properties": {"RoleName": "demo-dev-us-east-1-lambdaRole"},
                }
            }
        },
    )
    return Rules(role_arn=ROLE, fence=fence, service_role_arn=SERVICE_ROLE, **extra)


PASS_TO_CFN = Grant(Action("iam:PassRole"), SERVICE_ROLE, PASSED_TO_CLOUDFORMATION)
PASS_TO_LAMBDA = Grant(
    Action("iam:PassRole"),
    SERVICE_ROLE,
    (("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),),
)


@pytest.mark.parametrize(
    ("name", "grant", "owner", "verdict"),
    [
        (
            "the caller passes the service role to CloudFormation",
            PASS_TO_CFN,
            Owner.SESSION,
            Verdict.ALLOW,
        ),
        ("the caller passes it to Lambda", PASS_TO_LAMBDA, Owner.SESSION, Verdict.REFUSE),
        (
            "the caller passes it anywhere",
            Grant(Action("iam:PassRole"), SERVICE_ROLE),
            Owner.SESSION,
            Verdict.REFUSE,
        ),
        ("the service role passes itself", PASS_TO_CFN, Owner.SERVICE_ROLE, Verdict.REFUSE),
        (
            "the service role writes its own policy",
            Grant(Action("iam:PutRolePolicy"), SERVICE_ROLE),
            Owner.SERVICE_ROLE,
            Verdict.REFUSE,
        ),
        (
            "the caller writes the service role's policy",
            Grant(Action("iam:PutRolePolicy"), SERVICE_ROLE),
            Owner.SESSION,
            Verdict.REFUSE,
        ),
        (
            "the service role attaches a policy to itself",
            Grant(Action("iam:AttachRolePolicy"), SERVICE_ROLE),
            Owner.SERVICE_ROLE,
            Verdict.REFUSE,
        ),
        (
            "the service role changes its trust",
            Grant(Action("iam:UpdateAssumeRolePolicy"), SERVICE_ROLE),
            Owner.SERVICE_ROLE,
            Verdict.REFUSE,
        ),
        (
            "the service role writes the sandbox role's policy",
            Grant(Action("iam:PutRolePolicy"), ROLE),
            Owner.SERVICE_ROLE,
            Verdict.REFUSE,
        ),
        (
            "the service role passes the sandbox role",
            Grant(Action("iam:PassRole"), ROLE),
            Owner.SERVICE_ROLE,
            Verdict.REFUSE,
        ),
        (
            "the service role assumes the sandbox role",
            Grant(Action("sts:AssumeRole"), ROLE),
            Owner.SERVICE_ROLE,
            Verdict.REFUSE,
        ),
        (
            "a wildcard that covers the service role",
            Grant(Action("iam:PutRolePolicy"), f"arn:aws:iam::{ACCOUNT}:role/cfn-*"),
            Owner.SERVICE_ROLE,
            Verdict.REFUSE,
        ),
        (
            "the service role creates the template's role",
            Grant(Action("iam:CreateRole"), LAMBDA_ROLE),
            Owner.SERVICE_ROLE,
            Verdict.ALLOW,
        ),
        (
            "the service role writes the template's role's policy",
            Grant(Action("iam:PutRolePolicy"), LAMBDA_ROLE),
            Owner.SERVICE_ROLE,
            Verdict.ALLOW,
        ),
    ],
)
def test_the_gate_never_grants_on_either_role(
    name: str, grant: Grant, owner: Owner, verdict: Verdict
) -> None:
    """Neither policy may grow either role; the one grant on the service role is the
    caller's PassRole of it, only to CloudFormation. ``--yes`` changes no refusal."""
    assert decide(grant, rules(), owner).verdict is verdict, name
    if verdict is Verdict.REFUSE:
        assert decide(grant, rules(yes=True, allow=(grant.action,)), owner).verdict is verdict


# --- the loop routes each denial to its role ------------------------------------------------


def stack_event(
    principal: str, action: str, resource: str, logical_id: str, kind: str
) -> dict[str, Any]:
    reason = denied(action, resource, principal=principal)
    return {
        "LogicalResourceId": logical_id,
        "ResourceType": kind,
        "ResourceStatus": "CREATE_FAILED",
        "ResourceStatusReason": f'Resource handler returned message: "{reason}"',
        "Timestamp": T0 + timedelta(hours=1),  # after the run started (the clock ticks)
    }


def test_the_loop_grows_two_policies(tmp_path: Path) -> None:
    """The CLI's denials grow the caller's policy (PassRole of the service role gains its
    condition); the stack events naming the service role's session grow the service role's,
    in the same run; a copy of one in the output grants nothing to the caller."""
    sandbox = FakeSandbox(
        events_by_run={
            2: [
                stack_event(
                    SERVICE_SESSION,
                    "iam:CreateRole",
                    LAMBDA_ROLE,
                    "IamRoleLambdaExecution",
                    "AWS::IAM::Role",
                ),
                stack_event(
                    SERVICE_SESSION,
                    "lambda:CreateFunction",
                    FUNCTION,
                    "HelloLambdaFunction",
                    "AWS::Lambda::Function",
                ),
            ]
        }
    )
    applied: list[PolicyDocument] = []
    service = ServiceRolePolicy(ServiceRole(SERVICE_ROLE), applied.append)
    script = [
        failed(
            denied("cloudformation:CreateChangeSet", STACK),
            denied("iam:PassRole", SERVICE_ROLE),
        ),
        # The CLI repeats the handler's refusal: that copy is not the caller's.
        failed(denied("iam:CreateRole", LAMBDA_ROLE, principal=SERVICE_SESSION)),
        succeeded(),
    ]
    journal = Journal(tmp_path / "journal.jsonl")
    outcome = discover(
        ScriptedDeployer(script),
        sandbox,
        FakeSessions(),
        journal,
        LoopSettings(max_iterations=5, propagation_waits_s=(), session_arn=SESSION),
        sleep=lambda _: None,
        now=Clock(),
        service=service,
    )
    assert outcome.reason is StopReason.SUCCEEDED
    caller = {(g.action, g.resource, g.condition) for g in outcome.policy.grants}
    assert caller == {
        ("cloudformation:CreateChangeSet", STACK, ()),
        ("iam:PassRole", SERVICE_ROLE, PASSED_TO_CLOUDFORMATION),
    }
    assert set(service.policy.actions) == {"iam:CreateRole", "lambda:CreateFunction"}
    assert applied[-1] == service.policy  # put on the service role
    events = read_events(journal.path)
    assert last_service_role_policy(events) == service.policy
    (granted,) = [e for e in events if isinstance(e, ServiceRoleGranted)]
    assert granted.iteration == 2
    assert all(e.denial.principal == SERVICE_SESSION for e in granted.grants)
    report = render_report(events)
    assert "## The CloudFormation service role's policy" in report
    assert "lambda:CreateFunction" in report.split("## The CloudFormation service role")[1]


def test_without_a_service_role_its_denials_are_someone_elses(tmp_path: Path) -> None:
    """A stack event naming a service role nobody configured is reported, never granted."""
    sandbox = FakeSandbox(
        events_by_run={
            1: [
                stack_event(
                    SERVICE_SESSION,
                    "iam:CreateRole",
                    LAMBDA_ROLE,
                    "IamRoleLambdaExecution",
                    "AWS::IAM::Role",
                )
            ]
        }
    )
    outcome = discover(
        ScriptedDeployer([failed("Error: CREATE_FAILED")]),
        sandbox,
        FakeSessions(),
        Journal(tmp_path / "journal.jsonl"),
        LoopSettings(max_iterations=3, propagation_waits_s=(), session_arn=SESSION),
        sleep=lambda _: None,
        now=Clock(),
    )
    assert outcome.reason is StopReason.UNRESOLVED
    assert not outcome.policy.grants


class CleanupSandbox(FakeSandbox):
    """A sandbox whose first clean-up fails DELETE_FAILED: the service role lacked a delete."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = 1

    def prepare(self) -> None:
        super().prepare()
        if self.prepared == 2 and self.failures:
            self.failures -= 1
            msg = "could not delete stack demo-dev (DELETE_FAILED)"
            raise StackCleanupError(msg, tip="Delete it by hand, then run again.")


def test_a_stack_the_service_role_cannot_delete_is_learned(tmp_path: Path) -> None:
    """Before run 2 the stack left by run 1 fails to delete (its role lacks iam:DeleteRole):
    that is run 2's failure, the role is granted the delete, and run 3 deploys."""
    delete_failed = stack_event(
        SERVICE_SESSION, "iam:DeleteRole", LAMBDA_ROLE, "IamRoleLambdaExecution", "AWS::IAM::Role"
    )
    delete_failed["ResourceStatus"] = "DELETE_FAILED"
    sandbox = CleanupSandbox(events_by_run={2: [delete_failed]})
    service = ServiceRolePolicy(ServiceRole(SERVICE_ROLE), lambda _: None)
    deployer = ScriptedDeployer(
        [failed(denied("cloudformation:CreateChangeSet", STACK)), succeeded()]
    )
    outcome = discover(
        deployer,
        sandbox,
        FakeSessions(),
        Journal(tmp_path / "journal.jsonl"),
        LoopSettings(max_iterations=4, propagation_waits_s=(), session_arn=SESSION),
        sleep=lambda _: None,
        now=Clock(),
        service=service,
    )
    assert outcome.reason is StopReason.SUCCEEDED, outcome.detail
    assert [n for n, _ in deployer.calls] == [1, 3]  # run 2 was the clean-up
    assert set(service.policy.actions) == {"iam:DeleteRole"}


def test_without_a_service_role_a_failed_clean_up_is_an_error(tmp_path: Path) -> None:
    """The admin deletes with its own permissions: a DELETE_FAILED then is not the run's."""
    with pytest.raises(StackCleanupError):
        discover(
            ScriptedDeployer([failed(denied("cloudformation:CreateChangeSet", STACK))]),
            CleanupSandbox(),
            FakeSessions(),
            Journal(tmp_path / "journal.jsonl"),
            LoopSettings(max_iterations=4, propagation_waits_s=(), session_arn=SESSION),
            sleep=lambda _: None,
            now=Clock(),
        )
