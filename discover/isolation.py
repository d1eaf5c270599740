"""Credential isolation: the deploy cannot read the admin's credentials.

The deploy is the repository's code and its plugins; discover holds admin credentials. Three
ways the deploy could reach them, and what closes each:

- **its environment**: the runner gives it only the sandbox session (``child_env``);
- **discover's /proc** (``/proc/<parent>/environ`` holds the admin's keys when they came from
  the environment): the deploy runs in new PID and mount namespaces (``unshare`` from
  util-linux, with a user namespace so it works for root and non-root users alike), with its
  own ``/proc``, where discover is not to be seen;
- **the credential files** (``~/.aws/credentials``, ``~/.aws/config``, the SSO cache, and
  the files ``AWS_SHARED_CREDENTIALS_FILE``, ``AWS_CONFIG_FILE`` and
  ``AWS_WEB_IDENTITY_TOKEN_FILE`` name): hidden in the deploy's mount namespace (an empty
  tmpfs over a folder, ``/dev/null`` over a file). The deploy then runs in a further user and
  mount namespace, where the kernel locks those mounts: it cannot unmount them, nor bind the
  root file system again to look underneath.

Where the system offers no namespaces, discover warns, gives the deploy a HOME of its own
(with the user's npm and Serverless settings copied in: ``~/.aws`` is then not where the SDKs
and a casual plugin look), and marks itself non-dumpable (``PR_SET_DUMPABLE``), which stops a
non-root deploy from reading ``/proc/<discover>/environ``; a deploy that knows the real paths,
or runs as root, can still read them.

The deploy still shares the network: on an EC2 instance or in a container, the instance
metadata service hands out that machine's role credentials to anyone who asks.

``python -I discover/isolation.py --as=UID:GID HIDE... -- COMMAND...`` is the step that runs
inside the new namespaces: it hides, locks, then executes the deploy.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path

# NOTE: unshare(1) of util-linux. A user namespace lets a non-root user make the PID and mount
# namespaces; mapped to root in it, the first step keeps the capabilities to mount (after
# execve, a non-zero uid loses them), then maps itself back to the user's own ids.
UNSHARE_OPTIONS = (
    "--map-root-user",
    "--pid",
    "--fork",
    "--mount",
    "--mount-proc",
    "--kill-child",
    "--propagation",
    "private",
)
# What the deploy's own HOME gets from the user's, when there are no namespaces.
SETTINGS_FILES = (".npmrc", ".yarnrc", ".yarnrc.yml", ".serverlessrc", ".gitconfig")
_CREDENTIAL_FILE_VARIABLES = (
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_BIND = 0x1000
_MS_RDONLY = 0x1
_PR_SET_DUMPABLE = 4


class Mode(str, Enum):
    NAMESPACES = "namespaces"  # new user, PID and mount namespaces; files hidden and locked
    PRIVATE_HOME = "private-home"  # no namespaces: a HOME of its own, discover non-dumpable


@dataclass(frozen=True, slots=True)
class Isolation:
    """How the deploy is run: the argv prefix, the paths hidden, the HOME it gets."""

    mode: Mode
    hidden: tuple[Path, ...] = ()
    home: Path | None = None
    warning: str | None = None
    unshare: str = "unshare"
    python: str = field(default_factory=lambda: sys.executable)

    def wrap(self, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """``argv`` as it must run; unchanged when its program does not exist (the runner
        then reports that as before)."""
        if self.mode is not Mode.NAMESPACES:
            return list(argv)
        if shutil.which(argv[0], path=env.get("PATH")) is None and not Path(argv[0]).exists():
            return list(argv)
        hide = [str(p) for p in self.hidden]
        return [
            self.unshare,
            *UNSHARE_OPTIONS,
            "--",
            # By path, isolated (-I): nothing from the service folder or PYTHON* runs before
            # the files are hidden. The script needs only the standard library.
            self.python,
            "-I",
            str(Path(__file__).resolve()),
            f"--as={os.getuid()}:{os.getgid()}",
            *hide,
            "--",
            *argv,
        ]

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The deploy's environment, with its own HOME when it has one."""
        result = dict(env)
        if self.home is not None:
            result["HOME"] = str(self.home)
        return result

    def describe(self) -> str:
        if self.mode is Mode.NAMESPACES:
            return "the deploy runs in its own PID and mount namespaces; hidden from it: " + (
                ", ".join(str(p) for p in self.hidden) or "(nothing found to hide)"
            )
        return f"no namespaces: the deploy has its own HOME ({self.home}); see the warning"


def credential_paths(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The admin's credential folders and files that exist on this machine."""
    env = os.environ if environ is None else environ
    homes = {Path(env["HOME"])} if env.get("HOME") else set()
    with contextlib.suppress(KeyError, ImportError):
        import pwd

        homes.add(Path(pwd.getpwuid(os.getuid()).pw_dir))
    found = {home / ".aws" for home in homes}
    for variable in _CREDENTIAL_FILE_VARIABLES:
        value = env.get(variable)
        if value and value != os.devnull:
            found.add(Path(value).expanduser())
    return tuple(sorted(p for p in found if p.exists()))


@cache
def namespaces_available(unshare: str = "unshare") -> bool:
    """True when ``unshare`` can make the deploy's namespaces here (tried, not guessed)."""
    if shutil.which(unshare) is None:
        return False
    try:
        answer = subprocess.run(
            [unshare, *UNSHARE_OPTIONS, "--", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return answer.returncode == 0


def prepare(
    state_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    unshare: str = "unshare",
    allow_namespaces: bool = True,
) -> Isolation:
    """The isolation this machine offers, ready for the deploy's runs."""
    env = os.environ if environ is None else environ
    hidden = credential_paths(env)
    if allow_namespaces and namespaces_available(unshare):
        return Isolation(Mode.NAMESPACES, hidden=hidden, unshare=unshare)
    home = _private_home(state_dir, env)
    set_non_dumpable()
    warning = (
        "no user, PID and mount namespaces here (unshare from util-linux 2.38+, user "
        "namespaces enabled): the deploy gets a HOME of its own and discover is non-dumpable, "
        "but a deploy running as root, or one that knows the real paths "
        + (", ".join(str(p) for p in hidden) or "of the credential files")
        + ", can read the admin's credentials"
    )
    return Isolation(Mode.PRIVATE_HOME, hidden=hidden, home=home, warning=warning)


def _private_home(state_dir: Path, env: Mapping[str, str]) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="deploy-home-", dir=state_dir))
    source = Path(env.get("HOME") or Path.home())
    for name in SETTINGS_FILES:
        with contextlib.suppress(OSError):
            if (source / name).is_file():
                shutil.copy2(source / name, home / name)
    return home


def set_non_dumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)`` on discover: non-root processes cannot read its /proc."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


# --- inside the namespaces ---------------------------------------------------------------


class IsolationError(OSError):
    """A step inside the namespaces failed; the deploy is not run."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise IsolationError(errno, f"{what}: {os.strerror(errno)}")


def hide(paths: Sequence[Path]) -> None:
    """An empty read-only tmpfs over each folder, ``/dev/null`` over each file."""
    libc = _libc()
    if libc is None:
        raise IsolationError(0, "no C library to mount with")
    for path in paths:
        target = os.fsencode(path)
        if path.is_dir():
            _check(
                libc.mount(b"none", target, b"tmpfs", _MS_RDONLY, b"size=4k,mode=0500"),
                f"hide {path}",
            )
        elif path.exists():
            _check(libc.mount(b"/dev/null", target, None, _MS_BIND, None), f"hide {path}")


def lock(uid: int, gid: int) -> None:
    """Enter a further user and mount namespace: the mounts made so far become locked.

    In it, the deploy has the user's own ids again (root, within the first namespace, maps
    to them), so a non-root user's deploy keeps no capability once it runs.
    """
    libc = _libc()
    if libc is None:
        raise IsolationError(0, "no C library to unshare with")
    _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} 0 1")
    Path("/proc/self/gid_map").write_text(f"{gid} 0 1")


def main(argv: Sequence[str]) -> int:
    """``--as=UID:GID HIDE... -- COMMAND...``: hide, lock, then become the deploy."""
    if "--" not in argv or not argv or not argv[0].startswith("--as="):
        print("discover.isolation: usage: --as=UID:GID HIDE... -- COMMAND...", file=sys.stderr)
        return 2
    at = list(argv).index("--")
    uid, gid = (int(n) for n in argv[0].removeprefix("--as=").split(":", 1))
    paths, command = [Path(p) for p in argv[1:at]], list(argv[at + 1 :])
    try:
        hide(paths)
        lock(uid, gid)
    except (IsolationError, OSError) as exc:
        print(f"discover: cannot isolate the deploy: {exc}", file=sys.stderr)
        return 126
    try:
        os.execvp(command[0], command)  # noqa: S606 - argv list, never a shell
    except OSError as exc:
        print(f"discover: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
