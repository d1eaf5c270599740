"""IAM's eventual consistency, on purpose: a policy change is seen only after a delay.

AWS documents that a change to an identity's policies can take seconds to reach every
endpoint. With a delay of N seconds, the sandbox keeps, for each principal, the policy
versions it had and when each became visible; a request is evaluated against the newest
version whose time has come. With the default delay of 0 every change is seen at once.
https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from discover.local.clock import CLOCK, SandboxClock
from discover.local.principals import PrincipalKind, all_principals, current_documents

_Key = tuple[PrincipalKind, str]
_Versions = list[tuple[float, tuple[str, ...]]]  # (visible from, documents), oldest first


class PolicyLedger:
    """Each principal's policy versions over time (only kept while the delay is not zero)."""

    def __init__(self, clock: SandboxClock = CLOCK) -> None:
        self.delay = 0.0
        self._clock = clock
        self._versions: dict[_Key, _Versions] = {}
        self._lock = threading.RLock()

    def configure(self, delay: float) -> None:
        if delay < 0:
            msg = f"the propagation delay cannot be negative ({delay})"
            raise ValueError(msg)
        with self._lock:
            self.delay = delay
            self._versions.clear()

    @contextmanager
    def tracking(self, backend: Any) -> Iterator[None]:
        """Around an IAM change: record, per principal it changed, when the change shows."""
        if self.delay <= 0:
            yield
            return
        with self._lock:
            before = self._snapshot(backend)
            yield
            after = self._snapshot(backend)
            visible_from = self._clock.now() + self.delay
            for key, documents in after.items():
                old = before.get(key, ())
                if documents == old:
                    continue
                versions = self._versions.setdefault(key, [(float("-inf"), old)])
                versions.append((visible_from, documents))

    def visible(self, backend: Any, kind: PrincipalKind, name: str) -> tuple[str, ...]:
        """The documents of ``kind``/``name`` as a request sees them now."""
        with self._lock:
            versions = self._versions.get((kind, name))
            if not versions or self.delay <= 0:
                return current_documents(backend, kind, name)
            times = [t for t, _ in versions]
            index = bisect.bisect_right(times, self._clock.now()) - 1
            return versions[max(index, 0)][1]

    @staticmethod
    def _snapshot(backend: Any) -> dict[_Key, tuple[str, ...]]:
        return {
            (kind, name): current_documents(backend, kind, name)
            for kind, name in all_principals(backend)
        }


LEDGER = PolicyLedger()
"""The sandbox server's ledger; ``patches`` routes IAM's policy changes through it."""

# moto IAMBackend methods that change what some principal's identity policies say.
POLICY_MUTATORS = (
    "put_role_policy",
    "delete_role_policy",
    "attach_role_policy",
    "detach_role_policy",
    "put_user_policy",
    "delete_user_policy",
    "attach_user_policy",
    "detach_user_policy",
    "put_group_policy",
    "delete_group_policy",
    "attach_group_policy",
    "detach_group_policy",
    "add_user_to_group",
    "remove_user_from_group",
    "create_policy_version",
    "delete_policy_version",
    "set_default_policy_version",
)


def tracked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an IAMBackend mutator so the ledger sees the change it makes."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with LEDGER.tracking(self):
            return method(self, *args, **kwargs)

    wrapper.__wrapped__ = method  # type: ignore[attr-defined]
    wrapper.__name__ = getattr(method, "__name__", "tracked")
    return wrapper
