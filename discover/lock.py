"""One discovery at a time per service folder and per sandbox role.

Two locks: an advisory file lock on ``.discover/lock`` (released by the kernel when the
process dies, however it dies), and a tag on the sandbox role naming the holder, so two runs
from different machines or folders cannot interleave their writes to the same role. A role
tag left by a process that died on this host is taken over; one from elsewhere is refused
until it is older than the stale age, or ``--break-lock`` is given.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

from discover.errors import DiscoverError

LOCK_TAG = "discover:lock"
STALE_AFTER_S = 12 * 3600


class LockedError(DiscoverError):
    """Another discovery holds the folder or the role."""

    exit_code = 2


class RoleTags(Protocol):
    def role_tags(self) -> dict[str, str]: ...

    def tag_role(self, key: str, value: str) -> None: ...

    def untag_role(self, key: str) -> None: ...


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(value: str, *, now: float) -> bool:
    try:
        host, pid, started = value.rsplit(":", 2)
        pid_number, started_at = int(pid), int(started)
    except ValueError:
        return True  # not ours to understand: treat as stale rather than block forever
    if now - started_at > STALE_AFTER_S:
        return True
    return host == socket.gethostname() and not _pid_alive(pid_number)


class RunLock:
    """Context manager holding both locks for one run."""

    def __init__(self, state_dir: Path, role: RoleTags | None, *, break_lock: bool = False):
        self._path = state_dir / "lock"
        self._role = role
        self._break = break_lock
        self._file: IO[str] | None = None
        self._tagged = False

    def __enter__(self) -> RunLock:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            msg = f"another discover run is using {self._path.parent.parent}"
            raise LockedError(
                msg, tip="Wait for it to finish (or stop it), then run again."
            ) from exc
        self._file = handle
        handle.seek(0)
        handle.truncate()
        handle.write(_holder() + "\n")
        handle.flush()
        try:
            self._take_role()
        except BaseException:
            self._release_file()
            raise
        return self

    def _take_role(self) -> None:
        if self._role is None:
            return
        current = self._role.role_tags().get(LOCK_TAG)
        if current and not self._break and not _stale(current, now=time.time()):
            msg = f"the sandbox role is locked by another discover run ({current})"
            raise LockedError(
                msg,
                tip="Wait for it to finish; if it died elsewhere, run again with --break-lock.",
            )
        self._role.tag_role(LOCK_TAG, _holder())
        self._tagged = True

    def _release_file(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tagged and self._role is not None:
                self._role.untag_role(LOCK_TAG)
        finally:
            self._release_file()
