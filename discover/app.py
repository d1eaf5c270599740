"""The application layer: discover and verify as workflows over the ports.

``cli.py`` parses, configures, calls one of these, prints what it returns, and exits; the
workflows raise ``DiscoverError`` and return frozen results. Here the environment is chosen
(AWS, or a new local sandbox), the implementations are built behind their Protocols (so mypy
checks ``AwsSandbox`` against ``AdminSandbox``), and the journal is opened, resumed, backed up
and restored. Phases (create, update, no-op, remove) are workflows of the same kind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import structlog

from discover.config import Config, ConfigError
from discover.decision import Decision, Verdict
from discover.denials import Denial
from discover.formats import Format, render
from discover.gate import FenceInputs, Gate, check_own_policy
from discover.journal import Journal, read_events
from discover.journal_auth import Signer, authenticated_events, load_key, trusted_backup
from discover.lifecycle import Step, steps
from discover.lock import RunLock
from discover.loop import (
    GrantStrategy,
    LoopSettings,
    Outcome,
    collect_denials,
    discover,
    resume_state,
)
from discover.not_exercised import template_of
from discover.ownership import session_arn
from discover.policy import (
    INLINE_ROLE_POLICIES_QUOTA,
    MANAGED_POLICY_QUOTA,
    PolicyDocument,
    load_policy,
    split_for_quota,
)
from discover.portable import (
    PORTABLE_FILE,
    Where,
    file_is_portable,
    load_filled,
    render_portable_json,
)
from discover.ports import (
    AdminSandbox,
    Credentials,
    Deployer,
    DeployResult,
    EventSink,
    OutputWatcher,
    Sandbox,
    Sessions,
)
from discover.report import render_report
from discover.run_events import (
    Backup,
    Broadcast,
    Evidence,
    PhaseStarted,
    Resumed,
    Started,
    Stopped,
    StopReason,
    last_policy,
    last_service_role_policy,
)
from discover.service_role import (
    AUTO,
    SERVICE_ROLE_POLICY_FILE,
    ServiceRole,
    ServiceRolePolicy,
    deploy_argv,
    passed_to_deploy,
)

log = structlog.get_logger("discover")

Refuse = Callable[[list[Evidence]], list[Evidence]]


# --- environments: the local sandbox or AWS -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Environment:
    """Where a run happens: the admin session, the sandbox role, and (locally) the endpoint."""

    session: Any
    role_arn: str
    endpoint: str | None
    account: str | None  # the account the local sandbox announced; None on AWS
    service_role_arn: str | None = None  # the local sandbox's empty CloudFormation role


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
    from discover.local_session import read_state

    running = read_state(config.state_dir)  # `discover sandbox up` started one here
    if running is not None:
        session = boto3.Session(
            aws_access_key_id=running.access_key_id,
            aws_secret_access_key=running.secret_access_key,
            region_name=config.region,
        )
        log.info("local_sandbox_reused", endpoint=running.endpoint, role_arn=running.role_arn)
        yield Environment(
            session, running.role_arn, running.endpoint, running.account, running.service_role_arn
        )
        return
    from discover.local.process import LocalSandbox

    with LocalSandbox(region=config.region) as info:
        session = boto3.Session(
            aws_access_key_id=info.access_key_id,
            aws_secret_access_key=info.secret_access_key,
            region_name=config.region,
        )
        log.info("local_sandbox_started", endpoint=info.endpoint, role_arn=info.role_arn)
        yield Environment(
            session, info.role_arn, info.endpoint, info.account, info.service_role_arn
        )


def service_role_of(config: Config, env: Environment) -> ServiceRole | None:
    """The CloudFormation service role of this run: the one given, or the sandbox's own."""
    if config.service_role is None:
        return None
    if config.service_role != AUTO:
        return ServiceRole(config.service_role)
    if env.service_role_arn is None:
        msg = "this local sandbox has no CloudFormation service role"
        raise ConfigError(msg, tip="Restart it (discover sandbox down, then up), or pass an ARN.")
    return ServiceRole(env.service_role_arn)


def with_service_role(config: Config, role: ServiceRole | None) -> Config:
    """The deploy and remove commands passing ``role`` to CloudFormation."""
    if role is None:
        return config

    def argv(command: Sequence[str]) -> tuple[str, ...]:
        return deploy_argv(
            command, tool=config.tool, cli=config.cli, role=role, custom=config.custom_command
        )

    return replace(
        config,
        deploy_command=argv(config.deploy_command),
        remove_command=argv(config.remove_command),
    )


def service_role_sandbox(config: Config, env: Environment, role: ServiceRole) -> AdminSandbox:
    """The service role as a sandbox whose policy discover owns (``policy_name`` on it)."""
    from discover.guard import check_accounts
    from discover.sandbox import AwsSandbox

    check_accounts(
        admin_account=env.role_arn.split(":")[4],
        role_arn=role.arn,
        sandbox_account=config.sandbox_account or env.account,
    )
    sandbox: AdminSandbox = AwsSandbox(
        env.session,
        role_arn=role.arn,
        policy_name=config.policy_name,
        stack_name=config.stack_name,
        region=config.region,
        endpoint_url=env.endpoint,
    )
    sandbox.check_role()
    check_own_policy(
        sandbox.backup()["inline"].get(config.policy_name),
        policy_name=config.policy_name,
        role_arn=role.arn,
    )
    return sandbox


def make_sandbox(config: Config, env: Environment) -> AdminSandbox:
    """The sandbox, once the guard rails agree: accounts, the role, the session length."""
    from discover.guard import check_accounts
    from discover.sandbox import AwsSandbox
    from discover.tools import tool_of

    sandbox: AdminSandbox = AwsSandbox(
        env.session,
        role_arn=env.role_arn,
        policy_name=config.policy_name,
        stack_name=config.stack_name,
        region=config.region,
        endpoint_url=env.endpoint,
        managed_stacks=tool_of(config).managed_stacks,
        artifact_bucket=tool_of(config).bucket_location,
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


def session_name() -> str:
    """A new session name: only denials of exactly this session are the run's own."""
    import secrets

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"discover-{stamp}-{secrets.token_hex(4)}"


def make_sessions(config: Config, env: Environment, name: str | None = None) -> Sessions:
    from discover.credentials import RoleSession

    kwargs: dict[str, Any] = {"region_name": config.region}
    if env.endpoint:
        kwargs["endpoint_url"] = env.endpoint
    return RoleSession(
        env.session.client("sts", **kwargs),
        env.role_arn,
        session_name=name or session_name(),
        duration_s=config.session_duration_s,
    )


def make_deployer(
    config: Config,
    env: Environment,
    logs_dir: Path,
    *,
    echo: TextIO | None = None,
    watch: OutputWatcher | None = None,
    command: Sequence[str] | None = None,
) -> Deployer:
    from discover.isolation import prepare
    from discover.runner import CommandDeployer

    isolation = prepare(config.state_dir)
    if isolation.warning:
        log.warning("deploy_not_isolated", detail=isolation.warning)
    else:
        log.debug("deploy_isolated", detail=isolation.describe())
    return CommandDeployer(
        tuple(command) if command is not None else config.deploy_command,
        cwd=config.service_dir,
        region=config.region,
        logs_dir=logs_dir,
        timeout_s=config.run_timeout_s,
        endpoint_url=env.endpoint,
        echo=echo,
        watch=watch,
        isolation=isolation,
    )


# --- discover -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the CLI plugs into a workflow: where events go, who sees the output, who confirms."""

    sinks: tuple[EventSink, ...] = ()
    watch: OutputWatcher | None = None
    echo: TextIO | None = None  # the deploy's output, raw (only with --verbose, never stdout)
    # A yes for a grant the decision wants confirmed (the CLI asks at a terminal).
    confirm: Callable[[Decision], bool] = field(default=lambda decision: False)
    # --approve: a strategy that asks (and its refusals); --propose: the loop's sandbox
    # proposes instead of writing IAM. Both built by the CLI (discover.approval, .proposal).
    approver: Any = None
    propose: Callable[[AdminSandbox, EventSink], Any] | None = None


@dataclass(frozen=True, slots=True)
class DiscoverResult:
    """A finished discovery: the outcome, how long it took, and the files it wrote."""

    outcome: Outcome
    wall_s: float
    rendered: str  # the policy in the requested format (what stdout gets)
    other_policies: tuple[str, ...] = ()  # policies on the role discover does not own
    service_role_policy: PolicyDocument | None = None  # with --service-role


def fresh_journal(state_dir: Path, signer: Signer | None = None) -> Journal:
    """A new journal; the previous run's is kept beside it under its time."""
    path = state_dir / "journal.jsonl"
    if path.exists():
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%S")
        path.rename(state_dir / f"journal-{stamp}.jsonl")
    return Journal(path, signer=signer)


def journal_signer(env: Environment) -> Signer:
    """This machine's journal key, for this role and account (``journal_auth``)."""
    return Signer(load_key(), env.role_arn, env.role_arn.split(":")[4])


def make_gate(  # noqa: PLR0917 - the run's pieces, in the order open_journal has them
    config: Config,
    env: Environment,
    session: str,
    events: EventSink,
    backup: Any,
    service: ServiceRole | None = None,
) -> Gate:
    """The grant gate of this run: the fence, the role's own policies, the user's flags."""
    from discover.tools import tool_of

    return Gate(
        FenceInputs(
            stack_name=config.stack_name,
            service=config.service,
            stage=config.stage,
            region=config.region,
            account=env.role_arn.split(":")[4],
            service_dir=config.service_dir,
            deployment_bucket=config.deployment_bucket,
            template=_fence_template(config, env.role_arn.split(":")[4]),
            managed_stacks=tool_of(config).managed_stacks,
        ),
        role_arn=env.role_arn,
        session=session,
        role_policies=frozenset(backup.get("attached", [])) if backup else frozenset(),
        high_risk=config.high_risk,
        allow=config.allow,
        allow_accounts=frozenset(config.allow_accounts),
        yes=config.yes,
        record=events.emit,
        service_session=service.session if service is not None else None,
        service_role_arn=service.arn if service is not None else None,
    )


def _refused(decision: Decision, confirm: Callable[[Decision], bool]) -> bool:
    """True unless the decision allows the grant, or a person confirmed it."""
    if decision.verdict is Verdict.ALLOW:
        return False
    if decision.verdict is Verdict.CONFIRM and confirm(decision):
        return False
    from discover.decision import shown

    log.warning(
        "grant_refused",
        verdict=decision.verdict.value,
        action=shown(decision.grant.action),
        resource=shown(decision.grant.resource),
        reason=shown(decision.reason),
    )
    return True


def _fence_template(config: Config, account: str) -> Callable[[Path], Mapping[str, Any] | None]:
    """The template the fence is drawn from: the one a deploy left in the service folder, else
    ``--template``, else the service packaged once (the first grants come before any deploy)."""
    import json
    import shutil
    import tempfile

    from discover.fence import read_packaged_template
    from discover.template import TemplateError, package_serverless, read_sam
    from discover.tools import sam_template_of

    once: list[Mapping[str, Any] | None] = []

    def expanded_sam() -> Mapping[str, Any] | None:
        sam = sam_template_of(config.service_dir)
        try:
            return (
                None
                if sam is None
                else read_sam(
                    sam, region=config.region, account=account, stack_name=config.stack_name
                )
            )
        except TemplateError:
            return None

    def packaged() -> Mapping[str, Any] | None:
        if config.template is None and config.tool == "sam":
            return expanded_sam()
        if config.template is not None:
            try:
                data = json.loads(config.template.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) else None
        if config.deploy_command[:2] != (config.cli, "deploy"):
            return None  # not the Serverless CLI: nothing to package
        scratch = Path(tempfile.mkdtemp(prefix="discover-fence-"))
        try:
            path = package_serverless(
                config.service_dir,
                (config.cli,),
                stage=config.stage,
                region=config.region,
                out_dir=scratch,
            )
            data = json.loads(path.read_text(encoding="utf-8"))
        except (TemplateError, OSError, ValueError):
            return None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return data if isinstance(data, dict) else None

    def read(service_dir: Path) -> Mapping[str, Any] | None:
        found = read_packaged_template(service_dir)
        if found is not None:
            return found
        if not once:
            once.append(packaged())
        return once[0]

    return read


def refuser(gate: Gate, confirm: Callable[[Decision], bool]) -> Refuse:
    """The loop's ``refuse`` hook: the grant decision, then a yes for what needs one."""

    def refuse(evidence: list[Evidence]) -> list[Evidence]:
        return [item for item, decision in gate.decide(evidence) if _refused(decision, confirm)]

    return refuse


def open_journal(
    config: Config,
    env: Environment,
    sandbox: AdminSandbox,
    events: EventSink,
    *,
    session: str,
    confirm: Callable[[Decision], bool] = lambda decision: False,
    service: ServiceRole | None = None,
) -> tuple[Journal, LoopSettings, tuple[str, ...], str | None, Gate]:
    """A fresh journal (with the role's backup), or the interrupted one with where it stopped.

    Returns the journal, the loop's settings, the role's policies discover does not own,
    (resuming) the step the interrupted run was in, and the run's grant gate. The start events
    go to the journal and to ``events`` (the view). Each journal line is authenticated:
    ``--resume`` takes only a journal that verifies for this role and account, and puts its
    policy back only through the grant decision.
    """
    settings = LoopSettings(
        max_iterations=config.max_iterations,
        propagation_waits_s=config.propagation_waits_s,
        session_arn=session,
    )
    signer = journal_signer(env)
    if config.resume:
        journal = Journal(config.state_dir / "journal.jsonl", signer=signer)
        past = authenticated_events(journal.path, signer)
        state = resume_state(past, stack_name=config.stack_name)
        backup = next((dict(e.backup) for e in past if isinstance(e, Backup)), None)
        gate = make_gate(config, env, session, Broadcast((journal, events)), backup, service)
        if any(_refused(d, confirm) for d in gate.decide_policy(state.policy)):
            msg = "the interrupted run's policy holds a grant the grant decision does not allow"
            raise ConfigError(
                msg, tip="Confirm it (--allow ACTION, --yes), or run without --resume."
            )
        remaining = config.max_iterations - state.last_iteration
        if remaining < 1:
            used = f"{state.last_iteration} of {config.max_iterations}"
            msg = f"the interrupted run already used {used} runs"
            raise ConfigError(msg, tip="Raise --max-iterations to go on.")
        started = next((e for e in past if isinstance(e, Started)), None)
        if started is not None:
            events.emit(started)  # the view's header; the journal has it already
        Broadcast((journal, events)).emit(Resumed(state.last_iteration + 1))
        settings = replace(
            settings,
            max_iterations=remaining,
            initial_policy=state.policy,
            first_iteration=state.last_iteration + 1,
        )
        return journal, settings, (), state.step, gate
    journal = fresh_journal(config.state_dir, signer)
    sink = Broadcast((journal, events))
    sink.emit(
        Started(
            role_arn=env.role_arn,
            policy_name=config.policy_name,
            stack_name=config.stack_name,
            region=config.region,
            stage=config.stage,
            command=tuple(config.deploy_command),
            local=config.local,
            max_iterations=config.max_iterations,
        )
    )
    backup = sandbox.backup()
    sink.emit(Backup(env.role_arn, backup))
    # Before the loop's first write: never delete or overwrite a policy discover did not write.
    check_own_policy(
        backup["inline"].get(config.policy_name),
        policy_name=config.policy_name,
        role_arn=env.role_arn,
    )
    others = [n for n in backup["inline"] if n != config.policy_name] + backup["attached"]
    gate = make_gate(config, env, session, sink, backup, service)
    return journal, settings, tuple(others), None, gate


class StepDeployer:
    """A step's ``Deployer``: deploys the stack first when the step needs one and it is not
    there (with the same session and the policy so far), then runs the step's command."""

    def __init__(self, step: Step, run: Deployer, setup: Deployer, sandbox: AdminSandbox) -> None:
        self._step = step
        self._run = run
        self._setup = setup
        self._sandbox = sandbox

    def deploy(self, credentials: Credentials, iteration: int) -> DeployResult:
        if self._step.needs_stack and not self._sandbox.deployed():
            result = self._setup.deploy(credentials, iteration)
            if not result.succeeded:
                return result  # its denials are the create phase's, learned all the same
        return self._run.deploy(credentials, iteration)


def plan(config: Config) -> tuple[Step, ...]:
    """The steps of the configured phases."""
    # Only the Serverless CLI's deploy takes --force (SAM's update runs the deploy again).
    serverless = config.tool == "serverless" and config.deploy_command[:2] == (config.cli, "deploy")
    return steps(
        config.phases,
        deploy_command=config.deploy_command,
        remove_command=config.remove_command,
        serverless=serverless,
    )


def run_steps(
    workflow: Sequence[Step],
    deployer_for: Callable[[Step], Deployer],
    *,
    sandbox: Sandbox,
    sessions: Sessions,
    events: EventSink,
    settings: LoopSettings,
    refuse: Refuse,
    strategy: GrantStrategy | None = None,
    refine: Callable[[list[Evidence], PolicyDocument], list[Evidence]] = lambda e, _: e,
    announce: bool = True,
    service: ServiceRolePolicy | None = None,
) -> Outcome:
    """The loop once per step, each starting from the policy the steps before it learned,
    all within ``settings.max_iterations`` runs.

    Stops at the first step that does not succeed; the last ``Stopped`` is the run's (and,
    with ``announce``, the success of all of them).
    """
    policy = settings.initial_policy
    number = settings.first_iteration
    iterations: list[Any] = []
    for step in workflow:
        if len(iterations) >= settings.max_iterations:
            return _out_of_runs(settings, iterations, policy, events)
        events.emit(PhaseStarted(step.phase.value, step.name, number))
        step_settings = replace(
            settings,
            initial_policy=policy,
            first_iteration=number,
            announce_success=False,
            max_iterations=max(settings.max_iterations - len(iterations), 1),
        )
        outcome = discover(
            deployer_for(step),
            sandbox,
            sessions,
            events,
            step_settings,
            refuse=refuse,
            strategy=strategy,
            refine=refine,
            service=service,
        )
        iterations += outcome.iterations
        policy = outcome.policy
        number = iterations[-1].number + 1 if iterations else number
        if outcome.reason is not StopReason.SUCCEEDED:
            detail = f"{step.name}: {outcome.detail}"
            return replace(outcome, iterations=tuple(iterations), detail=detail)
    return _passed(workflow, iterations, policy, events if announce else None)


def _out_of_runs(
    settings: LoopSettings, iterations: Sequence[Any], policy: PolicyDocument, events: EventSink
) -> Outcome:
    """The runs allowed were spent before the last step."""
    detail = f"not converged after {settings.max_iterations} run(s)"
    events.emit(Stopped(StopReason.LIMIT, detail))
    return Outcome(tuple(iterations), policy, StopReason.LIMIT, detail)


def _passed(
    workflow: Sequence[Step],
    iterations: Sequence[Any],
    policy: PolicyDocument,
    events: EventSink | None,
) -> Outcome:
    """Every step passed: the outcome, and its ``Stopped`` when ``events`` is given."""
    names = ", ".join(step.name for step in workflow)
    detail = f"{names} passed after {len(iterations)} run(s)"
    if events is not None:
        events.emit(Stopped(StopReason.SUCCEEDED, detail))
    return Outcome(tuple(iterations), policy, StopReason.SUCCEEDED, detail)


def run_with_strategy(
    config: Config,
    env: Environment,
    workflow: Sequence[Step],
    deployer_for: Callable[[Step], Deployer],
    *,
    sandbox: AdminSandbox,
    events: EventSink,
    settings: LoopSettings,
    refuse: Refuse,
    refine: Callable[[list[Evidence], PolicyDocument], list[Evidence]] = lambda e, _: e,
    approver: Any = None,
    service: ServiceRolePolicy | None = None,
) -> Outcome:
    """The steps as the configured strategy runs them (``discover.strategies``).

    With ``predicted``, each step that changes the stack (create, update, remove) is predicted
    from the template's handlers and the CLI's calls for it, deployed once, kept to what the
    trail shows it used, and proven; the no-op update, which makes no resource call, is learned
    by the loop. A resumed run goes on with the loop (its predictions were granted already).
    """
    from discover.strategies import FirstDenialOnly, Strategy

    one: Any = FirstDenialOnly() if config.strategy == Strategy.ONE_AT_A_TIME.value else None
    if approver is not None:  # --approve: asks about what the strategy chose
        one = approver.bind(events, one)

    def looped(some: Sequence[Step], at: LoopSettings, *, announce: bool = True) -> Outcome:
        return run_steps(
            some,
            deployer_for,
            sandbox=sandbox,
            sessions=make_sessions(config, env),
            events=events,
            settings=at,
            refuse=refuse,
            strategy=one,
            refine=refine,
            announce=announce,
            service=service,
        )

    predicting = config.strategy == Strategy.PREDICTED.value and not config.resume
    if predicting and service is not None:
        # The predictions are made for one role; with a service role each run's denials are
        # routed to the role that met them, as the observed strategy learns them.
        log.warning(
            "strategy_observed",
            detail="with --service-role every denial is learned from the runs (observed)",
        )
        predicting = False
    if not predicting or not workflow:
        return looped(workflow, settings)
    iterations: list[Any] = []
    policy = settings.initial_policy
    number = settings.first_iteration
    for step in workflow:
        left = settings.max_iterations - len(iterations)
        if left < 1:
            return _out_of_runs(settings, iterations, policy, events)
        at = replace(
            settings,
            initial_policy=policy,
            first_iteration=number,
            max_iterations=max(left, 1),
            announce_success=False,
        )
        predicted = _PREDICTED_STEPS.get(step.name)
        if predicted is None:
            outcome = looped([step], at, announce=False)
        else:
            events.emit(PhaseStarted(step.phase.value, step.name, number))
            outcome = _predicted(
                config, env, deployer_for(step), sandbox, events, at, refuse, predicted
            )
        iterations += outcome.iterations
        policy = outcome.policy
        number = iterations[-1].number + 1 if iterations else number
        if outcome.reason is not StopReason.SUCCEEDED:
            detail = outcome.detail if len(workflow) == 1 else f"{step.name}: {outcome.detail}"
            return replace(outcome, iterations=tuple(iterations), detail=detail)
    return _passed(workflow, iterations, policy, events)


# The steps the predicted strategy predicts: the resources' handler and the CLI's command.
_PREDICTED_STEPS = {
    "create": ("create", "deploy"),
    "update": ("update", "deploy"),
    "remove": ("delete", "remove"),
}


def _predicted(  # noqa: PLR0917 - the pieces of the create step, in the order run_steps has them
    config: Config,
    env: Environment,
    deployer: Deployer,
    sandbox: AdminSandbox,
    events: EventSink,
    settings: LoopSettings,
    refuse: Refuse,
    operation: tuple[str, str] = ("create", "deploy"),
) -> Outcome:
    from discover.credentials import assume_role
    from discover.strategies import PredictedPorts, PredictedSettings, discover_predicted
    from discover.template import TemplateSource
    from discover.trail import AwsTrail

    kwargs: dict[str, Any] = {"region_name": config.region}
    if env.endpoint:
        kwargs["endpoint_url"] = env.endpoint
    sts = env.session.client("sts", **kwargs)
    ports = PredictedPorts(
        deployer=deployer,
        sandbox=sandbox,
        assume=lambda name: assume_role(sts, env.role_arn, name, config.session_duration_s),
        trail=AwsTrail(
            env.session,
            region=config.region,
            endpoint_url=env.endpoint,
            timeout_s=config.trail_timeout_s,
        ),
        template=TemplateSource(
            config.service_dir,
            (config.cli,),
            config.stage,
            config.region,
            env.role_arn.split(":")[4],
            config.stack_name,
            template=config.template,
        ),
        session_prefix=f"discover-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}",
    )
    # The CLI's own calls are known for the tools' own commands, not for a command given.
    own = config.deploy_command[:2] == (config.cli, "deploy")
    return discover_predicted(
        ports,
        events,
        PredictedSettings(
            settings,
            keep_predicted=config.keep_predicted,
            cli=config.tool if own else None,
            operation=operation[0],
            command=operation[1],
        ),
        refuse=refuse,
    )


def _remaining(workflow: tuple[Step, ...], step: str | None) -> tuple[Step, ...]:
    """The steps from the one an interrupted run was in (all of them when it names none)."""
    names = [s.name for s in workflow]
    return workflow[names.index(step) :] if step in names else workflow


def run_discover(config: Config, hooks: Hooks, fmt: Format = Format.JSON) -> DiscoverResult:
    """The default command: find the policy for every phase; write policy.json, report.md
    and --out."""
    if (hooks.propose is not None or hooks.approver is not None) and config.strategy == "predicted":
        # A person decides each grant (--approve) or applies it (--propose): a prediction would
        # be granted before anyone saw a denial for it, and what the runs then showed unused
        # taken back unasked. Each grant is a run's denial instead, shown with its evidence.
        config = replace(config, strategy="observed")
        log.info("asked_grants_learn_from_denials", strategy="observed")
    state_dir = config.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    view = Broadcast(hooks.sinks)
    with environment(config) as env:
        role = service_role_of(config, env)
        if role is not None and hooks.propose is not None:
            msg = "--propose does not yet propose a CloudFormation service role's policy"
            raise ConfigError(msg, tip="Run without --propose, or without --service-role.")
        config = with_service_role(config, role)
        sandbox = make_sandbox(config, env)
        service = _service_policy(config, env, role)
        # --propose writes nothing to IAM, not even the lock's role tag: the folder lock only.
        locked = None if hooks.propose else sandbox
        with (
            RunLock(state_dir, locked, break_lock=config.break_lock),
            passed_to_deploy(
                config.service_dir, role, tool=config.tool, custom=config.custom_command
            ),
        ):
            name = session_name()
            journal, settings, others, step, gate = open_journal(
                config,
                env,
                sandbox,
                view,
                session=session_arn(env.role_arn, name),
                confirm=hooks.confirm,
                service=role,
            )
            if service is not None:
                _start_service_policy(config, service, journal)
            if others:
                log.warning(
                    "role_has_other_policies",
                    policies=list(others),
                    hint="their permissions will not be discovered; use a role with none",
                )
            events = Broadcast((journal, *hooks.sinks))
            logs = state_dir / "iterations"

            def deployer_for(step: Step) -> Deployer:
                def make(command: Sequence[str], folder: Path) -> Deployer:
                    return make_deployer(
                        config, env, folder, echo=hooks.echo, watch=hooks.watch, command=command
                    )

                return StepDeployer(
                    step,
                    make(step.command, logs),
                    make(config.deploy_command, logs / "setup"),
                    sandbox,
                )

            looped: Any = sandbox
            if hooks.propose is not None:
                looped = hooks.propose(sandbox, events)
                events = Broadcast((looped, *events.sinks))
            refuse, strategy = refuser(gate, hooks.confirm), None
            if hooks.approver is not None:
                strategy = hooks.approver
                refuse = _either(hooks.approver.refuse, refuse)
            try:
                outcome = run_with_strategy(
                    config,
                    env,
                    _remaining(plan(config), step),
                    deployer_for,
                    sandbox=looped,
                    events=events,
                    settings=settings,
                    refuse=refuse,
                    refine=gate.refine,
                    approver=strategy,
                    service=service,
                )
            except Exception:
                write_partial(config, journal)
                _write_service_policy(config, service)
                raise
    wall = (datetime.now(UTC) - started).total_seconds()
    where = _portable_where(config, env.role_arn) if config.portable else None
    rendered = write_outputs(config, outcome, journal, fmt, where)
    service_policy = _write_service_policy(config, service)
    return DiscoverResult(outcome, wall, rendered, others, service_policy)


def _write_service_policy(
    config: Config, service: ServiceRolePolicy | None
) -> PolicyDocument | None:
    """service-role-policy.json in the state folder (with --service-role)."""
    if service is None:
        return None
    path = config.state_dir / SERVICE_ROLE_POLICY_FILE
    path.write_text(service.policy.render_json(), encoding="utf-8")
    return service.policy


def _service_policy(
    config: Config, env: Environment, role: ServiceRole | None
) -> ServiceRolePolicy | None:
    if role is None:
        return None
    if role.arn == env.role_arn:
        msg = "--service-role is the sandbox role itself"
        raise ConfigError(msg, tip="Give CloudFormation a role of its own.")
    return ServiceRolePolicy(role, service_role_sandbox(config, env, role).apply_policy)


def _start_service_policy(config: Config, service: ServiceRolePolicy, journal: Journal) -> None:
    """The service role starts from what this run knows: nothing, or (resuming) what the
    interrupted run had given it."""
    resumed = last_service_role_policy(read_events(journal.path))
    if config.resume and resumed is not None:
        service.policy = resumed
    service.apply(service.policy)


def _either(first: Refuse, second: Refuse) -> Refuse:
    """Refused by either hook (an approval refused, or a high-risk grant not confirmed)."""

    def refuse(evidence: list[Evidence]) -> list[Evidence]:
        refused = first(evidence)
        return refused + [e for e in second(evidence) if e not in refused]

    return refuse


def hold_local_sandbox(state_dir: Path, region: str, ready: TextIO) -> None:
    """``discover sandbox serve``: run a local sandbox until SIGTERM, with its state file."""
    import signal
    import threading

    from discover.local.process import LocalSandbox
    from discover.local_session import SandboxState, state_path, write_state

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with LocalSandbox(region=region) as info:
        state = SandboxState(
            endpoint=info.endpoint,
            region=info.region,
            account=info.account,
            admin_arn=info.admin_arn,
            access_key_id=info.access_key_id,
            secret_access_key=info.secret_access_key,
            role_arn=info.role_arn,
            pid=os.getpid(),
            service_role_arn=info.service_role_arn,
        )
        try:
            write_state(state_dir, state)
            ready.write("ready\n")
            ready.close()
            stopping.wait()
        finally:
            state_path(state_dir).unlink(missing_ok=True)


def restore_role(config: Config) -> str:
    """``--restore``: the role's policy back as it was before discover first ran here."""
    state_dir = config.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    with environment(config) as env:
        sandbox = make_sandbox(config, env)
        with RunLock(state_dir, sandbox, break_lock=config.break_lock):
            # Only the backup discover read from AWS, in a journal it can authenticate.
            backup = trusted_backup(state_dir, journal_signer(env))
            for document in (
                sandbox.backup()["inline"].get(config.policy_name),
                backup.get("inline", {}).get(config.policy_name),
            ):
                check_own_policy(document, policy_name=config.policy_name, role_arn=env.role_arn)
            sandbox.restore(backup)
            return sandbox.role_arn


def write_partial(config: Config, journal: Journal) -> None:
    """After an error mid-run: the policy as far as the journal knows it, and the report."""
    events = read_events(journal.path)
    policy = last_policy(events)
    if policy.grants:
        (config.state_dir / "policy.json").write_text(policy.render_json(), encoding="utf-8")
    report = render_report(events, template_of(config.service_dir, config.template))
    (config.state_dir / "report.md").write_text(report, encoding="utf-8")


def _portable_where(config: Config, role_arn: str) -> Where:
    """What this run knows to be its stage, region and account (``--portable``)."""
    return Where(config.stage, config.region, role_arn.split(":")[4], config.service)


def write_outputs(
    config: Config,
    outcome: Outcome,
    journal: Journal,
    fmt: Format = Format.JSON,
    where: Where | None = None,
) -> str:
    """policy.json and report.md in the state folder, --out in ``fmt``; the rendered policy.

    ``where`` (``--portable``): ``fmt`` with parameters, and ``policy.portable.json``.
    """
    state_dir = config.state_dir
    (state_dir / "policy.json").write_text(outcome.policy.render_json(), encoding="utf-8")
    report = render_report(
        read_events(journal.path), template_of(config.service_dir, config.template)
    )
    (state_dir / "report.md").write_text(report, encoding="utf-8")
    if where is not None:
        portable = render_portable_json(outcome.policy, where)
        (state_dir / PORTABLE_FILE).write_text(portable, encoding="utf-8")
    else:
        # An earlier run's portable policy is not this policy: verify must not take it.
        (state_dir / PORTABLE_FILE).unlink(missing_ok=True)
    rendered = render(outcome.policy, fmt, name=config.stack_name, where=where)
    if config.out is not None:
        config.out.parent.mkdir(parents=True, exist_ok=True)
        config.out.write_text(rendered, "utf-8")
    return rendered


# --- verify -------------------------------------------------------------------------------


def verify_parts(
    paths: Sequence[Path], read: Callable[[Path], PolicyDocument] = load_policy
) -> tuple[PolicyDocument, tuple[PolicyDocument, ...]]:
    """The policy to verify, and the managed policies to attach when it is not one inline policy.

    One file within the role's inline quota is put inline, as discover runs; several files (a
    split) or one over the quota are attached as managed policies, each within its quota.
    """
    parts = [read(p) for p in paths]
    whole = PolicyDocument().with_grants(g for part in parts for g in part.grants)
    if len(parts) == 1 and whole.size() <= INLINE_ROLE_POLICIES_QUOTA:
        return whole, ()
    if all(p.size() <= MANAGED_POLICY_QUOTA for p in parts):
        return whole, tuple(parts)
    return whole, split_for_quota(whole, MANAGED_POLICY_QUOTA)


@dataclass(frozen=True, slots=True)
class StepVerdict:
    """One step of a verify: did it pass with only the policy, and its first denial if not."""

    name: str
    result: DeployResult | None  # None: not run (an earlier step failed)
    denials: tuple[Denial, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.succeeded


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Whether every step succeeded with only the policy, and the first denial if not."""

    policy: PolicyDocument
    policy_path: str
    managed: int
    steps: tuple[StepVerdict, ...]
    service_role: ServiceRole | None = None
    service_role_policy: PolicyDocument | None = None

    @property
    def lacking(self) -> str | None:
        """Which policy lacked the first denial's action: ``caller`` or ``service-role``."""
        denials = self.denials
        if not denials:
            return None
        role = self.service_role
        return "service-role" if role is not None and role.owns(denials[0]) else "caller"

    @property
    def verified(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def failed(self) -> StepVerdict | None:
        return next((step for step in self.steps if not step.ok), None)

    @property
    def result(self) -> DeployResult:
        """The deciding run: the first that failed, else the last."""
        ran = [step for step in self.steps if step.result is not None]
        chosen = self.failed if self.failed is not None and self.failed.result else ran[-1]
        assert chosen.result is not None
        return chosen.result

    @property
    def denials(self) -> tuple[Denial, ...]:
        return self.failed.denials if self.failed is not None else ()

    @property
    def exit_code(self) -> int:
        if self.verified:
            return 0
        return 1 if self.denials else 4


def _filled_parts(
    config: Config, env: Environment, policy_paths: Sequence[Path]
) -> tuple[PolicyDocument, tuple[PolicyDocument, ...]]:
    """A portable policy with this run's stage, region and account filled in."""
    where = _portable_where(config, env.role_arn)
    parts = verify_parts(policy_paths, lambda p: load_filled(p, where))
    log.info(
        "portable_policy_filled", stage=where.stage, region=where.region, account=where.account
    )
    return parts


def run_verify(
    config: Config,
    policy_paths: Sequence[Path],
    hooks: Hooks,
    service_policy_path: Path | None = None,
) -> VerifyResult:
    """Every configured step, from scratch, with only the policy and the sandbox role's
    credentials (create, update, no-op update, remove); the admin cleans up after. With a
    service role, its policy (``service_policy_path``) is put on it for the same runs."""
    policy, managed = verify_parts(policy_paths)
    state_dir = config.state_dir / "verify"
    verdicts: list[StepVerdict] = []
    if (service_policy_path is None) != (config.service_role is None):
        msg = "--service-role and --service-role-policy go together"
        raise ConfigError(msg, tip="Pass both, to verify the caller's and the role's policy.")
    service_policy = load_policy(service_policy_path) if service_policy_path else None
    with environment(config) as env:
        role = service_role_of(config, env)
        config = with_service_role(config, role)
        workflow = plan(config)
        sandbox = make_sandbox(config, env)
        if any(file_is_portable(p) for p in policy_paths):
            policy, managed = _filled_parts(config, env, policy_paths)
        service_box = service_role_sandbox(config, env, role) if role is not None else None
        service_before = service_box.read_policy() if service_box is not None else None
        with passed_to_deploy(
            config.service_dir, role, tool=config.tool, custom=config.custom_command
        ):
            check_own_policy(
                sandbox.backup()["inline"].get(config.policy_name),
                policy_name=config.policy_name,
                role_arn=env.role_arn,
            )
            previous = sandbox.read_policy()
            sandbox.prepare()
            if sandbox.stack_status() is not None and not config.local:
                msg = f"stack {config.stack_name} exists: verify deploys from scratch"
                raise ConfigError(msg, tip="Pass --stage with a stage that is not deployed.")
            sandbox.apply_policy(PolicyDocument() if managed else policy)
            attached = sandbox.attach_managed(managed) if managed else []
            if service_box is not None and service_policy is not None:
                service_box.apply_policy(service_policy)
            try:
                sessions = make_sessions(config, env)
                for number, step in enumerate(workflow, start=1):
                    if verdicts and not verdicts[-1].ok:
                        verdicts.append(StepVerdict(step.name, None))
                        continue
                    deployer = make_deployer(
                        config,
                        env,
                        state_dir,
                        echo=hooks.echo,
                        watch=hooks.watch,
                        command=step.command,
                    )
                    started = datetime.now(UTC)
                    result = deployer.deploy(sessions.current(), number)
                    denials = () if result.succeeded else collect_denials(result, sandbox, started)
                    verdicts.append(StepVerdict(step.name, result, denials))
            finally:
                if sandbox.stack_status() is not None:
                    sandbox.delete_stack()
                sandbox.detach_managed(attached)
                sandbox.apply_policy(previous or PolicyDocument())
                if service_box is not None:
                    service_box.apply_policy(service_before or PolicyDocument())
    path = ", ".join(str(p) for p in policy_paths)
    if service_policy_path is not None:
        path += f" and {service_policy_path}"
    return VerifyResult(policy, path, len(managed), tuple(verdicts), role, service_policy)
