"""The deploy CLIs discover knows: which one a service folder uses, its stack, its argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from discover.config import ConfigError, build_config
from discover.tools import SAM_MANAGED_STACK, ToolError, ToolName, choose_tool, sam_settings

SAM_TEMPLATE = "Transform: AWS::Serverless-2016-10-31\nResources: {}\n"
PLAIN_TEMPLATE = "Resources:\n  B:\n    Type: AWS::S3::Bucket\n"
SERVERLESS = "service: hello\nprovider:\n  name: aws\n"

# name, files in the folder, --tool, the tool chosen
CHOICES = [
    ("serverless.yml", {"serverless.yml": SERVERLESS}, None, ToolName.SERVERLESS),
    ("samconfig.toml", {"samconfig.toml": "version = 0.1\n"}, None, ToolName.SAM),
    ("SAM template", {"template.yaml": SAM_TEMPLATE}, None, ToolName.SAM),
    ("plain CloudFormation template", {"template.yaml": PLAIN_TEMPLATE}, None, ToolName.SERVERLESS),
    (
        "serverless.yml wins over a template",
        {"serverless.yml": SERVERLESS, "template.yaml": SAM_TEMPLATE},
        None,
        ToolName.SERVERLESS,
    ),
    ("--tool sam", {"serverless.yml": SERVERLESS}, "sam", ToolName.SAM),
    ("empty folder", {}, None, ToolName.SERVERLESS),
]


@pytest.mark.parametrize(
    ("name", "files", "flag", "expected"), CHOICES, ids=[c[0] for c in CHOICES]
)
def test_choose_tool(
    tmp_path: Path, name: str, files: dict[str, str], flag: str | None, expected: ToolName
) -> None:
    """The tool named wins; else serverless.yml, then SAM's files, decide."""
    for file, text in files.items():
        (tmp_path / file).write_text(text)
    assert choose_tool(flag, tmp_path).name is expected


def test_unknown_tool_is_a_clear_error(tmp_path: Path) -> None:
    """An unknown --tool names the known ones."""
    with pytest.raises(ToolError, match="'cdk' is not a tool") as raised:
        choose_tool("cdk", tmp_path)
    assert raised.value.tip is not None
    assert "serverless, sam" in raised.value.tip


# name, samconfig file and text, stack name, region
SETTINGS = [
    (
        "deploy section",
        "samconfig.toml",
        '[default.deploy.parameters]\nstack_name = "orders"\nregion = "eu-west-1"\n',
        "orders",
        "eu-west-1",
    ),
    (
        "global section, deploy overrides",
        "samconfig.toml",
        '[default.global.parameters]\nstack_name = "a"\nregion = "eu-west-1"\n'
        '[default.deploy.parameters]\nstack_name = "b"\n',
        "b",
        "eu-west-1",
    ),
    (
        "yaml",
        "samconfig.yaml",
        "default:\n  deploy:\n    parameters:\n      stack_name: y\n",
        "y",
        None,
    ),
    (
        "another environment only",
        "samconfig.toml",
        '[prod.deploy.parameters]\nstack_name = "p"\n',
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "file", "text", "stack", "region"), SETTINGS, ids=[s[0] for s in SETTINGS]
)
def test_sam_settings(  # noqa: PLR0917 - one argument per column of the table
    tmp_path: Path, name: str, file: str, text: str, stack: str | None, region: str | None
) -> None:
    """samconfig's default environment names the stack and region, deploy over global."""
    (tmp_path / file).write_text(text)
    found = sam_settings(tmp_path)
    assert (found.stack_name, found.region, found.found) == (stack, region, True)


def test_broken_samconfig_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "samconfig.toml").write_text("[default.deploy.parameters\n")
    with pytest.raises(ToolError, match=r"samconfig.toml: not valid TOML"):
        sam_settings(tmp_path)


def test_sam_config_deploys_and_deletes_without_prompts(tmp_path: Path) -> None:
    """With --tool sam, the stack comes from samconfig and SAM's commands never prompt."""
    (tmp_path / "template.yaml").write_text(SAM_TEMPLATE)
    (tmp_path / "samconfig.toml").write_text(
        '[default.deploy.parameters]\nstack_name = "orders"\nregion = "eu-west-1"\n'
    )
    config = build_config({"service_dir": str(tmp_path), "local": True, "cli": "/opt/sam"})
    assert config.tool == "sam"
    assert (config.stack_name, config.region) == ("orders", "eu-west-1")
    deploy = config.deploy_command
    assert deploy[:2] == ("/opt/sam", "deploy")
    for flag in ("--no-confirm-changeset", "--no-fail-on-empty-changeset", "--resolve-s3"):
        assert flag in deploy
    assert deploy[deploy.index("--stack-name") + 1] == "orders"
    assert deploy[deploy.index("--capabilities") + 1] == "CAPABILITY_IAM"
    assert config.remove_command == (
        "/opt/sam",
        "delete",
        "--stack-name",
        "orders",
        "--region",
        "eu-west-1",
        "--no-prompts",
    )


def test_sam_stack_name_flag_wins_and_missing_one_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(SAM_TEMPLATE)
    config = build_config({"service_dir": str(tmp_path), "local": True, "stack_name": "x"})
    assert config.stack_name == "x"
    assert config.cli == "sam"
    with pytest.raises(ConfigError, match=r"samconfig\.toml gives no stack_name"):
        build_config({"service_dir": str(tmp_path), "local": True})


def test_sam_knows_its_managed_stack() -> None:
    """SAM's artifact bucket lives in its own stack, which discover may clean when blocked."""
    sam = choose_tool("sam", Path())
    assert sam.managed_stacks == (SAM_MANAGED_STACK,)
    assert sam.artifact_stack("orders") == SAM_MANAGED_STACK
    serverless = choose_tool("serverless", Path())
    assert serverless.managed_stacks == ()
    assert serverless.artifact_stack("hello-dev") == "hello-dev"
