"""Behaviour 2: requests are checked under IAM's action names, not the SDK operation names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from discover.denials import parse_denials
from discover.local.authorize import read_authorization_log
from discover.local.process import LocalSandbox, LocalSandboxInfo
from discover.local.requests import Request, iam_action, resource_arn
from tests.conftest import admin_session, role_session

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "demo-actions-bucket"


def request(service: str, operation: str, method: str = "POST", path: str = "/") -> Request:
    return Request(service, operation, method, path, {}, ACCOUNT, REGION)


@pytest.mark.parametrize(
    ("name", "service", "operation", "method", "expected"),
    [
        ("HeadBucket is a listing", "s3", "HeadBucket", "HEAD", "s3:ListBucket"),
        ("ListObjectsV2 is a listing", "s3", "ListObjectsV2", "GET", "s3:ListBucket"),
        ("HeadObject reads the object", "s3", "HeadObject", "HEAD", "s3:GetObject"),
        ("DeleteObjects deletes objects", "s3", "DeleteObjects", "POST", "s3:DeleteObject"),
        ("moto's own S3 label", "s3", "ListAllMyBuckets", "GET", "s3:ListAllMyBuckets"),
        (
            "encryption has its own name",
            "s3",
            "PutBucketEncryption",
            "PUT",
            "s3:PutEncryptionConfiguration",
        ),
        ("Lambda's Invoke", "lambda", "Invoke", "POST", "lambda:InvokeFunction"),
        ("API Gateway GET", "apigateway", "GetRestApis", "GET", "apigateway:GET"),
        ("API Gateway POST", "apigateway", "CreateResource", "POST", "apigateway:POST"),
        ("API Gateway PUT", "apigateway", "PutMethod", "PUT", "apigateway:PUT"),
        ("API Gateway PATCH", "apigateway", "UpdateRestApi", "PATCH", "apigateway:PATCH"),
        ("API Gateway DELETE", "apigateway", "DeleteRestApi", "DELETE", "apigateway:DELETE"),
        ("batch as its single action", "sqs", "SendMessageBatch", "POST", "sqs:SendMessage"),
        ("same name", "logs", "CreateLogGroup", "POST", "logs:CreateLogGroup"),
        (
            "same name, canonical case",
            "cloudformation",
            "ExecuteChangeSet",
            "POST",
            "cloudformation:ExecuteChangeSet",
        ),
    ],
)
def test_action_name(name: str, service: str, operation: str, method: str, expected: str) -> None:
    """The action comes from discover.operations (botocore models, IAM data, renamed table)."""
    assert iam_action(request(service, operation, method)) == expected


@pytest.mark.parametrize(
    ("name", "operation", "method", "path", "expected"),
    [
        ("the collection", "GetRestApis", "GET", "/restapis", "/restapis"),
        ("one API", "GetRestApi", "GET", "/restapis/a1b2c3", "/restapis/a1b2c3"),
        (
            "a method",
            "PutMethod",
            "PUT",
            "/restapis/a1/resources/r2/methods/GET",
            "/restapis/a1/resources/r2/methods/GET",
        ),
        (
            "create under a parent names the collection",
            "CreateResource",
            "POST",
            "/restapis/a1/resources/parent9",
            "/restapis/a1/resources",
        ),
        (
            "deployments",
            "CreateDeployment",
            "POST",
            "/restapis/a1/deployments",
            "/restapis/a1/deployments",
        ),
    ],
)
def test_apigateway_path_arns(
    name: str, operation: str, method: str, path: str, expected: str
) -> None:
    """API Gateway is checked on arn:aws:apigateway:REGION::PATH, in a format IAM documents."""
    req = request("apigateway", operation, method, path)
    action = iam_action(req)
    assert resource_arn(req, action) == f"arn:aws:apigateway:{REGION}::{expected}"


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("actions") / "authorization.jsonl"


@pytest.fixture(scope="module")
def sandbox(log_path: Path) -> Iterator[LocalSandboxInfo]:
    with LocalSandbox(authorization_log=log_path) as info:
        s3 = admin_session(info).client("s3", endpoint_url=info.endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="app/code.zip", Body=b"zip")
        yield info


def put_policy(info: LocalSandboxInfo, *statements: dict[str, Any]) -> None:
    iam = admin_session(info).client("iam", endpoint_url=info.endpoint)
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    iam.put_role_policy(
        RoleName="discover-sandbox", PolicyName="tests", PolicyDocument=json.dumps(document)
    )


@pytest.mark.sandbox
def test_s3_heads_and_listing_need_iam_names(sandbox: LocalSandboxInfo, log_path: Path) -> None:
    """A role allowed s3:ListBucket and s3:GetObject may HeadBucket, ListObjectsV2, HeadObject;
    the log records the IAM actions, and a refusal names them."""
    put_policy(
        sandbox,
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
    )
    s3 = role_session(sandbox, "actions").client("s3", endpoint_url=sandbox.endpoint)
    s3.head_bucket(Bucket=BUCKET)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["app/code.zip"]
    s3.head_object(Bucket=BUCKET, Key="app/code.zip")
    records = [r for r in read_authorization_log(log_path) if r.get("service") == "s3"]
    by_operation = {(r["operation"], r["action"]) for r in records}
    assert ("HeadBucket", "s3:ListBucket") in by_operation
    assert ("ListObjectsV2", "s3:ListBucket") in by_operation
    assert ("HeadObject", "s3:GetObject") in by_operation
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "app/code.zip"}]})
    (denial,) = parse_denials(str(caught.value))
    assert (denial.action, denial.resource) == (
        "s3:DeleteObject",
        f"arn:aws:s3:::{BUCKET}/app/code.zip",
    )


@pytest.mark.sandbox
def test_apigateway_by_method_and_path(sandbox: LocalSandboxInfo) -> None:
    """apigateway:POST on /restapis creates an API, GET on it reads it, and a child resource
    is created with POST on the API's resources collection."""
    api = f"arn:aws:apigateway:{REGION}::/restapis"
    put_policy(
        sandbox,
        {"Effect": "Allow", "Action": "apigateway:POST", "Resource": [api, f"{api}/*/resources"]},
        {"Effect": "Allow", "Action": "apigateway:GET", "Resource": [api, f"{api}/*"]},
    )
    apigw = role_session(sandbox, "apis").client("apigateway", endpoint_url=sandbox.endpoint)
    rest_api = apigw.create_rest_api(name="demo")["id"]
    root = apigw.get_resources(restApiId=rest_api)["items"][0]["id"]
    apigw.create_resource(restApiId=rest_api, parentId=root, pathPart="items")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        apigw.delete_rest_api(restApiId=rest_api)
    (denial,) = parse_denials(caught.value.response["Error"]["Message"])
    assert (denial.action, denial.resource) == ("apigateway:DELETE", f"{api}/{rest_api}")


@pytest.mark.sandbox
def test_lambda_invoke_is_invoke_function(sandbox: LocalSandboxInfo) -> None:
    """Lambda's Invoke operation is refused as lambda:InvokeFunction on the function."""
    put_policy(sandbox, {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"})
    session: boto3.Session = role_session(sandbox, "invoke")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        session.client("lambda", endpoint_url=sandbox.endpoint).invoke(FunctionName="demo-fn")
    (denial,) = parse_denials(caught.value.response["Error"]["Message"])
    assert denial.action == "lambda:InvokeFunction"
    assert denial.resource == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:demo-fn"
