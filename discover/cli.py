"""The command line: parse arguments, set up logging, run, print, exit. The only place that exits.

discover [OPTIONS] [-- DEPLOY COMMAND ...]     find the policy (the default command)
discover parse [FILE|-] [--format json|table]  list the denials in a log
discover verify --policy FILE [OPTIONS]        deploy once with only that policy
discover report [--service-dir DIR]            re-render the review report from the journal
discover diff OLD.json NEW.json                what a re-discovery added or removed
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import botocore.exceptions
import structlog

from discover import __version__
from discover.config import (
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_POLICY_NAME,
    Config,
    ConfigError,
    build_config,
)
from discover.denials import Denial
from discover.errors import DiscoverError
from discover.formats import Format, render
from discover.journal import Journal, read_journal
from discover.lock import RunLock
from discover.loop import (
    Evidence,
    LoopSettings,
    Outcome,
    StopReason,
    collect_denials,
    discover,
    resume_state,
)
from discover.policy import (
    INLINE_ROLE_POLICIES_QUOTA,
    MANAGED_POLICY_QUOTA,
    PolicyDocument,
    check_quota,
    load_policy,
    split_for_quota,
)
from discover.report import render_report
from discover.tools import TOOLS, ToolName

log = structlog.get_logger("discover")
SUBCOMMANDS = ("run", "parse", "verify", "report", "diff")


# --- logging --------------------------------------------------------------------------------


def configure_logging(fmt: str, verbose: bool) -> None:
    """structlog to stderr: readable on a terminal, JSON otherwise (or with --log-format json)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.INFO
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --- arguments ------------------------------------------------------------------------------


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service-dir", help="the service folder (default: the current folder)")
    parser.add_argument("--role-arn", help="the sandbox role discover grows (not with --local)")
    parser.add_argument("--region", help="AWS region (default: serverless.yml's, else us-east-1)")
    parser.add_argument("--stage", help="stage to deploy (default: serverless.yml's, else dev)")
    parser.add_argument("--stack-name", help="CloudFormation stack (default: SERVICE-STAGE)")
    parser.add_argument(
        "--policy-name",
        help=f"the inline policy discover owns on the role (default: {DEFAULT_POLICY_NAME})",
    )
    parser.add_argument("--cli", help="the Serverless-compatible CLI (default: serverless)")
    parser.add_argument(
        "--tool", help="the deploy CLI: serverless or sam (default: from the folder's files)"
    )
    parser.add_argument(
        "--local", action="store_true", default=None, help="use the embedded AWS sandbox"
    )
    parser.add_argument(
        "--run-timeout", type=float, help="seconds one deploy may take (default 1800)"
    )
    parser.add_argument(
        "--sandbox-account", help="the 12-digit account discover may write to (required on AWS)"
    )
    parser.add_argument(
        "--duration-seconds", type=int, help="sandbox session length, within the role's maximum"
    )
    parser.add_argument(
        "--break-lock", action="store_true", help="take over a role lock left by a dead run"
    )
    parser.add_argument("--log-format", choices=("auto", "console", "json"), default="auto")
    parser.add_argument("-v", "--verbose", action="store_true")


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"discover {command}" if command != "run" else "discover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"discover {__version__}")
    if command == "run":
        _common_options(parser)
        parser.add_argument(
            "--max-iterations",
            type=int,
            help=f"deploy runs at most (default {DEFAULT_MAX_ITERATIONS})",
        )
        parser.add_argument("--out", help="also write the policy to this file")
        parser.add_argument(
            "--format",
            choices=[f.value for f in Format],
            default=Format.JSON.value,
            help="the policy on stdout and --out: IAM JSON (default), a Terraform "
            "aws_iam_policy_document, a CloudFormation managed policy, or a Serverless "
            "deploymentRole template (.discover/policy.json stays JSON)",
        )
        parser.add_argument("--quiet", action="store_true", help="do not echo the deploy's output")
        parser.add_argument(
            "--allow",
            action="append",
            metavar="ACTION",
            help="grant this high-risk action without asking (repeatable)",
        )
        parser.add_argument(
            "--yes", action="store_true", help="grant high-risk actions without asking"
        )
        parser.add_argument(
            "--resume", action="store_true", help="continue the interrupted run in .discover/"
        )
        parser.add_argument(
            "--restore",
            action="store_true",
            help="put the role's policy back as it was before discover ran, then exit",
        )
    elif command == "verify":
        _common_options(parser)
        parser.add_argument(
            "--policy",
            required=True,
            action="append",
            help="the policy JSON to verify; repeat it for a policy split into managed policies",
        )
    elif command == "parse":
        parser.add_argument("file", nargs="?", default="-", help="a log file, or - for stdin")
        parser.add_argument("--format", choices=("json", "table"), default="json")
    elif command == "report":
        parser.add_argument(
            "--service-dir", help="the service folder (default: the current folder)"
        )
    elif command == "diff":
        parser.add_argument("old", help="the policy JSON before (e.g. the committed one)")
        parser.add_argument("new", help="the policy JSON after (e.g. .discover/policy.json)")
    return parser


def _split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        at = list(argv).index("--")
        return list(argv[:at]), list(argv[at + 1 :])
    return list(argv), []


def _flags(args: argparse.Namespace, command: list[str]) -> dict[str, Any]:
    flags = dict(vars(args))
    flags["command"] = command
    cli = flags.get("cli")
    if cli and "/" in cli:
        flags["cli"] = str(Path(cli).resolve())  # the deploy runs in the service folder
    return flags


# --- main -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run_main(sys.argv[1:] if argv is None else argv))


def run_main(argv: Sequence[str]) -> int:
    """Dispatch; turn every ``DiscoverError`` into a one-line message and its exit code."""
    head, command = _split_command(argv)
    name = head[0] if head and head[0] in SUBCOMMANDS else "run"
    if head and head[0] in SUBCOMMANDS:
        head = head[1:]
    args = build_parser(name).parse_args(head)
    configure_logging(getattr(args, "log_format", "auto"), getattr(args, "verbose", False))
    try:
        offline = {"parse": cmd_parse, "report": cmd_report, "diff": cmd_diff}
        if name in offline:
            return offline[name](args, sys.stdout)
        config = build_config(_flags(args, command))
        if name == "verify":
            return cmd_verify(config, [Path(p) for p in args.policy], sys.stdout)
        return cmd_run(config, sys.stdout, quiet=bool(args.quiet), fmt=Format(args.format))
    except DiscoverError as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return exc.exit_code
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        print(f"discover: AWS: {exc}", file=sys.stderr)
        print(
            "Tip: discover needs admin credentials of the sandbox account in the default "
            "chain (AWS_PROFILE, SSO, environment variables).",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("discover: interrupted", file=sys.stderr)
        return 130


# --- environments: the local sandbox or AWS -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Environment:
    """Where a run happens: the admin session, the sandbox role, and (locally) the endpoint."""

    session: Any
    role_arn: str
    endpoint: str | None
    account: str | None  # the account the local sandbox announced; None on AWS


@contextlib.contextmanager
def environment(config: Config) -> Iterator[Environment]:
    """The admin identity and the sandbox role, on AWS or in a new local sandbox."""
    import boto3

    if not config.local:
        assert config.role_arn is not None
        # An endpoint the user set (an AWS-compatible emulator) is the deploy's endpoint too.
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
        session = boto3.Session(region_name=config.region)
        yield Environment(session, config.role_arn, endpoint, None)
        return
    from discover.local.process import LocalSandbox

    with LocalSandbox(region=config.region) as info:
        session = boto3.Session(
            aws_access_key_id=info.access_key_id,
            aws_secret_access_key=info.secret_access_key,
            region_name=config.region,
        )
        log.info("local_sandbox_started", endpoint=info.endpoint, role_arn=info.role_arn)
        yield Environment(session, info.role_arn, info.endpoint, info.account)


def _make_sandbox(config: Config, env: Environment) -> Any:
    """The sandbox, once the guard rails agree: accounts, the role, the session length."""
    from discover.guard import check_accounts
    from discover.sandbox import AwsSandbox

    sandbox = AwsSandbox(
        env.session,
        role_arn=env.role_arn,
        policy_name=config.policy_name,
        stack_name=config.stack_name,
        region=config.region,
        endpoint_url=env.endpoint,
        managed_stacks=TOOLS[ToolName(config.tool)].managed_stacks,
    )
    identity = sandbox.admin_identity()
    check_accounts(
        admin_account=identity["account"],
        role_arn=env.role_arn,
        sandbox_account=config.sandbox_account or env.account,
    )
    limit = sandbox.check_role()
    if config.session_duration_s > limit:
        msg = (
            f"--duration-seconds {config.session_duration_s} exceeds the role's "
            f"MaxSessionDuration ({limit} s)"
        )
        raise ConfigError(msg, tip=f"Use at most {limit}, or raise the role's MaxSessionDuration.")
    return sandbox


def _make_sessions(config: Config, env: Environment) -> Any:
    from discover.credentials import RoleSession

    kwargs: dict[str, Any] = {"region_name": config.region}
    if env.endpoint:
        kwargs["endpoint_url"] = env.endpoint
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return RoleSession(
        env.session.client("sts", **kwargs),
        env.role_arn,
        session_name=f"discover-{stamp}",
        duration_s=config.session_duration_s,
    )


def _make_deployer(config: Config, env: Environment, logs_dir: Path, *, quiet: bool) -> Any:
    from discover.runner import CommandDeployer

    return CommandDeployer(
        config.deploy_command,
        cwd=config.service_dir,
        region=config.region,
        logs_dir=logs_dir,
        timeout_s=config.run_timeout_s,
        endpoint_url=env.endpoint,
        echo=None if quiet else sys.stderr,
    )


# --- discover (run) -------------------------------------------------------------------------


def _fresh_journal(state_dir: Path) -> Journal:
    path = state_dir / "journal.jsonl"
    if path.exists():  # keep the previous run's record
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%S")
        path.rename(state_dir / f"journal-{stamp}.jsonl")
    return Journal(path)


def _refuser(config: Config) -> Any:
    """The loop's ``refuse`` hook: high-risk grants need --allow, --yes, or a yes at a prompt."""
    from discover.guard import high_risk_grants

    def refuse(evidence: list[Evidence]) -> list[Evidence]:
        risky = high_risk_grants(
            [e.grant for e in evidence],
            config.high_risk,
            allowed=config.allow,
            stack_name=config.stack_name,
        )
        if not risky or config.yes:
            return []
        refused = []
        for item in evidence:
            if item.grant not in risky:
                continue
            if not sys.stdin.isatty():
                refused.append(item)
                continue
            answer = input(
                f"discover: grant high-risk {item.grant.action} on {item.grant.resource}? [y/N] "
            )
            if answer.strip().lower() not in {"y", "yes"}:
                refused.append(item)
        return refused

    return refuse


def cmd_run(config: Config, out: TextIO, *, quiet: bool = False, fmt: Format = Format.JSON) -> int:
    state_dir = config.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    with environment(config) as env:
        sandbox = _make_sandbox(config, env)
        with RunLock(state_dir, sandbox, break_lock=config.break_lock):
            if config.restore:
                return _restore(config, sandbox)
            journal, settings = _open_journal(config, env, sandbox)
            try:
                outcome = discover(
                    _make_deployer(config, env, state_dir / "iterations", quiet=quiet),
                    sandbox,
                    _make_sessions(config, env),
                    journal,
                    settings,
                    refuse=_refuser(config),
                )
            except Exception:
                _write_partial(config, journal)
                raise
    wall = (datetime.now(UTC) - started).total_seconds()
    _write_outputs(config, outcome, journal, fmt)
    out.write(render(outcome.policy, fmt, name=config.stack_name))
    _summarise(config, outcome, wall)
    quota = check_quota(outcome.policy)
    if not quota.fits_managed:
        print(f"discover: policy size: {quota.describe()}", file=sys.stderr)
    return outcome.reason.exit_code


def _open_journal(config: Config, env: Environment, sandbox: Any) -> tuple[Journal, LoopSettings]:
    """A fresh journal (with the role's backup), or the interrupted one with where it stopped."""
    settings = LoopSettings(
        max_iterations=config.max_iterations, propagation_waits_s=config.propagation_waits_s
    )
    if config.resume:
        journal = Journal(config.state_dir / "journal.jsonl")
        state = resume_state(list(read_journal(journal.path)), stack_name=config.stack_name)
        remaining = config.max_iterations - state.last_iteration
        if remaining < 1:
            used = f"{state.last_iteration} of {config.max_iterations}"
            msg = f"the interrupted run already used {used} runs"
            raise ConfigError(msg, tip="Raise --max-iterations to go on.")
        journal.append("resumed", iteration=state.last_iteration + 1)
        settings = replace(
            settings,
            max_iterations=remaining,
            initial_policy=state.policy,
            first_iteration=state.last_iteration + 1,
        )
        return journal, settings
    journal = _fresh_journal(config.state_dir)
    journal.append(
        "started",
        role_arn=env.role_arn,
        policy_name=config.policy_name,
        stack_name=config.stack_name,
        region=config.region,
        stage=config.stage,
        command=list(config.deploy_command),
        local=config.local,
        max_iterations=config.max_iterations,
    )
    backup = sandbox.backup()
    journal.append("backup", role_arn=env.role_arn, backup=backup)
    others = [n for n in backup["inline"] if n != config.policy_name] + backup["attached"]
    if others:
        log.warning(
            "role_has_other_policies",
            policies=others,
            hint="their permissions will not be discovered; use a role with none",
        )
    return journal, settings


def _restore(config: Config, sandbox: Any) -> int:
    from discover.journal import first_backup

    backup = first_backup(config.state_dir)
    if backup is None:
        msg = f"no backup of the role in {config.state_dir}"
        raise ConfigError(msg, tip="--restore needs the journal of an earlier run.")
    sandbox.restore(backup)
    print(
        f"discover: restored {config.policy_name} on {sandbox.role_arn} as it was before.",
        file=sys.stderr,
    )
    return 0


def _write_partial(config: Config, journal: Journal) -> None:
    """After an error mid-run: the policy as far as the journal knows it, and the report."""
    records = list(read_journal(journal.path))
    policies = [r["policy"] for r in records if "policy" in r]
    if policies:
        policy = PolicyDocument.from_dict(policies[-1])
        (config.state_dir / "policy.json").write_text(policy.render_json(), encoding="utf-8")
    (config.state_dir / "report.md").write_text(render_report(records), encoding="utf-8")


def _write_outputs(
    config: Config, outcome: Outcome, journal: Journal, fmt: Format = Format.JSON
) -> None:
    state_dir = config.state_dir
    (state_dir / "policy.json").write_text(outcome.policy.render_json(), encoding="utf-8")
    (state_dir / "report.md").write_text(
        render_report(list(read_journal(journal.path))), encoding="utf-8"
    )
    if config.out is not None:
        config.out.parent.mkdir(parents=True, exist_ok=True)
        config.out.write_text(render(outcome.policy, fmt, name=config.stack_name), "utf-8")


def _summarise(config: Config, outcome: Outcome, wall_s: float) -> None:
    runs = len(outcome.iterations)
    actions = len(outcome.policy.actions)
    state = config.state_dir
    lines = []
    if outcome.reason is StopReason.SUCCEEDED:
        lines.append(
            f"discover: converged: {runs} deploy run(s), {actions} action(s), {wall_s:.0f} s."
        )
    else:
        lines.append(
            f"discover: stopped ({outcome.reason.value}) after {runs} run(s): {outcome.detail}."
        )
        for denial in outcome.blocking:
            what = f"{denial.action or '?'} on {denial.resource or '?'}"
            lines.append(f"  denied: {what} ({denial.reason.value})")
            if not denial.reason.fixable:
                lines.append(f"  Tip: {_unfixable_tip(denial)}")
        if outcome.reason is StopReason.DEPLOY_FAILED and outcome.iterations:
            lines.append("  last output:")
            lines += [f"    {line}" for line in outcome.iterations[-1].result.tail(15).splitlines()]
        if outcome.reason is StopReason.UNRESOLVED:
            lines.append(
                "  Tip: the output names a refusal but not the IAM action; read the run's log, "
                "grant the action by hand on the role, and run discover again."
            )
    lines.append(f"  policy: {state / 'policy.json'}")
    lines.append(f"  report: {state / 'report.md'}")
    lines.append(f"  journal: {state / 'journal.jsonl'}; run logs: {state / 'iterations'}/")
    print("\n".join(lines), file=sys.stderr)


def _unfixable_tip(denial: Denial) -> str:
    from discover.denials import describe_unfixable

    return str(describe_unfixable(denial.reason))


# --- verify ---------------------------------------------------------------------------------


def _verify_parts(paths: Sequence[Path]) -> tuple[PolicyDocument, tuple[PolicyDocument, ...]]:
    """The policy to verify, and the managed policies to attach when it is not one inline policy.

    One file within the role's inline quota is put inline, as discover runs; several files (a
    split) or one over the quota are attached as managed policies, each within its quota.
    """
    parts = [load_policy(p) for p in paths]
    whole = PolicyDocument().with_grants(g for part in parts for g in part.grants)
    if len(parts) == 1 and whole.size() <= INLINE_ROLE_POLICIES_QUOTA:
        return whole, ()
    if all(p.size() <= MANAGED_POLICY_QUOTA for p in parts):
        return whole, tuple(parts)
    return whole, split_for_quota(whole, MANAGED_POLICY_QUOTA)


def cmd_verify(config: Config, policy_paths: Sequence[Path], out: TextIO) -> int:
    """Deploy once, from scratch, with only ``policy``; report; remove what was deployed."""
    policy, managed = _verify_parts(policy_paths)
    policy_path = ", ".join(str(p) for p in policy_paths)
    state_dir = config.state_dir / "verify"
    with environment(config) as env:
        sandbox = _make_sandbox(config, env)
        previous = sandbox.read_policy()
        sandbox.prepare()
        if sandbox.stack_status() is not None and not config.local:
            msg = f"stack {config.stack_name} exists: verify deploys from scratch"
            raise ConfigError(msg, tip="Pass --stage with a stage that is not deployed.")
        sandbox.apply_policy(PolicyDocument() if managed else policy)
        attached = sandbox.attach_managed(managed) if managed else []
        try:
            sessions = _make_sessions(config, env)
            deployer = _make_deployer(config, env, state_dir, quiet=False)
            started = datetime.now(UTC)
            result = deployer.deploy(sessions.current(), 1)
            denials = () if result.succeeded else collect_denials(result, sandbox, started)
        finally:
            sandbox.delete_stack()
            sandbox.detach_managed(attached)
            sandbox.apply_policy(previous or PolicyDocument())
    record = {
        "verified": result.succeeded,
        "policy": policy_path,
        "managed_policies": len(managed),
        "actions": len(policy.actions),
        "duration_s": result.duration_s,
        "first_denial": _denial_json(denials[0]) if denials else None,
    }
    out.write(json.dumps(record, indent=2) + "\n")
    if result.succeeded:
        print(f"discover: verified: the deploy succeeds with only {policy_path}.", file=sys.stderr)
        return 0
    if denials:
        d = denials[0]
        print(
            f"discover: not verified: denied {d.action} on {d.resource or '?'}: {d.message}",
            file=sys.stderr,
        )
        return 1
    print(f"discover: not verified: the deploy failed:\n{result.tail(15)}", file=sys.stderr)
    return 4


# --- parse and report -----------------------------------------------------------------------


def _denial_json(denial: Denial) -> dict[str, Any]:
    return {
        "principal": denial.principal,
        "action": denial.action,
        "action_known": denial.action_known,
        "resource": denial.resource,
        "reason": denial.reason.value,
        "fixable": denial.reason.fixable,
        "source": denial.source,
        "message": denial.message,
    }


def cmd_parse(args: argparse.Namespace, out: TextIO) -> int:
    """Stream the file (or stdin) through the parser; JSON list or a table."""
    from discover.denials import iter_denials

    try:
        handle: Any = (
            sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", errors="replace")  # noqa: SIM115
        )
    except OSError as exc:
        msg = f"cannot read {args.file}: {exc.strerror}"
        raise DiscoverError(msg, exit_code=1) from exc
    with handle:
        denials = list(iter_denials(handle))
    if args.format == "json":
        out.write(json.dumps([_denial_json(d) for d in denials], indent=2) + "\n")
        return 0
    rows = [("ACTION", "RESOURCE", "REASON", "PRINCIPAL")]
    rows += [
        (d.action or "-", d.resource or "-", d.reason.value, d.principal or "-") for d in denials
    ]
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(3)]
    for row in rows:
        out.write(
            "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True))
            + "  "
            + row[3]
            + "\n"
        )
    out.write(f"{len(denials)} denial(s)\n")
    return 0


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    state_dir = Path(args.service_dir or ".").resolve() / ".discover"
    path = state_dir / "journal.jsonl"
    records = list(read_journal(path))
    if not records:
        msg = f"no journal at {path}"
        raise DiscoverError(msg, tip="Run discover in this service folder first.", exit_code=2)
    report = render_report(records)
    (state_dir / "report.md").write_text(report, encoding="utf-8")
    out.write(report)
    return 0


def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    """What NEW grants that OLD did not, and the reverse; exit 0 either way."""
    from discover.diff import diff_policies, render_diff

    old, new = load_policy(Path(args.old)), load_policy(Path(args.new))
    out.write(render_diff(diff_policies(old, new), args.old, args.new))
    return 0
