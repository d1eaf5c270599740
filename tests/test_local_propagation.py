"""Behaviour 8: with a propagation delay, a policy change reaches the role's sessions late."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import botocore.exceptions
import pytest

from discover.local.process import LocalSandbox
from discover.stack_events import denials_from_events
from tests.conftest import admin_session, role_session

pytestmark = pytest.mark.sandbox

DELAY_S = 30.0


def allow(*actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
        }
    )


@pytest.fixture
def delayed() -> Iterator[LocalSandbox]:
    sandbox = LocalSandbox(propagation_delay=DELAY_S)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _refused(call: object) -> bool:
    try:
        call()  # type: ignore[operator]
    except botocore.exceptions.ClientError as error:
        return "not authorized" in error.response["Error"]["Message"]
    return False


def test_grant_and_revoke_show_after_the_delay(delayed: LocalSandbox) -> None:
    """Granted but not yet visible: refused until the delay has passed; a revoke likewise
    keeps working until then."""
    info = delayed.info
    assert info is not None
    iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
    sqs = role_session(info, "delayed").client("sqs", endpoint_url=info.endpoint)

    def create() -> object:
        return sqs.create_queue(QueueName="delayed-queue")

    iam.put_role_policy(RoleName="discover-sandbox", PolicyName="q", PolicyDocument=allow("sqs:*"))
    assert _refused(create)
    delayed.advance_clock(DELAY_S - 5)
    assert _refused(create)
    delayed.advance_clock(6)
    assert not _refused(create)
    iam.delete_role_policy(RoleName="discover-sandbox", PolicyName="q")
    assert not _refused(create)
    delayed.advance_clock(DELAY_S + 1)
    assert _refused(create)


def test_cloudformation_sees_the_same_delay(delayed: LocalSandbox) -> None:
    """A stack executed right after a grant still fails on it; after the delay it succeeds."""
    info = delayed.info
    assert info is not None
    iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
    iam.put_role_policy(
        RoleName="discover-sandbox",
        PolicyName="stacks",
        PolicyDocument=allow("cloudformation:*"),
    )
    delayed.advance_clock(DELAY_S + 1)
    iam.put_role_policy(
        RoleName="discover-sandbox",
        PolicyName="logs",
        PolicyDocument=allow("logs:CreateLogGroup", "logs:DescribeLogGroups"),
    )
    cfn = role_session(info, "delayed-stack").client("cloudformation", endpoint_url=info.endpoint)
    body = json.dumps(
        {
            "Resources": {
                "Logs": {
                    "Type": "AWS::Logs::LogGroup",
                    "Properties": {"LogGroupName": "/demo/delayed"},
                }
            }
        }
    )
    cfn.create_stack(StackName="demo-early", TemplateBody=body)
    events = cfn.describe_stack_events(StackName="demo-early")["StackEvents"]
    (denial,) = denials_from_events(events, datetime.now(UTC) - timedelta(days=1))
    assert denial.action == "logs:CreateLogGroup"
    delayed.advance_clock(DELAY_S + 1)
    cfn.create_stack(StackName="demo-late", TemplateBody=body.replace("delayed", "late"))
    stack = cfn.describe_stacks(StackName="demo-late")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_delay_defaults_to_zero_and_can_change() -> None:
    """By default a change is seen at once; the delay can be set while the sandbox runs."""
    with LocalSandbox() as info:
        iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
        sqs = role_session(info, "immediate").client("sqs", endpoint_url=info.endpoint)

        def listing() -> object:
            return sqs.list_queues()

        iam.put_role_policy(
            RoleName="discover-sandbox", PolicyName="q", PolicyDocument=allow("sqs:ListQueues")
        )
        assert not _refused(listing)
    sandbox = LocalSandbox()
    sandbox.start()
    try:
        assert sandbox.info is not None
        sandbox.set_propagation_delay(60)
        iam = admin_session(sandbox.info).client("iam", endpoint_url=sandbox.info.endpoint)
        sqs = role_session(sandbox.info, "later").client("sqs", endpoint_url=sandbox.info.endpoint)
        iam.put_role_policy(
            RoleName="discover-sandbox", PolicyName="q", PolicyDocument=allow("sqs:ListQueues")
        )
        assert _refused(sqs.list_queues)
    finally:
        sandbox.stop()
