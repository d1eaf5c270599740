"""``build_config``: flags > discover.toml > serverless.yml > defaults, validated once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from discover.config import (
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_POLICY_NAME,
    DEFAULT_PROPAGATION_WAITS_S,
    DEFAULT_RUN_TIMEOUT_S,
    Config,
    ConfigError,
    build_config,
)

ROLE = "arn:aws:iam::111122223333:role/sandbox"
OTHER_ROLE = "arn:aws:iam::111122223333:role/other"

PLAIN_YML = "service: demo\nprovider:\n  name: aws\n  runtime: nodejs20.x\n"
FULL_YML = "service: demo\nprovider:\n  name: aws\n  region: us-west-2\n  stage: qa\n"
# CloudFormation short-form tags, as serverless.yml resources sections use them.
TAGGED_YML = """\
service: tagged
provider:
  name: aws
  region: eu-west-1
  iam:
    role:
      statements:
        - Effect: Allow
          Action: s3:GetObject
          Resource: !Sub "arn:aws:s3:::${AWS::StackName}-data/*"
functions:
  hello:
    handler: handler.hello
    environment:
      TABLE: !Ref ItemsTable
      ARN: !GetAtt ItemsTable.Arn
      JOINED: !Join ["-", [a, b]]
resources:
  Conditions:
    IsProd: !Equals [!Ref "AWS::StackName", prod]
  Resources:
    ItemsTable:
      Type: AWS::DynamoDB::Table
      Condition: IsProd
      Properties:
        TableName: !If [IsProd, items, !Ref "AWS::NoValue"]
"""


def make_service(
    root: Path,
    *,
    yml: str | None = PLAIN_YML,
    toml: str | None = None,
    yml_name: str = "serverless.yml",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if yml is not None:
        (root / yml_name).write_text(yml, encoding="utf-8")
    if toml is not None:
        (root / "discover.toml").write_text(toml, encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's own config file, in a folder of the test's (empty unless a test writes it)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "xdg" / "discover" / "config.toml"
    path.parent.mkdir(parents=True)
    return path


def config_for(service: Path, **flags: Any) -> Config:
    given: dict[str, Any] = {"service_dir": str(service), "role_arn": ROLE}
    given.update(flags)
    return build_config(given)


# --- precedence -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "flags", "toml", "yml", "attribute", "expected"),
    [
        (
            "region: flag beats toml",
            {"region": "eu-west-1"},
            'region = "eu-central-1"',
            FULL_YML,
            "region",
            "eu-west-1",
        ),
        (
            "region: toml beats serverless.yml",
            {},
            'region = "eu-central-1"',
            FULL_YML,
            "region",
            "eu-central-1",
        ),
        ("region: serverless.yml beats the default", {}, None, FULL_YML, "region", "us-west-2"),
        ("region: default", {}, None, PLAIN_YML, "region", "us-east-1"),
        (
            "region: a ${} variable is not a region",
            {},
            None,
            "service: demo\nprovider:\n  region: ${opt:region, 'eu-west-3'}\n",
            "region",
            "us-east-1",
        ),
        ("stage: flag beats toml", {"stage": "prod"}, 'stage = "test"', FULL_YML, "stage", "prod"),
        ("stage: toml beats serverless.yml", {}, 'stage = "test"', FULL_YML, "stage", "test"),
        ("stage: serverless.yml beats the default", {}, None, FULL_YML, "stage", "qa"),
        ("stage: default", {}, None, PLAIN_YML, "stage", "dev"),
        (
            "max iterations: flag beats toml",
            {"max_iterations": 5},
            "max_iterations = 7",
            PLAIN_YML,
            "max_iterations",
            5,
        ),
        (
            "max iterations: toml, dashed key",
            {},
            "max-iterations = 7",
            PLAIN_YML,
            "max_iterations",
            7,
        ),
        ("max iterations: default", {}, None, PLAIN_YML, "max_iterations", DEFAULT_MAX_ITERATIONS),
        (
            "policy name: flag beats toml",
            {"policy_name": "mine"},
            'policy_name = "theirs"',
            PLAIN_YML,
            "policy_name",
            "mine",
        ),
        ("policy name: default", {}, None, PLAIN_YML, "policy_name", DEFAULT_POLICY_NAME),
        (
            "run timeout: flag beats toml",
            {"run_timeout": 60.0},
            "run_timeout = 90",
            PLAIN_YML,
            "run_timeout_s",
            60.0,
        ),
        ("run timeout: toml", {}, "run-timeout = 90", PLAIN_YML, "run_timeout_s", 90.0),
        ("run timeout: default", {}, None, PLAIN_YML, "run_timeout_s", DEFAULT_RUN_TIMEOUT_S),
        (
            "propagation waits: toml",
            {},
            "propagation_waits = [1, 2.5]",
            PLAIN_YML,
            "propagation_waits_s",
            (1.0, 2.5),
        ),
        (
            "propagation waits: default on AWS",
            {},
            None,
            PLAIN_YML,
            "propagation_waits_s",
            DEFAULT_PROPAGATION_WAITS_S,
        ),
        (
            "propagation waits: none locally",
            {"local": True, "role_arn": None},
            None,
            PLAIN_YML,
            "propagation_waits_s",
            (),
        ),
        (
            "local: from toml, no role needed",
            {"role_arn": None},
            "local = true",
            PLAIN_YML,
            "local",
            True,
        ),
        (
            "session duration: toml",
            {},
            "session_duration = 7200",
            PLAIN_YML,
            "session_duration_s",
            7200,
        ),
    ],
)
def test_precedence(  # noqa: PLR0917 - one argument per column of the table
    tmp_path: Path,
    name: str,
    flags: dict[str, Any],
    toml: str | None,
    yml: str,
    attribute: str,
    expected: object,
) -> None:
    """A flag beats discover.toml, which beats serverless.yml, which beats the default."""
    service = make_service(tmp_path / "svc", yml=yml, toml=toml)
    config = config_for(service, **flags)
    assert getattr(config, attribute) == expected, name


@pytest.mark.parametrize(
    ("name", "yml", "flags", "yml_name", "expected"),
    [
        ("service and default stage", PLAIN_YML, {}, "serverless.yml", "demo-dev"),
        ("stage from the flag", PLAIN_YML, {"stage": "prod"}, "serverless.yml", "demo-prod"),
        ("stage from serverless.yml", FULL_YML, {}, "serverless.yml", "demo-qa"),
        ("service: {name: x} form", "service:\n  name: x\n", {}, "serverless.yml", "x-dev"),
        ("CloudFormation tags in the file", TAGGED_YML, {}, "serverless.yml", "tagged-dev"),
        ("serverless.yaml spelling", PLAIN_YML, {}, "serverless.yaml", "demo-dev"),
        ("--stack-name wins", PLAIN_YML, {"stack_name": "custom"}, "serverless.yml", "custom"),
        (
            "--stack-name with a ${} service",
            "service: ${env:NAME}\n",
            {"stack_name": "given"},
            "serverless.yml",
            "given",
        ),
    ],
)
def test_stack_name(  # noqa: PLR0917 - one argument per column of the table
    tmp_path: Path, name: str, yml: str, flags: dict[str, Any], yml_name: str, expected: str
) -> None:
    """The stack defaults to ``<service>-<stage>``, as the Serverless Framework names it."""
    service = make_service(tmp_path / "svc", yml=yml, yml_name=yml_name)
    assert config_for(service, **flags).stack_name == expected, name


def test_tagged_serverless_yml_still_gives_its_region(tmp_path: Path) -> None:
    """``!Ref``/``!GetAtt``/``!If`` tags are read past; the plain values around them count."""
    service = make_service(tmp_path / "svc", yml=TAGGED_YML)
    assert config_for(service).region == "eu-west-1"


def test_default_deploy_command_uses_cli_stage_and_region(tmp_path: Path) -> None:
    """Without a command after ``--``, discover runs ``CLI deploy --stage S --region R``."""
    service = make_service(tmp_path / "svc", toml='cli = "osls"')
    config = config_for(service, stage="prod", region="eu-west-1")
    assert config.deploy_command == ("osls", "deploy", "--stage", "prod", "--region", "eu-west-1")
    assert config.remove_command == ("osls", "remove", "--stage", "prod", "--region", "eu-west-1")
    assert config.service_dir == service.resolve()
    assert config.state_dir == service.resolve() / ".discover"


def test_command_after_dashes_needs_no_serverless_yml(tmp_path: Path) -> None:
    """A folder without serverless.yml works when the command and stack are given."""
    service = make_service(tmp_path / "svc", yml=None)
    config = config_for(service, command=["./deploy.sh", "--fast"], stack_name="app-dev")
    assert config.deploy_command == ("./deploy.sh", "--fast")
    assert config.stack_name == "app-dev"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "flags", "toml", "yml", "fragment"),
    [
        (
            "role ARN with a short account",
            {"role_arn": "arn:aws:iam::1234:role/x"},
            None,
            PLAIN_YML,
            "is not an IAM role ARN",
        ),
        (
            "user ARN instead of a role",
            {"role_arn": "arn:aws:iam::111122223333:user/x"},
            None,
            PLAIN_YML,
            "is not an IAM role ARN",
        ),
        (
            "role name instead of an ARN",
            {"role_arn": "sandbox"},
            None,
            PLAIN_YML,
            "is not an IAM role ARN",
        ),
        ("no role and not local", {"role_arn": None}, None, PLAIN_YML, "no sandbox role"),
        (
            "region without its number",
            {"region": "us-east"},
            None,
            PLAIN_YML,
            "is not an AWS region",
        ),
        ("region in capitals", {"region": "US-EAST-1"}, None, PLAIN_YML, "is not an AWS region"),
        ("region from a bad toml", {}, 'region = "mars-1"', PLAIN_YML, "is not an AWS region"),
        ("stage with a space", {"stage": "dev prod"}, None, PLAIN_YML, "--stage"),
        ("max iterations 0", {"max_iterations": 0}, None, PLAIN_YML, "between 1 and 1000"),
        ("max iterations negative", {"max_iterations": -3}, None, PLAIN_YML, "between 1 and"),
        ("max iterations 0 in toml", {}, "max_iterations = 0", PLAIN_YML, "between 1 and 1000"),
        ("run timeout 0", {"run_timeout": 0.0}, None, PLAIN_YML, "--run-timeout"),
        ("run timeout negative", {"run_timeout": -1.0}, None, PLAIN_YML, "--run-timeout"),
        ("session too short", {}, "session_duration = 60", PLAIN_YML, "900 to 43200"),
        (
            "policy name with a space",
            {"policy_name": "my policy"},
            None,
            PLAIN_YML,
            "not a valid IAM policy name",
        ),
        ("unknown toml key", {}, 'rol_arn = "x"', PLAIN_YML, "unknown key 'rol_arn'"),
        ("toml string for a number", {}, 'max_iterations = "5"', PLAIN_YML, "wrong type"),
        ("toml bool for a number", {}, "max_iterations = true", PLAIN_YML, "wrong type"),
        ("toml number for a string", {}, "region = 1", PLAIN_YML, "wrong type"),
        ("toml string for a list", {}, 'propagation_waits = "5"', PLAIN_YML, "wrong type"),
        ("toml table for a bool", {}, "[local]\nx = 1", PLAIN_YML, "wrong type"),
        ("invalid TOML", {}, "role_arn = ", PLAIN_YML, "not valid TOML"),
        ("TOML that is not UTF-8", {}, 'region = "caf\udcff"', PLAIN_YML, "not valid TOML"),
        ("no serverless.yml, no command", {}, None, None, "no serverless.yml"),
        (
            "${} service without --stack-name",
            {},
            None,
            "service: ${self:custom.name}\n",
            "cannot tell the stack name",
        ),
        ("service that is a list", {}, None, "service: [a, b]\n", "cannot tell the stack name"),
    ],
)
def test_invalid_settings_are_config_errors(  # noqa: PLR0917 - one argument per column of the table
    tmp_path: Path,
    name: str,
    flags: dict[str, Any],
    toml: str | None,
    yml: str | None,
    fragment: str,
) -> None:
    """Each unusable setting is a one-line ``ConfigError`` (exit 2) that names the problem."""
    service = make_service(tmp_path / "svc", yml=yml)
    if toml is not None:
        (service / "discover.toml").write_bytes(toml.encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigError) as caught:
        config_for(service, **flags)
    assert fragment in caught.value.msg, name
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.msg


def test_missing_service_folder_is_a_config_error(tmp_path: Path) -> None:
    """A service folder that does not exist is reported with a Tip, not a traceback later."""
    with pytest.raises(ConfigError) as caught:
        config_for(tmp_path / "nope")
    assert "does not exist" in caught.value.msg
    assert caught.value.tip is not None
    assert caught.value.exit_code == 2


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    """A serverless.yml that is not YAML is a ``ConfigError`` naming the file."""
    service = make_service(tmp_path / "svc", yml="service: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        config_for(service)
    assert "serverless.yml: not valid YAML" in caught.value.msg


def test_invalid_yaml_message_is_one_line(tmp_path: Path) -> None:
    """The invalid-YAML message fits the CLI's one-line ``discover: ...`` form."""
    service = make_service(tmp_path / "svc", yml="service: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        config_for(service)
    assert "\n" not in caught.value.msg


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("role ARN", {"role_arn": ROLE + "\n"}),
        ("region", {"region": "us-east-1\n"}),
        ("stage", {"stage": "dev\n"}),
    ],
)
def test_trailing_newline_is_rejected(tmp_path: Path, name: str, flags: dict[str, Any]) -> None:
    """A value with a trailing newline (pasted, or read from a file) is not a valid value."""
    service = make_service(tmp_path / "svc")
    with pytest.raises(ConfigError):
        config_for(service, **flags)


def test_nan_run_timeout_is_rejected(tmp_path: Path) -> None:
    """``--run-timeout nan`` (argparse's float accepts it) is not a timeout."""
    service = make_service(tmp_path / "svc")
    with pytest.raises(ConfigError):
        config_for(service, run_timeout=float("nan"))


@pytest.mark.parametrize(
    ("name", "toml"),
    [
        ("a wait that is not a number", 'propagation_waits = ["soon"]'),
        ("a negative wait", "propagation_waits = [-5]"),
        ("a bool run timeout", "run_timeout = true"),
    ],
)
def test_bad_values_in_toml_are_config_errors(tmp_path: Path, name: str, toml: str) -> None:
    """A discover.toml value of the right container but wrong content is a ``ConfigError``."""
    service = make_service(tmp_path / "svc", toml=toml)
    with pytest.raises(ConfigError):
        config_for(service)


# --- trust: what the service folder may not set ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "toml", "key"),
    [
        ("the sandbox account", 'sandbox_account = "111122223333"', "sandbox_account"),
        ("an empty high-risk list", "high_risk = []", "high_risk"),
        ("pre-approved actions", 'allow = ["iam:CreateUser"]', "allow"),
        ("yes to everything", "yes = true", "yes"),
        ("another account", 'allow-account = ["999999999999"]', "allow_account"),
        ("the role discover grows", f'role_arn = "{OTHER_ROLE}"', "role_arn"),
        ("the stack discover may delete", 'stack_name = "prod-api"', "stack_name"),
    ],
)
def test_service_folder_cannot_set_a_trusted_key(
    tmp_path: Path, name: str, toml: str, key: str
) -> None:
    """Each key that picks the role or stack, confirms the account or weakens a guard is a
    one-line error naming it when the service folder's discover.toml sets it."""
    service = make_service(tmp_path / "svc", toml=toml)
    with pytest.raises(ConfigError) as caught:
        config_for(service)
    assert f"{key} cannot be set in the service folder" in caught.value.msg, name
    assert "\n" not in caught.value.msg
    assert caught.value.tip is not None
    assert "config.toml" in caught.value.tip


@pytest.mark.parametrize(
    ("name", "user_toml", "flags", "attribute", "expected"),
    [
        (
            "sandbox account",
            'sandbox_account = "111122223333"',
            {},
            "sandbox_account",
            "111122223333",
        ),
        (
            "flag beats the user's file",
            'sandbox_account = "111122223333"',
            {"sandbox_account": "444455556666"},
            "sandbox_account",
            "444455556666",
        ),
        ("high-risk list", 'high_risk = ["iam:*"]', {}, "high_risk", ("iam:*",)),
        (
            "allow adds to --allow",
            'allow = ["iam:CreateUser"]',
            {"allow": ["iam:CreateRole"]},
            "allow",
            ("iam:CreateRole", "iam:CreateUser"),
        ),
        ("yes", "yes = true", {}, "yes", True),
        (
            "allowed accounts",
            'allow_account = ["999999999999"]',
            {"allow_account": ["1" * 12]},
            "allow_accounts",
            ("1" * 12, "999999999999"),
        ),
        ("role", f'role_arn = "{OTHER_ROLE}"', {"role_arn": None}, "role_arn", OTHER_ROLE),
        ("stack", 'stack_name = "mine"', {}, "stack_name", "mine"),
        ("a plain key, under the service's", "max_iterations = 9", {}, "max_iterations", 9),
    ],
)
def test_user_config_sets_trusted_keys(  # noqa: PLR0917 - one argument per column of the table
    tmp_path: Path,
    user_config: Path,
    name: str,
    user_toml: str,
    flags: dict[str, Any],
    attribute: str,
    expected: object,
) -> None:
    """The user's own config.toml may set every key; flags still win."""
    user_config.write_text(user_toml, encoding="utf-8")
    service = make_service(tmp_path / "svc")
    assert getattr(config_for(service, **flags), attribute) == expected, name


def test_service_folder_beats_the_user_file_for_plain_keys(
    tmp_path: Path, user_config: Path
) -> None:
    """A plain key (not a guard) in the service folder beats the user's default."""
    user_config.write_text("max_iterations = 9\n", encoding="utf-8")
    service = make_service(tmp_path / "svc", toml="max_iterations = 40\n")
    assert config_for(service).max_iterations == 40


@pytest.mark.parametrize(
    ("name", "out", "inside"),
    [
        ("inside", "policies/policy.json", True),
        ("a parent folder", "../policy.json", False),
        ("an absolute path", "/etc/discover-policy.json", False),
        ("through a symbolic link", "link/policy.json", False),
        ("the folder itself", ".", False),
    ],
)
def test_out_from_the_service_folder_stays_inside(
    tmp_path: Path, name: str, out: str, inside: bool
) -> None:
    """``out`` in discover.toml resolves inside the service folder, or is an error."""
    service = make_service(tmp_path / "svc", toml=f'out = "{out}"')
    (service / "link").symlink_to(tmp_path)
    if inside:
        assert config_for(service).out == (service / out).resolve(), name
        return
    with pytest.raises(ConfigError) as caught:
        config_for(service)
    assert "outside the service folder" in caught.value.msg, name


def test_out_flag_may_go_anywhere(tmp_path: Path) -> None:
    """The user's --out is the user's choice."""
    service = make_service(tmp_path / "svc")
    assert config_for(service, out=str(tmp_path / "x.json")).out == tmp_path / "x.json"


def test_state_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    """A repository that ships .discover as a link would make discover write elsewhere."""
    service = make_service(tmp_path / "svc")
    (service / ".discover").symlink_to(tmp_path)
    with pytest.raises(ConfigError) as caught:
        config_for(service)
    assert "symbolic link" in caught.value.msg
