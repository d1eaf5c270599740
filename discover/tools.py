"""The deploy CLIs discover knows: how each deploys and removes, names its stack, keeps artifacts.

A ``Tool`` says, for one CLI, the argv that deploys a service non-interactively and the one
that removes it, where the service folder names the stack and region, the stack and logical id
of the bucket the CLI uploads its artifacts to, and the CloudFormation transforms its templates
declare. Any other CLI runs as ``discover -- COMMAND ...`` with ``--stack-name``.

- Serverless Framework v3 / osls: ``serverless.yml`` names the service (the stack is
  ``SERVICE-STAGE``; read by ``config``); artifacts go to the stack's own
  ``ServerlessDeploymentBucket``.
- AWS SAM CLI: ``template.yaml`` declares ``Transform: AWS::Serverless-2016-10-31``;
  ``samconfig.toml`` (or ``.yaml``) names the stack and region; ``--resolve-s3`` uploads to the
  bucket of SAM's own stack ``aws-sam-cli-managed-default`` (logical id ``SamCliSourceBucket``),
  which SAM creates on first use with the caller's credentials.
  https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-cli-command-reference-sam-deploy.html
  https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-sam-cli-config.html
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from discover.errors import DiscoverError

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
SAM_MANAGED_STACK = "aws-sam-cli-managed-default"
SAM_BUCKET_LOGICAL_ID = "SamCliSourceBucket"  # the artifact bucket in SAM's managed stack
_SAM_CONFIG_FILES = ("samconfig.toml", "samconfig.yaml", "samconfig.yml")
_SAM_TEMPLATES = ("template.yaml", "template.yml", "template.json")
_SERVERLESS_FILES = ("serverless.yml", "serverless.yaml")


class ToolError(DiscoverError):
    """The tool named, or the files that describe the service, cannot be used."""

    exit_code = 2


class ToolName(str, Enum):
    SERVERLESS = "serverless"
    SAM = "sam"


@dataclass(frozen=True, slots=True)
class ArtifactBucket:
    """Where a CLI's upload bucket is declared: a stack and the bucket's logical id in it."""

    stack_name: str | None  # None: the service's own stack
    logical_id: str


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What the service folder says for this tool (None: it does not say)."""

    stack_name: str | None = None
    region: str | None = None
    found: bool = False  # the tool's own files are there


@dataclass(frozen=True, slots=True)
class Tool:
    """One deploy CLI, as discover drives it."""

    name: ToolName
    default_cli: str
    artifact_bucket: ArtifactBucket
    transforms: tuple[str, ...] = ()
    stack_name_hint: str = ""  # where the stack name was looked for, when it was not found

    def deploy_argv(self, cli: str, *, stack_name: str, region: str, stage: str) -> tuple[str, ...]:
        """Deploy without a prompt, and succeed when there is nothing to change."""
        if self.name is ToolName.SERVERLESS:
            return (cli, "deploy", "--stage", stage, "--region", region)
        return (
            cli,
            "deploy",
            "--stack-name",
            stack_name,
            "--region",
            region,
            "--resolve-s3",
            "--capabilities",
            "CAPABILITY_IAM",
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
            "--no-progressbar",
        )

    def remove_argv(self, cli: str, *, stack_name: str, region: str, stage: str) -> tuple[str, ...]:
        if self.name is ToolName.SERVERLESS:
            return (cli, "remove", "--stage", stage, "--region", region)
        return (cli, "delete", "--stack-name", stack_name, "--region", region, "--no-prompts")

    def settings(self, service_dir: Path) -> ServiceSettings:
        """The stack name and region the service folder gives this tool."""
        if self.name is ToolName.SERVERLESS:
            # config reads serverless.yml itself (service, stage, region).
            return ServiceSettings(found=_first(service_dir, _SERVERLESS_FILES) is not None)
        return sam_settings(service_dir)

    @property
    def managed_stacks(self) -> tuple[str, ...]:
        """Stacks the CLI creates for itself, besides the service's."""
        stack = self.artifact_bucket.stack_name
        return (stack,) if stack else ()

    @property
    def bucket_location(self) -> tuple[str | None, str]:
        """The artifact bucket's stack (None: the service's) and logical id."""
        return (self.artifact_bucket.stack_name, self.artifact_bucket.logical_id)

    def artifact_stack(self, service_stack: str) -> str:
        """The stack that holds the artifact bucket, for a service deployed as ``service_stack``."""
        return self.artifact_bucket.stack_name or service_stack


TOOLS: Mapping[ToolName, Tool] = {
    ToolName.SERVERLESS: Tool(
        ToolName.SERVERLESS,
        default_cli="serverless",
        artifact_bucket=ArtifactBucket(None, "ServerlessDeploymentBucket"),
        stack_name_hint="serverless.yml names no plain service",
    ),
    ToolName.SAM: Tool(
        ToolName.SAM,
        default_cli="sam",
        artifact_bucket=ArtifactBucket(SAM_MANAGED_STACK, SAM_BUCKET_LOGICAL_ID),
        transforms=(SAM_TRANSFORM,),
        stack_name_hint="samconfig.toml gives no stack_name",
    ),
}


def _first(service_dir: Path, names: tuple[str, ...]) -> Path | None:
    return next((service_dir / n for n in names if (service_dir / n).is_file()), None)


def choose_tool(name: str | None, service_dir: Path) -> Tool:
    """The tool named (``--tool``/``tool =``), else the one the service folder's files show."""
    if name is not None:
        try:
            return TOOLS[ToolName(name)]
        except ValueError:
            known = ", ".join(t.value for t in ToolName)
            msg = f"--tool {name!r} is not a tool discover knows"
            raise ToolError(
                msg, tip=f"Use one of: {known}; or give the command after --."
            ) from None
    if _first(service_dir, _SERVERLESS_FILES) is None and _is_sam_folder(service_dir):
        return TOOLS[ToolName.SAM]
    return TOOLS[ToolName.SERVERLESS]


def _is_sam_folder(service_dir: Path) -> bool:
    if _first(service_dir, _SAM_CONFIG_FILES) is not None:
        return True
    return sam_template_of(service_dir) is not None


def sam_template_of(service_dir: Path) -> Path | None:
    """The service folder's SAM template (``template.yaml`` ...), when it declares SAM."""
    template = _first(service_dir, _SAM_TEMPLATES)
    if template is None or SAM_TRANSFORM not in template.read_text("utf-8", errors="replace"):
        return None
    return template


def _read_sam_config(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        msg = f"{path}: not valid {path.suffix.lstrip('.').upper()} ({' '.join(str(exc).split())})"
        raise ToolError(msg, tip="Fix the file, or pass --stack-name and --region.") from exc
    return data if isinstance(data, dict) else {}


def _parameters(config: Mapping[str, Any], env: str, command: str) -> Mapping[str, Any]:
    section = config.get(env)
    if not isinstance(section, Mapping):
        return {}
    block = section.get(command)
    params = block.get("parameters") if isinstance(block, Mapping) else None
    return params if isinstance(params, Mapping) else {}


def sam_settings(service_dir: Path, env: str = "default") -> ServiceSettings:
    """``stack_name`` and ``region`` from samconfig: the deploy section, else the global one."""
    path = _first(service_dir, _SAM_CONFIG_FILES)
    found = path is not None or _first(service_dir, _SAM_TEMPLATES) is not None
    if path is None:
        return ServiceSettings(found=found)
    config = _read_sam_config(path)
    merged = {**_parameters(config, env, "global"), **_parameters(config, env, "deploy")}
    stack, region = merged.get("stack_name"), merged.get("region")
    return ServiceSettings(
        stack_name=stack if isinstance(stack, str) and stack else None,
        region=region if isinstance(region, str) and region else None,
        found=True,
    )


def tool_of(config: Any) -> Tool:
    """The tool a validated ``Config`` names (its ``tool`` field)."""
    return TOOLS[ToolName(str(config.tool))]
