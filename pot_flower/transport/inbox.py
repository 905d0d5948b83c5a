"""The replica's input queue: fair between surfaces, bounded in bytes.

gRPC handlers offer wire bytes under a *surface* (one per inbound peer stream, one
for direct deliveries, one for client submissions); the replica's thread takes them
in turn, one surface after the other, so a flood on one surface delays the others
by at most one input per turn. Each surface may hold a quarter of the byte budget
and all of them together the whole of it; an offer beyond that is refused (the
caller counts a drop: PBFT retransmits what matters). Control items (start, stop,
calls onto the replica's thread) are never refused and always come first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Any

Item = tuple[str, Any]


class Inbox:
    """A bounded, fair multi-producer queue with one consumer.

    Parameters
    ----------
    max_bytes : int
        Bytes all surfaces may hold together; one surface may hold a quarter.

    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.surface_bytes = max(1, max_bytes // 4)
        self._control: deque[Item] = deque()
        self._surfaces: OrderedDict[str, deque[bytes]] = OrderedDict()
        self._held: dict[str, int] = {}
        self._total = 0
        self._ready = threading.Condition()

    @property
    def held_bytes(self) -> int:
        """Bytes waiting for the replica right now."""
        return self._total

    def put_control(self, kind: str, value: Any = None) -> None:
        with self._ready:
            self._control.append((kind, value))
            self._ready.notify()

    def offer(self, surface: str, data: bytes) -> bool:
        """Queue ``data`` from ``surface``; False if that would exceed a budget."""
        size = len(data)
        with self._ready:
            held = self._held.get(surface, 0)
            if held + size > self.surface_bytes or self._total + size > self.max_bytes:
                return False
            queue = self._surfaces.get(surface)
            if queue is None:
                queue = self._surfaces[surface] = deque()
            queue.append(data)
            self._held[surface] = held + size
            self._total += size
            self._ready.notify()
            return True

    def get(self, timeout: float | None) -> Item | None:
        """The next item (control first, then surfaces in turn); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._control and not self._surfaces:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._ready.wait(remaining)
            return self._take()

    def get_nowait(self) -> Item | None:
        with self._ready:
            if not self._control and not self._surfaces:
                return None
            return self._take()

    def _take(self) -> Item:
        if self._control:
            return self._control.popleft()
        surface, queue = next(iter(self._surfaces.items()))
        data = queue.popleft()
        self._held[surface] -= len(data)
        self._total -= len(data)
        if queue:
            self._surfaces.move_to_end(surface)  # the next surface's turn
        else:
            del self._surfaces[surface]
            del self._held[surface]
        return ("bytes", data)
