"""``Config``: one run's settings from flags, the config files and ``serverless.yml``.

Validated once, here.

Precedence: command-line flags, then ``discover.toml`` in the service folder, then the user's
own ``config.toml`` (``$XDG_CONFIG_HOME/discover/``, by default ``~/.config/discover/``),
then what ``serverless.yml`` says (service name, stage, region), then defaults.

The service folder comes with the repository, which is untrusted: the keys that choose what
discover writes to or deletes, confirm an account, or weaken a guard (``TRUSTED_KEYS``) are
read only from the command line or the user's own file; a service-folder file that sets one
is refused, naming the key. ``out`` from the service folder must stay inside it.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from discover.decision import DEFAULT_HIGH_RISK
from discover.errors import DiscoverError
from discover.fence import deployment_bucket_of
from discover.lifecycle import Phase, default_phases, parse_phases
from discover.tools import choose_tool

CONFIG_FILE = "discover.toml"
USER_CONFIG_FILE = Path("discover") / "config.toml"
# Keys only the user may set: they pick the role and the stack discover writes to and
# deletes, confirm the account, or weaken the grant decision.
TRUSTED_KEYS = frozenset(
    {"sandbox_account", "high_risk", "allow", "yes", "allow_account", "role_arn", "stack_name"}
)
STATE_DIR = ".discover"
DEFAULT_POLICY_NAME = "discover"
DEFAULT_MAX_ITERATIONS = 20
DEFAULT_RUN_TIMEOUT_S = 1800.0
# NOTE: IAM changes are eventually consistent; AWS asks to allow for a few seconds.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
DEFAULT_PROPAGATION_WAITS_S = (5.0, 15.0, 45.0)

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_STAGE = re.compile(r"^[A-Za-z0-9-]+$")
_POLICY_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")
_ACCOUNT = re.compile(r"^\d{12}$")


class ConfigError(DiscoverError):
    """A flag, a config file or the service definition is not usable."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Config:
    """Everything one run needs to know, validated."""

    service_dir: Path
    role_arn: str | None
    region: str
    stage: str
    stack_name: str
    policy_name: str
    max_iterations: int
    cli: str
    deploy_command: tuple[str, ...]
    remove_command: tuple[str, ...]
    local: bool
    out: Path | None
    run_timeout_s: float
    propagation_waits_s: tuple[float, ...]
    session_duration_s: int = 3600
    sandbox_account: str | None = None
    high_risk: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    yes: bool = False
    allow_accounts: tuple[str, ...] = ()
    service: str | None = None  # serverless.yml's service name, for the fence
    deployment_bucket: str | None = None  # serverless.yml's provider.deploymentBucket
    resume: bool = False
    restore: bool = False
    break_lock: bool = False
    # How denials and predictions become the policy (discover.strategies).
    strategy: str = "observed"
    keep_predicted: bool = False
    template: Path | None = None
    trail_timeout_s: float = 900.0
    tool: str = "serverless"
    phases: tuple[Phase, ...] = (Phase.CREATE,)
    # The stage, region and account as parameters in every format (discover.portable).
    portable: bool = False
    # The CloudFormation service role (an ARN, or "auto": the local sandbox's); see
    # discover.service_role. ``custom_command``: the deploy is the user's own (after --).
    service_role: str | None = None
    custom_command: bool = False

    @property
    def state_dir(self) -> Path:
        return self.service_dir / STATE_DIR


_KEYS: dict[str, type | tuple[type, ...]] = {
    "role_arn": str,
    "region": str,
    "stage": str,
    "stack_name": str,
    "policy_name": str,
    "max_iterations": int,
    "cli": str,
    "out": str,
    "local": bool,
    "run_timeout": (int, float),
    "propagation_waits": list,
    "session_duration": int,
    "sandbox_account": str,
    "high_risk": list,
    "allow": list,
    "strategy": str,
    "keep_predicted": bool,
    "template": str,
    "trail_timeout": (int, float),
    "yes": bool,
    "allow_account": list,
    "tool": str,
    "phases": list,
    "remove_command": list,
    "portable": bool,
}


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/discover/config.toml``, by default ``~/.config/discover/config.toml``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / USER_CONFIG_FILE


def read_toml(service_dir: Path) -> dict[str, Any]:
    """The ``discover.toml`` of a service folder, keys normalised to snake_case.

    Refuses a key of ``TRUSTED_KEYS``: the repository must not configure its own guards.
    """
    path = service_dir / CONFIG_FILE
    values = read_toml_file(path)
    for key in sorted(values):
        if key in TRUSTED_KEYS:
            msg = f"{path}: {key} cannot be set in the service folder"
            raise ConfigError(
                msg,
                tip=f"Pass it on the command line, or set it in your own {user_config_path()}.",
            )
    return values


def read_toml_file(path: Path) -> dict[str, Any]:
    """A discover config file, keys normalised to snake_case and type-checked; {} if absent."""
    if not path.exists():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = f"{path}: not valid TOML ({exc})"
        raise ConfigError(msg, tip="Fix the file or remove it; flags work without it.") from exc
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        expected = _KEYS.get(name)
        if expected is None:
            msg = f"{path}: unknown key {key!r}"
            raise ConfigError(msg, tip=f"Known keys: {', '.join(sorted(_KEYS))}")
        # bool is an int subclass: `run_timeout = true` must not pass as 1 second.
        wrong_bool = isinstance(value, bool) and expected is not bool
        if not isinstance(value, expected) or wrong_bool:
            msg = f"{path}: {key} has the wrong type ({type(value).__name__})"
            raise ConfigError(msg)
        values[name] = value
    return values


class _LenientLoader(yaml.SafeLoader):
    """Reads serverless.yml while ignoring CloudFormation tags (!Ref, !GetAtt, ...)."""


def _ignore_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> None:
    return None


_LenientLoader.add_multi_constructor("!", _ignore_tag)


def read_serverless_yml(service_dir: Path) -> dict[str, Any]:
    """The parts of ``serverless.yml`` discover uses; {} when there is none."""
    for name in ("serverless.yml", "serverless.yaml"):
        path = service_dir / name
        if path.exists():
            try:
                data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LenientLoader)  # noqa: S506 - a SafeLoader subclass
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                msg = f"{path}: not valid YAML ({' '.join(str(exc).split())})"
                raise ConfigError(msg) from exc
            return data if isinstance(data, dict) else {}
    return {}


def _service_name(definition: Mapping[str, Any]) -> str | None:
    service = definition.get("service")
    if isinstance(service, Mapping):
        service = service.get("name")
    if isinstance(service, str) and "${" not in service:
        return service
    return None


def _provider_value(definition: Mapping[str, Any], key: str) -> str | None:
    provider = definition.get("provider")
    if isinstance(provider, Mapping):
        value = provider.get(key)
        if isinstance(value, str) and "${" not in value:
            return value
    return None


def _remove_command(flag: str | None, file_value: list[Any] | None) -> tuple[str, ...]:
    if flag:
        return tuple(shlex.split(flag))
    return tuple(str(part) for part in file_value or ())


def build_config(flags: Mapping[str, Any]) -> Config:  # noqa: PLR0915 - one pass over keys
    """Merge flags (None = not given) with discover.toml and serverless.yml; validate."""
    service_dir = Path(flags.get("service_dir") or ".").resolve()
    if not service_dir.is_dir():
        msg = f"service folder {service_dir} does not exist"
        raise ConfigError(msg, tip="Run discover in the service folder or pass --service-dir.")
    if (service_dir / STATE_DIR).is_symlink():
        msg = f"{service_dir / STATE_DIR} is a symbolic link"
        raise ConfigError(msg, tip="discover writes its state there; make it a plain folder.")
    file_values = read_toml(service_dir)
    user_values = read_toml_file(user_config_path())

    def pick(name: str, default: Any = None) -> Any:
        value = flags.get(name)
        if value is None:
            value = file_values.get(name)
        if value is None:
            value = user_values.get(name)
        return default if value is None else value

    def trusted(name: str) -> Any:
        value = flags.get(name)
        return user_values.get(name) if value is None else value

    tool = choose_tool(pick("tool"), service_dir)
    found = tool.settings(service_dir)
    definition = read_serverless_yml(service_dir)
    command = tuple(flags.get("command") or ())
    if not definition and not found.found and not command:
        msg = f"no serverless.yml in {service_dir} and no deploy command after --"
        raise ConfigError(
            msg, tip="Run in a Serverless service folder, or give the command: discover -- CMD ..."
        )
    region = pick("region", found.region or _provider_value(definition, "region") or "us-east-1")
    stage = pick("stage", _provider_value(definition, "stage") or "dev")
    service = _service_name(definition)
    stack_name = (
        trusted("stack_name") or found.stack_name or (f"{service}-{stage}" if service else None)
    )
    if stack_name is None:
        msg = f"cannot tell the stack name: {tool.stack_name_hint}"
        raise ConfigError(msg, tip="Pass --stack-name NAME.")
    role_arn = trusted("role_arn")
    local = bool(pick("local", False))
    max_iterations = int(pick("max_iterations", DEFAULT_MAX_ITERATIONS))
    policy_name = str(pick("policy_name", DEFAULT_POLICY_NAME))
    cli = str(pick("cli", tool.default_cli))
    run_timeout = float(pick("run_timeout", DEFAULT_RUN_TIMEOUT_S))
    default_waits = () if local else DEFAULT_PROPAGATION_WAITS_S
    waits = _waits(pick("propagation_waits", default_waits))
    session_duration = int(pick("duration_seconds", pick("session_duration", 3600)))
    # With --local, the sandbox announces its account; on AWS the user must name it.
    sandbox_account = trusted("sandbox_account")
    if sandbox_account is not None and not _ACCOUNT.fullmatch(str(sandbox_account)):
        msg = f"--sandbox-account {sandbox_account!r} is not a 12-digit account id"
        raise ConfigError(msg)
    high_risk, allow, allow_accounts = _guard_settings(flags, user_values)

    _validate(
        role_arn=role_arn,
        local=local,
        region=region,
        stage=stage,
        max_iterations=max_iterations,
        policy_name=policy_name,
        run_timeout=run_timeout,
        session_duration=session_duration,
    )
    strategy, template = _strategy(
        pick,
        flags=flags,
        file_values=file_values,
        service_dir=service_dir,
        definition=definition,
        command=command,
        sam=tool.name.value == "sam",
    )
    where = {"stack_name": str(stack_name), "region": region, "stage": stage}
    deploy = command or tool.deploy_argv(cli, **where)
    given_remove = _remove_command(flags.get("remove_command"), file_values.get("remove_command"))
    remove = given_remove or tool.remove_argv(cli, **where)
    phases = pick("phases")
    phases = (
        parse_phases(phases)
        if phases is not None
        else default_phases(custom_command=bool(command), remove_command=bool(given_remove))
    )
    return Config(
        service_dir=service_dir,
        role_arn=role_arn,
        region=region,
        stage=stage,
        stack_name=str(stack_name),
        policy_name=policy_name,
        max_iterations=max_iterations,
        cli=cli,
        deploy_command=deploy,
        remove_command=remove,
        phases=phases,
        local=local,
        out=_out_path(flags.get("out"), file_values.get("out"), service_dir),
        run_timeout_s=run_timeout,
        propagation_waits_s=waits,
        session_duration_s=session_duration,
        sandbox_account=str(sandbox_account) if sandbox_account is not None else None,
        high_risk=high_risk,
        allow=allow,
        yes=bool(trusted("yes")),
        allow_accounts=allow_accounts,
        service=service,
        deployment_bucket=deployment_bucket_of(definition),
        resume=bool(flags.get("resume")),
        restore=bool(flags.get("restore")),
        break_lock=bool(flags.get("break_lock")),
        strategy=strategy,
        keep_predicted=bool(pick("keep_predicted", False)),
        template=template,
        trail_timeout_s=float(pick("trail_timeout", 60.0 if local else 900.0)),
        tool=tool.name.value,
        portable=bool(pick("portable", False)),
        service_role=_service_role(trusted("service_role"), local=local),
        custom_command=bool(command),
    )


def _service_role(value: Any, *, local: bool) -> str | None:
    """--service-role: an ARN, or (--local) the sandbox's own empty one."""
    from discover.service_role import AUTO, ServiceRole

    if value is None or value is False:
        return None
    text = str(value)
    if text == AUTO:
        if not local:
            msg = "--service-role without an ARN needs --local (the sandbox makes one)"
            raise ConfigError(msg, tip="Pass --service-role arn:aws:iam::ACCOUNT:role/NAME.")
        return AUTO
    return ServiceRole(text).arn


def _strategy(
    pick: Any,
    *,
    flags: Mapping[str, Any],
    file_values: Mapping[str, Any],
    service_dir: Path,
    definition: Mapping[str, Any],
    command: tuple[str, ...],
    sam: bool = False,
) -> tuple[str, Path | None]:
    """The strategy, and the template the predicting one reads (None: the CLI packages it, or
    it is the SAM template of the service folder)."""
    from discover.strategies import DEFAULT_STRATEGY, Strategy
    from discover.tools import sam_template_of

    explicit = pick("strategy")
    names = [s.value for s in Strategy]
    if explicit is not None and explicit not in names:
        msg = f"--strategy {explicit!r} is not one of {', '.join(names)}"
        raise ConfigError(
            msg, tip=f"The default, {DEFAULT_STRATEGY.value}, predicts from the template."
        )
    template = _out_path(flags.get("template"), file_values.get("template"), service_dir)
    if template is not None and not template.is_file():
        msg = f"--template {template}: no such file"
        raise ConfigError(msg, tip="Give the CloudFormation template the deploy sends.")
    strategy = str(explicit or DEFAULT_STRATEGY.value)
    readable = bool(definition) or (sam and sam_template_of(service_dir) is not None)
    if strategy == Strategy.PREDICTED.value and template is None and (command or not readable):
        if explicit is not None:
            msg = "--strategy predicted needs the template: a deploy command was given"
            raise ConfigError(
                msg, tip="Pass --template FILE (the stack's CloudFormation template)."
            )
        strategy = Strategy.OBSERVED.value  # nothing to predict from: learn from denials
    return strategy, template


def _guard_settings(
    flags: Mapping[str, Any], user_values: Mapping[str, Any]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """high_risk, allow and allow_account: from the flags and the user's own file only."""
    listed = flags.get("high_risk")
    if listed is None:
        listed = user_values.get("high_risk")
    high_risk = tuple(str(a) for a in (DEFAULT_HIGH_RISK if listed is None else listed))
    allow = tuple(str(a) for a in (flags.get("allow") or []) + list(user_values.get("allow", [])))
    allow_accounts = tuple(
        str(a)
        for a in (flags.get("allow_account") or []) + list(user_values.get("allow_account", []))
    )
    for account in allow_accounts:
        if not _ACCOUNT.fullmatch(account):
            msg = f"--allow-account {account!r} is not a 12-digit account id"
            raise ConfigError(msg)
    return high_risk, allow, allow_accounts


def _out_path(flag: str | None, from_file: str | None, service_dir: Path) -> Path | None:
    """A flag is relative to where discover runs; discover.toml's to the service folder.

    The service folder's ``out`` must stay inside it (symbolic links resolved): the
    repository must not make discover write elsewhere.
    """
    if flag:
        return Path(flag).resolve()
    if from_file:
        path = (service_dir / from_file).resolve()
        if not path.is_relative_to(service_dir) or path == service_dir:
            msg = f"{service_dir / CONFIG_FILE}: out {from_file!r} is outside the service folder"
            raise ConfigError(msg, tip="Use a path inside it, or pass --out on the command line.")
        return path
    return None


def _waits(raw: Any) -> tuple[float, ...]:
    try:
        waits = tuple(float(w) for w in raw)
    except (TypeError, ValueError) as exc:
        msg = f"propagation_waits {raw!r}: a list of seconds, e.g. [5, 15, 45]"
        raise ConfigError(msg) from exc
    if any(not math.isfinite(w) or w < 0 for w in waits):
        msg = f"propagation_waits {raw!r}: each wait must be a non-negative number of seconds"
        raise ConfigError(msg)
    return waits


def _validate(
    *,
    role_arn: str | None,
    local: bool,
    region: str,
    stage: str,
    max_iterations: int,
    policy_name: str,
    run_timeout: float,
    session_duration: int,
) -> None:
    if not local and not role_arn:
        msg = "no sandbox role given"
        raise ConfigError(
            msg, tip="Pass --role-arn arn:aws:iam::ACCOUNT:role/NAME, or --local to try it locally."
        )
    if role_arn and not _ROLE_ARN.fullmatch(role_arn):
        msg = f"--role-arn {role_arn!r} is not an IAM role ARN"
        raise ConfigError(msg, tip="It looks like arn:aws:iam::111122223333:role/DeployRole")
    if not _REGION.fullmatch(region):
        msg = f"--region {region!r} is not an AWS region name"
        raise ConfigError(msg, tip="For example us-east-1.")
    if not _STAGE.fullmatch(stage):
        msg = f"--stage {stage!r}: use letters, digits and dashes"
        raise ConfigError(msg)
    if not 1 <= max_iterations <= 1000:
        msg = f"--max-iterations {max_iterations}: must be between 1 and 1000"
        raise ConfigError(msg)
    if not _POLICY_NAME.fullmatch(policy_name):
        msg = f"--policy-name {policy_name!r} is not a valid IAM policy name"
        raise ConfigError(msg)
    if not math.isfinite(run_timeout) or run_timeout <= 0:
        msg = "--run-timeout must be a positive number of seconds"
        raise ConfigError(msg)
    if not 900 <= session_duration <= 43200:
        msg = f"--duration-seconds {session_duration}: IAM allows 900 to 43200 seconds"
        raise ConfigError(msg)
