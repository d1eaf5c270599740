"""Behaviour 7: trust policies as AWS reads them (account root, direct principal, service)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest

from discover.denials import Reason, parse_denials
from discover.local.process import LocalSandbox, LocalSandboxInfo
from tests.conftest import admin_session

pytestmark = pytest.mark.sandbox

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandboxInfo]:
    with LocalSandbox(authorization_log=tmp_path_factory.mktemp("trust") / "log.jsonl") as info:
        yield info


def trust(principal: Any) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}],
        }
    )


def make_role(info: LocalSandboxInfo, name: str, principal: Any) -> str:
    iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
    return str(
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(principal))["Role"]["Arn"]
    )


@pytest.fixture(scope="module")
def plain_user(sandbox: LocalSandboxInfo) -> tuple[boto3.Session, str]:
    """An IAM user with no policy at all."""
    iam = admin_session(sandbox).client("iam", endpoint_url=sandbox.endpoint)
    arn = str(iam.create_user(UserName="plain")["User"]["Arn"])
    key = iam.create_access_key(UserName="plain")["AccessKey"]
    session = boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=sandbox.region,
    )
    return session, arn


def assume(session: boto3.Session, info: LocalSandboxInfo, role_arn: str) -> str:
    sts = session.client("sts", endpoint_url=info.endpoint)
    answer = sts.assume_role(RoleArn=role_arn, RoleSessionName="trust-tests")
    return str(answer["AssumedRoleUser"]["Arn"])


def test_account_root_trust_defers_to_identity_policies(
    sandbox: LocalSandboxInfo, plain_user: tuple[boto3.Session, str]
) -> None:
    """A role trusting arn:aws:iam::ACCOUNT:root may be assumed by whoever in the account an
    identity policy allows (the admin), and not by a user without one."""
    role_arn = make_role(sandbox, "trusts-account-root", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
    session_arn = assume(admin_session(sandbox), sandbox, role_arn)
    assert session_arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/trusts-account-root/trust-tests"
    user_session, user_arn = plain_user
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        assume(user_session, sandbox, role_arn)
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    (denial,) = parse_denials(caught.value.response["Error"]["Message"])
    assert (denial.principal, denial.action, denial.resource, denial.reason) == (
        user_arn,
        "sts:AssumeRole",
        role_arn,
        Reason.NO_IDENTITY_POLICY,
    )


def test_bare_account_id_is_the_account(sandbox: LocalSandboxInfo) -> None:
    """A Principal of just the account id means the same as its :root ARN."""
    role_arn = make_role(sandbox, "trusts-account-id", {"AWS": ACCOUNT})
    assume(admin_session(sandbox), sandbox, role_arn)


def test_trust_naming_the_user_is_enough(
    sandbox: LocalSandboxInfo, plain_user: tuple[boto3.Session, str]
) -> None:
    """Within an account, a trust policy naming the caller itself needs no identity policy."""
    user_session, user_arn = plain_user
    role_arn = make_role(sandbox, "trusts-plain-user", {"AWS": user_arn})
    assume(user_session, sandbox, role_arn)


def test_service_principal_is_refused_not_crashing(sandbox: LocalSandboxInfo) -> None:
    """A role only a service may assume refuses the admin with AccessDenied (no server error),
    and the server goes on serving."""
    role_arn = make_role(sandbox, "lambda-only", {"Service": "lambda.amazonaws.com"})
    admin = admin_session(sandbox)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        assume(admin, sandbox, role_arn)
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    (denial,) = parse_denials(caught.value.response["Error"]["Message"])
    assert (denial.action, denial.resource) == ("sts:AssumeRole", role_arn)
    sts = admin.client("sts", endpoint_url=sandbox.endpoint)
    assert sts.get_caller_identity()["Account"] == ACCOUNT


def test_missing_role_is_refused(sandbox: LocalSandboxInfo) -> None:
    """Assuming a role that does not exist is an AccessDenied, as AWS answers it."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        assume(admin_session(sandbox), sandbox, f"arn:aws:iam::{ACCOUNT}:role/not-there")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
