"""The command line: parse arguments, set up logging and the live view, call, print, exit.

The only module that prints to the user or exits; the workflows are in ``app.py``. What the
user reads in ``discover --help`` is ``DESCRIPTION`` below.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

import botocore.exceptions
import botocore.parsers
import structlog

from discover import __version__
from discover.app import DiscoverResult, Hooks, VerifyResult, restore_role, run_discover, run_verify
from discover.config import (
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_POLICY_NAME,
    Config,
    build_config,
)
from discover.denials import Denial
from discover.errors import DiscoverError
from discover.formats import Format
from discover.journal import read_events
from discover.log_sink import LogSink
from discover.policy import check_quota, load_policy
from discover.ports import EventSink, OutputWatcher
from discover.report import render_report
from discover.run_events import StopReason

DESCRIPTION = """\
Find the least-privilege IAM policy your deploy needs.

discover deploys your service for real into a sandbox account, with a role that starts
with no permissions. It reads every permission denial (the CLI's output, CloudFormation's
stack events), grants exactly what was denied, scoped to the resource, and deploys again,
until the deploy succeeds. Then it prints the minimal policy and writes a review report
with the evidence for every permission.

examples:
  discover --local                      try it on the embedded AWS sandbox (no account)
  discover --role-arn arn:aws:iam::123456789012:role/discover-sandbox \\
           --sandbox-account 123456789012 --max-iterations 20
  discover -- npx serverless deploy     any deploy command after --

where things go:
  stdout                   the policy (only the policy: pipe it, or use --out FILE)
  stderr                   progress: a live view on a terminal, one log line per event
                           otherwise (--log-format json for JSON lines)
  .discover/policy.json    the policy, in the service folder
  .discover/report.md      the review report: why each permission is there
  .discover/journal.jsonl  every event of the run (for --resume and `discover report`)
  .discover/iterations/    each deploy run's full output

other commands:
  discover parse [FILE|-]            list the permission denials in a log
  discover verify --policy FILE      deploy from scratch with only that policy
  discover report                    re-render .discover/report.md from the journal
  discover diff OLD.json NEW.json    what a re-discovery added or removed
  discover sandbox up|down           a local sandbox that outlives one command (--local
                                     in the same folder uses it; prints export lines)

asking first:
  --approve each|batch     show each grant (or each run's grants) with its denial and ask
  --propose                never write IAM: write .discover/proposed.json (and --format),
                           proposed.diff and proposed.md, wait for your pipeline to apply
                           it; without a terminal exit 5, then --resume once it is applied

exit codes: 0 converged, 1 not converged, 2 usage or setup error, 3 a denial no allow can
fix (or a high-risk grant not confirmed or refused), 4 the deploy failed for another reason,
5 a proposal is waiting to be applied (--propose; --resume goes on), 130 interrupted (state
saved; --resume goes on).
"""

_SUBCOMMAND_HELP = {
    "parse": "List the permission denials in a log (a file, or - for stdin).",
    "verify": "Deploy a fresh stack with only the given policy, then remove it; print JSON "
    'with "verified" and the first denial.',
    "report": "Re-render .discover/report.md from the journal of the last run, and print it.",
    "diff": "Show what NEW grants that OLD did not, and the reverse.",
    "sandbox": "Start (up) or stop (down) a local sandbox that outlives one command; "
    "discover --local in the same service folder uses it.",
}

log = structlog.get_logger("discover")
SUBCOMMANDS = ("run", "parse", "verify", "report", "diff", "sandbox")


# --- logging --------------------------------------------------------------------------------


class _Stderr(io.TextIOBase):
    """sys.stderr as it is when written to (the live view redirects it above its display)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


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
        logger_factory=lambda *_: structlog.PrintLogger(cast("TextIO", _Stderr())),
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
        "--service-role",
        nargs="?",
        const="auto",
        metavar="ARN",
        help="the CloudFormation service role to deploy with and grow a policy for "
        "(with --local and no ARN: the sandbox's own, starting empty)",
    )
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
    parser.add_argument(
        "--phases",
        help="the phases to cover, in order: create,update,remove (default: all of them for "
        "the Serverless CLI; create for a command of your own)",
    )
    parser.add_argument(
        "--remove-command",
        metavar="CMD",
        help="how your tool removes the service (default: CLI remove --stage S --region R)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="progress on stderr: auto (a live view on a terminal, log lines otherwise), "
        "console log lines, or JSON lines",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logs, and the deploy's raw output"
    )


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"discover {command}" if command != "run" else "discover",
        description=DESCRIPTION if command == "run" else _SUBCOMMAND_HELP[command],
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
        parser.add_argument(
            "--portable",
            action="store_true",
            default=None,
            help="the stage, region and account as parameters in --format (CloudFormation "
            "!Sub, Terraform variables, Serverless variables); also writes "
            ".discover/policy.portable.json, which verify --stage fills in",
        )
        parser.add_argument(
            "--quiet", action="store_true", help="no progress on stderr, only warnings"
        )
        parser.add_argument(
            "--allow",
            action="append",
            metavar="ACTION",
            help="grant this high-risk action without asking (repeatable)",
        )
        parser.add_argument(
            "--yes", action="store_true", default=None, help="grant what needs confirmation"
        )
        parser.add_argument(
            "--allow-account",
            action="append",
            metavar="ID",
            help="grant on resources in this other account without asking (repeatable)",
        )
        parser.add_argument(
            "--resume", action="store_true", help="continue the interrupted run in .discover/"
        )
        parser.add_argument(
            "--approve",
            choices=("each", "batch", "never"),
            default="never",
            help="ask before each grant, once per run for its grants, or never (default)",
        )
        parser.add_argument(
            "--propose",
            action="store_true",
            help="never write IAM: write the proposal, wait until it is applied (exit 5 "
            "without a terminal; then --resume)",
        )
        parser.add_argument(
            "--restore",
            action="store_true",
            help="put the role's policy back as it was before discover ran, then exit",
        )
        parser.add_argument(
            "--strategy",
            choices=("predicted", "observed", "one-at-a-time"),
            help="predicted (default): from the template, kept by what CloudTrail shows was "
            "used; observed: every denial of each run; one-at-a-time: the first denial only",
        )
        parser.add_argument(
            "--template", help="the CloudFormation template (default: serverless package)"
        )
        parser.add_argument(
            "--keep-predicted",
            action="store_true",
            default=None,
            help="keep predictions nothing proved (marked so in the report)",
        )
    elif command == "verify":
        _common_options(parser)
        parser.add_argument(
            "--policy",
            required=True,
            action="append",
            help="the policy JSON to verify; repeat it for a policy split into managed policies",
        )
        parser.add_argument(
            "--service-role-policy",
            help="the CloudFormation service role's policy JSON, verified with --policy "
            "(needs --service-role)",
        )
    elif command == "parse":
        parser.add_argument("file", nargs="?", default="-", help="a log file, or - for stdin")
        parser.add_argument("--format", choices=("json", "table"), default="json")
    elif command == "report":
        parser.add_argument(
            "--service-dir", help="the service folder (default: the current folder)"
        )
    elif command == "sandbox":
        parser.add_argument("action", choices=("up", "down", "serve"), help="up or down")
        parser.add_argument(
            "--service-dir", help="the service folder (default: the current folder)"
        )
        parser.add_argument("--region", default="us-east-1", help="the sandbox's region")
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
        offline = {
            "parse": cmd_parse,
            "report": cmd_report,
            "diff": cmd_diff,
            "sandbox": cmd_sandbox,
        }
        if name in offline:
            return offline[name](args, sys.stdout)
        config = build_config(_flags(args, command))
        verbose = bool(getattr(args, "verbose", False))
        if name == "verify":
            service_policy = getattr(args, "service_role_policy", None)
            return cmd_verify(
                config,
                [Path(p) for p in args.policy],
                sys.stdout,
                verbose=verbose,
                service_policy=Path(service_policy) if service_policy else None,
            )
        return cmd_run(
            config,
            sys.stdout,
            quiet=bool(args.quiet),
            fmt=Format(args.format),
            log_format=args.log_format,
            verbose=verbose,
            approve=args.approve,
            propose=bool(args.propose),
        )
    except DiscoverError as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return exc.exit_code
    except (
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
        botocore.parsers.ResponseParserError,
    ) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        print(f"discover: AWS: {first}", file=sys.stderr)
        print(
            "Tip: discover needs admin credentials of the sandbox account in the default "
            "chain (AWS_PROFILE, SSO, environment variables).",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("discover: interrupted", file=sys.stderr)
        return 130


# --- progress: the live view or log lines ------------------------------------------------


@contextlib.contextmanager
def progress(fmt: str, *, quiet: bool) -> Iterator[tuple[EventSink | None, OutputWatcher | None]]:
    """The sink that shows a run's events: the live view on a terminal, else log lines."""
    if quiet:
        yield None, None
        return
    if fmt == "auto" and sys.stderr.isatty():
        from rich.console import Console

        from discover.live_view import LiveView

        with LiveView(Console(stderr=True)) as view:
            yield view, view
        return
    yield LogSink(log), None


def _confirmer(view: EventSink | None) -> Any:
    """The grant decision's confirmations: a yes at the terminal; no terminal, no yes."""
    from discover.gate import prompt_line

    def confirm(decision: Any) -> bool:
        if not sys.stdin.isatty():
            return False
        paused = getattr(view, "paused", None)
        with paused() if paused is not None else contextlib.nullcontext():
            answer = input(prompt_line(decision))
        return answer.strip().lower() in {"y", "yes"}

    return confirm


# --- discover (run) -------------------------------------------------------------------------


def cmd_run(
    config: Config,
    out: TextIO,
    *,
    quiet: bool = False,
    fmt: Format = Format.JSON,
    log_format: str = "auto",
    verbose: bool = False,
    approve: str = "never",
    propose: bool = False,
) -> int:
    from discover.consent import check_flags, decision_hooks

    check_flags(config, approve=approve, propose=propose)
    if config.restore:
        role_arn = restore_role(config)
        print(
            f"discover: restored {config.policy_name} on {role_arn} as it was before.",
            file=sys.stderr,
        )
        return 0
    with progress(log_format, quiet=quiet) as (sink, watch):
        hooks = Hooks(
            sinks=(sink,) if sink is not None else (),
            watch=watch,
            echo=sys.stderr if verbose and watch is None else None,
            confirm=_confirmer(sink),
        )
        hooks = decision_hooks(hooks, config, sink, approve=approve, propose=propose, fmt=fmt)
        result = run_discover(config, hooks, fmt)
    out.write(result.rendered)
    _summarise(config, result)
    if config.portable:
        from discover.portable import portable_note

        print(portable_note(config.state_dir, json_format=fmt is Format.JSON), file=sys.stderr)
    quota = check_quota(result.outcome.policy)
    if not quota.fits_managed:
        print(f"discover: policy size: {quota.describe()}", file=sys.stderr)
    return result.outcome.reason.exit_code


def _shown(text: str) -> str:
    from discover.decision import shown

    return shown(text)


def _summarise(config: Config, result: DiscoverResult) -> None:
    outcome = result.outcome
    runs = len(outcome.iterations)
    actions = len(outcome.policy.actions)
    state = config.state_dir
    lines = []
    if outcome.reason is StopReason.SUCCEEDED:
        lines.append(
            f"discover: converged: {runs} deploy run(s), {actions} action(s), "
            f"{result.wall_s:.0f} s."
        )
    else:
        lines.append(
            f"discover: stopped ({outcome.reason.value}) after {runs} run(s): {outcome.detail}."
        )
        for denial in outcome.blocking:
            # Untrusted text: no control character or policy variable printed raw.
            what = _shown(f"{denial.action or '?'} on {denial.resource or '?'}")
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
    if result.service_role_policy is not None:
        count = len(result.service_role_policy.actions)
        lines[0] = lines[0].replace(" action(s),", f" action(s) + {count} for the service role,")
        lines.append(f"  service role's policy: {state / 'service-role-policy.json'}")
    lines.append(f"  report: {state / 'report.md'}")
    lines.append(f"  journal: {state / 'journal.jsonl'}; run logs: {state / 'iterations'}/")
    print("\n".join(lines), file=sys.stderr)


def _unfixable_tip(denial: Denial) -> str:
    from discover.denials import describe_unfixable

    return str(describe_unfixable(denial.reason))


# --- verify ---------------------------------------------------------------------------------


def cmd_verify(
    config: Config,
    policy_paths: Sequence[Path],
    out: TextIO,
    *,
    verbose: bool = False,
    service_policy: Path | None = None,
) -> int:
    """Deploy once, from scratch, with only the policy; print the verdict as JSON."""
    verdict: VerifyResult = run_verify(
        config, policy_paths, Hooks(echo=sys.stderr if verbose else None), service_policy
    )
    denials = verdict.denials
    record = {
        "verified": verdict.verified,
        "policy": verdict.policy_path,
        "managed_policies": verdict.managed,
        "actions": len(verdict.policy.actions),
        "duration_s": round(sum(s.result.duration_s for s in verdict.steps if s.result), 3),
        "first_denial": _denial_json(denials[0]) if denials else None,
        "lacking": verdict.lacking,  # which policy lacked it: "caller" or "service-role"
        "phases": [
            {
                "name": step.name,
                "ok": step.ok,
                "ran": step.result is not None,
                "first_denial": _denial_json(step.denials[0]) if step.denials else None,
            }
            for step in verdict.steps
        ],
    }
    out.write(json.dumps(record, indent=2) + "\n")
    names = ", ".join(step.name for step in verdict.steps)
    failed = verdict.failed
    if failed is None:
        print(
            f"discover: verified ({names}) with only {verdict.policy_path}.",
            file=sys.stderr,
        )
    elif denials:
        d = denials[0]
        whose = "the service role's policy" if verdict.lacking == "service-role" else "the policy"
        print(
            f"discover: not verified: {failed.name}: {whose} lacks {d.action} on "
            f"{d.resource or '?'}: {d.message}",
            file=sys.stderr,
        )
    else:
        print(
            f"discover: not verified: {failed.name}: the deploy failed:\n{verdict.result.tail(15)}",
            file=sys.stderr,
        )
    return verdict.exit_code


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
    events = read_events(path)
    if not events:
        msg = f"no journal at {path}"
        raise DiscoverError(msg, tip="Run discover in this service folder first.", exit_code=2)
    from discover.not_exercised import template_of

    report = render_report(events, template_of(state_dir.parent))
    (state_dir / "report.md").write_text(report, encoding="utf-8")
    out.write(report)
    return 0


def cmd_sandbox(args: argparse.Namespace, out: TextIO) -> int:
    """``discover sandbox up|down`` (``serve`` is the detached process ``up`` starts)."""
    from discover import local_session
    from discover.app import hold_local_sandbox
    from discover.config import STATE_DIR

    state_dir = Path(args.service_dir or ".").resolve() / STATE_DIR
    if args.action == "serve":
        hold_local_sandbox(state_dir, args.region, out)
        return 0
    if args.action == "up":
        state = local_session.start(state_dir, region=args.region)
        out.write(local_session.exports(state))
        print(
            f"discover: local sandbox at {state.endpoint} (state: "
            f"{local_session.state_path(state_dir)}); discover --local here uses it; "
            "discover sandbox down stops it.",
            file=sys.stderr,
        )
        return 0
    stopped = local_session.stop(state_dir)
    print(
        "discover: local sandbox stopped." if stopped else "discover: no local sandbox running.",
        file=sys.stderr,
    )
    return 0


def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    """What NEW grants that OLD did not, and the reverse; exit 0 either way."""
    from discover.diff import diff_policies, render_diff

    old, new = load_policy(Path(args.old)), load_policy(Path(args.new))
    out.write(render_diff(diff_policies(old, new), args.old, args.new))
    return 0
