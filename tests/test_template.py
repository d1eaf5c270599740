"""The service's template without credentials: serverless package, names the CLI derives."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from discover.template import (
    GENERATED_SUFFIX,
    TemplateError,
    load_template,
    name_property,
    package_serverless,
    serverless_template,
)
from discover.tools import sam_template_of
from tests.conftest import OSLS

ACCOUNT = "123456789012"


def test_serverless_package_leaves_the_folder_as_it_was(
    service_copy: Callable[[str], Path], osls: Path
) -> None:
    """The real osls packages hello into a scratch folder; the service folder is unchanged."""
    folder = service_copy("hello")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    template = serverless_template(
        folder,
        (str(osls),),
        service=None,
        stage="dev",
        region="us-east-1",
        account=ACCOUNT,
        stack_name="hello-dev",
    )
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert template.service == "hello"
    assert template.artifact_prefix == "serverless/hello/dev/"
    assert template.deployment_bucket == "ServerlessDeploymentBucket"
    assert template.stack_tags == (("STAGE", "dev"),)  # the CLI tags every stack it deploys
    function = template.resource("HelloLambdaFunction")
    assert function is not None
    assert function.name == template.function_name("hello") == "hello-dev-hello"
    log_group = template.resource("HelloLogGroup")
    assert log_group is not None
    assert log_group.name == template.log_group("hello")
    role = template.resource("IamRoleLambdaExecution")
    assert role is not None
    assert role.name == "hello-dev-us-east-1-lambdaRole"
    bucket = template.deployment_bucket_name
    assert bucket == f"hello-dev-serverlessdeploymentbucket-{GENERATED_SUFFIX.lower()}"


def fake_cli(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-sls"
    script.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_package_runs_without_aws_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the caller's environment holds, the CLI sees no AWS identity."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_PROFILE", "admin")
    cli = fake_cli(
        tmp_path,
        "out = sys.argv[sys.argv.index('--package') + 1]\n"
        "open(os.path.join(out, 'env.json'), 'w').write(json.dumps(dict(os.environ)))\n"
        "open(os.path.join(out, 'cloudformation-template-update-stack.json'), 'w')"
        '.write(\'{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}\')',
    )
    out = tmp_path / "out"
    package_serverless(tmp_path, (str(cli),), stage="dev", region="us-east-1", out_dir=out)
    env = json.loads((out / "env.json").read_text())
    # Placeholder keys (the CLI refuses to package without some) sent only to loopback.
    assert env["AWS_ACCESS_KEY_ID"] != "AKIAEXAMPLE"
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert "AWS_PROFILE" not in env
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull


def test_a_failing_package_is_one_clear_error(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "print('Cannot resolve ${ssm:/x}: no credentials'); sys.exit(1)")
    with pytest.raises(TemplateError) as caught:
        package_serverless(
            tmp_path, (str(cli),), stage="dev", region="us-east-1", out_dir=tmp_path / "o"
        )
    assert "Cannot resolve" in str(caught.value)
    assert "--template" in str(caught.value.tip)


YAML_TEMPLATE = """
Resources:
  Named:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-jobs"
  Unnamed:
    Type: AWS::S3::Bucket
  Role:
    Type: AWS::IAM::Role
    Properties:
      RoleName: !Join ["-", [app, !Ref "AWS::Region"]]
      AssumeRolePolicyDocument: {}
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !GetAtt Named.QueueName
"""


@pytest.mark.parametrize(
    ("name", "logical_id", "expected", "generated"),
    [
        ("Fn::Sub of a pseudo parameter", "Named", "app-dev-jobs", False),
        (
            "generated, lowercase for a bucket",
            "Unnamed",
            f"app-dev-unnamed-{GENERATED_SUFFIX.lower()}",
            True,
        ),
        ("Fn::Join of a pseudo parameter", "Role", "app-us-east-1", False),
        ("a value only the deploy knows", "Topic", None, False),
    ],
)
def test_names_from_a_yaml_template(
    tmp_path: Path, name: str, logical_id: str, expected: str | None, generated: bool
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(YAML_TEMPLATE)
    template = load_template(
        path, service="app", stage="dev", region="us-east-1", account=ACCOUNT, stack_name="app-dev"
    )
    resource = template.resource(logical_id)
    assert resource is not None
    assert (resource.name, resource.name_generated) == (expected, generated), name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{}", "no Resources"),
        ("a: [", "neither JSON nor YAML"),
        ('{"Resources": {"A": {}}}', "no Type"),
    ],
)
def test_bad_templates(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(TemplateError, match=message):
        load_template(
            path, service="a", stage="d", region="us-east-1", account=ACCOUNT, stack_name="a-d"
        )


@pytest.mark.parametrize(
    ("resource_type", "prop"),
    [
        ("AWS::Lambda::Function", "FunctionName"),
        ("AWS::SQS::Queue", "QueueName"),
        ("AWS::Events::Rule", "Name"),
        ("AWS::ApiGateway::Method", None),
    ],
)
def test_name_property_from_the_schema(resource_type: str, prop: str | None) -> None:
    assert name_property(resource_type) == prop


def test_osls_is_pinned() -> None:
    assert OSLS.name == "osls"


SAM_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    CodeUri: src/
Resources:
  Api:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Policies:
        - DynamoDBReadPolicy:
            TableName: !Ref Table
      Events:
        Get:
          Type: Api
          Properties: {Path: /items, Method: get}
  Table:
    Type: AWS::Serverless::SimpleTable
"""


def test_a_sam_template_is_read_as_the_transform_expands_it(tmp_path: Path) -> None:
    """Local code paths as ``sam deploy`` uploads them, then the SAM translator: the function,
    its role, the REST API SAM adds for an Api event, the table; no ``AWS::Serverless`` left."""
    path = tmp_path / "template.yaml"
    path.write_text(SAM_TEMPLATE)
    template = load_template(
        path, service="app", stage="dev", region="us-east-1", account=ACCOUNT, stack_name="app"
    )
    types = {r.logical_id: r.type for r in template.resources}
    assert types["Api"] == "AWS::Lambda::Function"
    assert types["ApiRole"] == "AWS::IAM::Role"
    assert types["ServerlessRestApi"] == "AWS::ApiGateway::RestApi"
    assert types["Table"] == "AWS::DynamoDB::Table"
    assert not [t for t in types.values() if t.startswith("AWS::Serverless::")]
    assert sam_template_of(tmp_path) == path


def test_a_sam_template_the_transform_refuses_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {Handler: 3}\n"
    )
    with pytest.raises(TemplateError, match="the SAM transform refuses it"):
        load_template(
            path, service="a", stage="d", region="us-east-1", account=ACCOUNT, stack_name="a"
        )
