"""The sandbox's decision point: may this principal do this action on this resource, now?

Both the request authorizer and CloudFormation (acting as its caller) decide here, so the
policies a decision uses are the ones IAM shows at that moment (see ``propagation``) and
every decision lands in the authorization log with where it came from (``direct`` for a
request, ``cloudformation`` for a call a stack operation makes on the caller's behalf).

The principal of the request being served is kept per thread: moto serves each request on
its own thread and runs a stack operation synchronously inside the request that started it,
so CloudFormation finds its caller here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from discover.local import cloudtrail
from discover.local.authorize import AuthorizationLog, Decision, evaluate
from discover.local.principals import Principal, documents_as_dicts
from discover.local.propagation import LEDGER


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    action: str
    resource: str

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


class _State:
    log = AuthorizationLog(None)


_local = threading.local()


def configure(log: AuthorizationLog) -> None:
    _State.log = log


def authorization_log() -> AuthorizationLog:
    return _State.log


def set_current_principal(principal: Principal | None) -> None:
    """Remember who the request being served on this thread comes from."""
    _local.principal = principal


def current_principal() -> Principal | None:
    principal: Principal | None = getattr(_local, "principal", None)
    return principal


def iam_backend(account: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account]["aws"]


def policies_of(principal: Principal) -> list[Mapping[str, Any]]:
    """The identity policies of ``principal`` as IAM shows them now."""
    backend = iam_backend(principal.account)
    return documents_as_dicts(LEDGER.visible(backend, principal.kind, principal.name))


def decide(
    principal: Principal,
    action: str,
    resource: str,
    context: Mapping[str, str],
    *,
    source: str,
    **extra: Any,
) -> Verdict:
    """Evaluate and log one authorization."""
    full_context = {**principal.context(), **context}
    decision = evaluate(policies_of(principal), action, resource, full_context)
    record(principal, action, resource, decision, source=source, **extra)
    if source == "cloudformation":
        cloudtrail.record_handler_call(
            principal,
            action,
            resource,
            str(context.get("aws:RequestedRegion", "")),
            allowed=decision is Decision.ALLOWED,
            message=f"not authorized to perform: {action}",
        )
    return Verdict(decision, action, resource)


def record_expired(principal: Principal, action: str, resource: str, **extra: Any) -> None:
    """Log a request refused because its STS session had run out."""
    _State.log.record(
        principal=principal.arn,
        action=action,
        resource=resource,
        decision="expired-token",
        source="direct",
        **extra,
    )


def record(
    principal: Principal,
    action: str,
    resource: str,
    decision: Decision,
    *,
    source: str,
    **extra: Any,
) -> None:
    _State.log.record(
        principal=principal.arn,
        action=action,
        resource=resource,
        decision=decision.value,
        source=source,
        **extra,
    )
