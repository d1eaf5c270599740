"""The CloudFormation service role: the second role a run grows, beside the caller's.

Given a service role (``RoleARN`` of CreateStack, CreateChangeSet, UpdateStack, DeleteStack),
CloudFormation assumes it and makes every resource handler call with its session, whose ARN is
``arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/AWSCloudFormation``; the caller then needs only
the CLI's own calls, plus ``iam:PassRole`` of the service role to CloudFormation (checked at
each of those calls). So a run keeps two policies:

- the caller's (the sandbox role's inline policy, as without a service role), to which
  ``iam:PassRole`` of the service role is granted with ``iam:PassedToService:
  cloudformation.amazonaws.com``;
- the service role's (its own inline policy of the same name), fed by the denials whose
  principal is exactly the service role's session (the stack's events name it).

How the deploy is told: Serverless reads ``provider.iam.deploymentRole`` from its
configuration only, so discover never edits ``serverless.yml``: it writes a JSON copy with the
role set beside it (osls takes ``--config`` only in the service folder's root, and resolves
every path and variable against that folder, so the copy behaves as the original) for the
run's duration, and removes it after; SAM takes ``sam deploy --role-arn``; a command of your
own is run as given (it passes the role itself).
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html
https://www.serverless.com/framework/docs/providers/aws/guide/iam#custom-iam-roles-for-each-function
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from discover.denials import Denial
from discover.errors import DiscoverError
from discover.iamdb import Action
from discover.ownership import Owner, attribute, session_arn
from discover.policy import Condition, Grant, PolicyDocument

CLOUDFORMATION = "cloudformation.amazonaws.com"
SESSION_NAME = "AWSCloudFormation"  # the session name CloudFormation gives the role it assumes
AUTO = "auto"  # --service-role with --local and no ARN: the sandbox's own empty service role
PASS_ROLE = Action("iam:PassRole")
PASSED_TO_CLOUDFORMATION: Condition = (("StringEquals", "iam:PassedToService", (CLOUDFORMATION,)),)
SERVERLESS_COPY = ".serverless-discover.json"  # the configuration copy, in the service folder
SERVICE_ROLE_POLICY_FILE = "service-role-policy.json"


class ServiceRoleError(DiscoverError):
    """The service role given cannot be used."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class ServiceRole:
    """The role CloudFormation deploys with, and the session its denials name."""

    arn: str

    def __post_init__(self) -> None:
        parts = self.arn.split(":", 5)
        if len(parts) < 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
            msg = f"--service-role {self.arn!r} is not a role ARN"
            raise ServiceRoleError(msg, tip="Pass arn:aws:iam::ACCOUNT:role/NAME.")

    @property
    def session(self) -> str:
        """The principal CloudFormation's calls are made as (compared whole)."""
        return session_arn(self.arn, SESSION_NAME)

    def owns(self, denial: Denial) -> bool:
        """True when ``denial`` is the service role's (a resource handler's call, read from a
        channel discover trusts: ``ownership``)."""
        return attribute(denial, None, self.session) is Owner.SERVICE_ROLE

    def pass_role(self, grant: Grant) -> Grant:
        """The caller's ``iam:PassRole`` of this role, only to CloudFormation."""
        if grant.action == PASS_ROLE and grant.resource == self.arn:
            return replace(grant, condition=PASSED_TO_CLOUDFORMATION)
        return grant

    def is_pass_to_cloudformation(self, grant: Grant) -> bool:
        """The one grant on the service role discover makes: the caller passing it to
        CloudFormation, and nothing else."""
        return (
            grant.action == PASS_ROLE
            and grant.resource == self.arn
            and grant.condition == PASSED_TO_CLOUDFORMATION
        )


@dataclass(slots=True)
class ServiceRolePolicy:
    """The service role's policy as a run grows it, and how it is put on the role.

    One per run (mutable, like the sandbox role itself): the loop's steps share it.
    """

    role: ServiceRole
    apply: Callable[[PolicyDocument], None]
    policy: PolicyDocument = field(default_factory=PolicyDocument)

    def grant(self, grants: Sequence[Grant]) -> PolicyDocument:
        self.policy = self.policy.with_grants(grants)
        self.apply(self.policy)
        return self.policy


# --- telling the deploy -------------------------------------------------------------------


def deploy_argv(
    command: Sequence[str], *, tool: str, cli: str, role: ServiceRole, custom: bool
) -> tuple[str, ...]:
    """The deploy (or remove) command with the service role passed to CloudFormation."""
    argv = tuple(command)
    if custom or argv[:1] != (cli,):
        return argv  # a command of the user's own: it passes the role itself
    if tool == "sam":
        return (*argv, "--role-arn", role.arn) if argv[1:2] == ("deploy",) else argv
    return (*argv, "--config", SERVERLESS_COPY)


def _yaml_load(text: str) -> Any:
    """serverless.yml as osls reads it (CloudFormation's short forms as long forms)."""
    from discover.template import load_cfn_yaml

    return load_cfn_yaml(text)


def serverless_copy(service_dir: Path, role: ServiceRole) -> dict[str, Any]:
    """``serverless.yml`` with ``provider.iam.deploymentRole`` set, kept out of the package."""
    import yaml

    source = next(
        (
            service_dir / n
            for n in ("serverless.yml", "serverless.yaml")
            if (service_dir / n).is_file()
        ),
        None,
    )
    if source is None:
        msg = f"no serverless.yml in {service_dir} to pass the service role with"
        raise ServiceRoleError(msg, tip="Pass the role in your own command after --.")
    try:
        definition = _yaml_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        msg = f"cannot read {source}: {' '.join(str(exc).split())[:200]}"
        tip = "Fix the file, or pass the role in a command after --."
        raise ServiceRoleError(msg, tip=tip) from exc
    if not isinstance(definition, dict):
        msg = f"{source} is not a mapping"
        raise ServiceRoleError(msg, tip="Fix the file, or pass the role in a command after --.")
    provider = definition.setdefault("provider", {})
    if not isinstance(provider, dict):
        msg = f"{source}: provider is not a mapping"
        raise ServiceRoleError(msg, tip="Fix the file, or pass the role in a command after --.")
    iam = provider.get("iam")
    provider["iam"] = {**(iam if isinstance(iam, dict) else {}), "deploymentRole": role.arn}
    provider.pop("cfnRole", None)  # the older name would not win over deploymentRole anyway
    package = definition.setdefault("package", {})
    if isinstance(package, dict):
        patterns = package.get("patterns")
        patterns = list(patterns) if isinstance(patterns, list) else []
        package["patterns"] = [*patterns, f"!{SERVERLESS_COPY}"]
    return definition


@contextlib.contextmanager
def passed_to_deploy(
    service_dir: Path, role: ServiceRole | None, *, tool: str, custom: bool
) -> Iterator[None]:
    """While the run lasts, the configuration copy the deploy's ``--config`` names."""
    if role is None or tool != "serverless" or custom:
        yield
        return
    path = service_dir / SERVERLESS_COPY
    if path.is_symlink() or (path.exists() and not path.is_file()):
        msg = f"{path} is not a plain file"
        raise ServiceRoleError(msg, tip="Remove it: discover writes its copy there.")
    path.write_text(json.dumps(serverless_copy(service_dir, role), indent=2) + "\n", "utf-8")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


__all__ = [
    "AUTO",
    "CLOUDFORMATION",
    "PASSED_TO_CLOUDFORMATION",
    "SERVICE_ROLE_POLICY_FILE",
    "SESSION_NAME",
    "ServiceRole",
    "ServiceRoleError",
    "ServiceRolePolicy",
    "deploy_argv",
    "passed_to_deploy",
    "serverless_copy",
]
