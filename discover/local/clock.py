"""The sandbox's clock: real time plus an offset that tests move forward.

Session expiry and IAM propagation read this clock, never ``time.time`` directly, so a test
can make an hour pass (``POST /_discover/clock``) without waiting for it.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class SandboxClock:
    """Wall-clock seconds, shifted by however far the clock was advanced."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the epoch, as the sandbox sees them."""
        return time.time() + self._offset

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> float:
        """Move the clock forward (never back); the new time."""
        if seconds < 0:
            msg = f"the sandbox clock only moves forward, not by {seconds} s"
            raise ValueError(msg)
        with self._lock:
            self._offset += seconds
        return self.now()

    @property
    def offset(self) -> float:
        return self._offset


CLOCK = SandboxClock()
"""The one clock of the sandbox server process."""
