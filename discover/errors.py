"""The one base error of discover: a message, a tip, and the exit code the CLI uses."""

from __future__ import annotations


class DiscoverError(Exception):
    """Anything discover reports to the user; only ``cli.main`` turns it into an exit."""

    exit_code: int = 2

    def __init__(self, msg: str, *, tip: str | None = None, exit_code: int | None = None):
        super().__init__(msg)
        self.msg = msg
        self.tip = tip
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.msg if self.tip is None else f"{self.msg}\nTip: {self.tip}"
