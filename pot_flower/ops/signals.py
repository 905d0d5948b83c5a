"""Stopping long-running commands on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import time
from types import FrameType


class StopFlag:
    """Set by SIGTERM or SIGINT, and polled.

    A signal handler must not take locks the interrupted main thread may hold,
    as ``threading.Event.set`` would.
    """

    def __init__(self) -> None:
        self.requested = False

    def wait(self, timeout: float = 0.2) -> bool:
        """Sleep up to ``timeout``; whether a stop was requested."""
        if not self.requested:
            time.sleep(timeout)
        return self.requested


def stop_requested() -> StopFlag:
    """A flag that SIGTERM and SIGINT set (for long-running commands)."""
    flag = StopFlag()

    def stop(signum: int, frame: FrameType | None) -> None:
        flag.requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return flag
