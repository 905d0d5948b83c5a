"""A fault-injecting transport between validator processes: FOR TESTS ONLY.

Production code has no fault knob: this module lives in ``tests/`` (it is not
installed with the package), and only a process started through it, as

    python tests/fault_transport.py --config committee.toml --id 2 \\
        --drop 0.05 --delay 0.05 --seed 7

injects faults. That launcher patches two things in its own process, then calls the
daemon's entry point (:func:`pot_flower.ops.daemon.run_validator`, what ``pot
validator run`` calls):

- ``_Peer.offer`` in :mod:`pot_flower.transport.node`, the one place a validator
  hands a consensus message to the sender thread of a peer link: a message is
  dropped (never queued), delayed (queued after a random pause, so it also
  arrives out of order), or passed on at once;
- ``open_channel`` as :mod:`pot_flower.transport.node` sees it, the channels a
  validator opens to its peers: unary and server-streaming calls (state transfer
  and payload fetches, certificate repair; ``GetBlock``, ``GetPayload``) fail with
  ``UNAVAILABLE`` before they are sent, or are sent after a pause. The long-lived
  ``Link`` streams pass untouched (their messages are the ones above).

Each message's fate is drawn from a :class:`FaultPlan`: a ``random.Random`` seeded
by the seed, the validator and its incarnation (how many times it was started), so
the n-th message of an incarnation meets the same fate in every run with that seed.
Which message is n-th depends on timing; the shares and the sequence of fates do not.

Counts (messages offered, dropped, delayed; calls made, failed, delayed) are written
as JSON to ``<data>/faults/<incarnation>-<pid>.json`` every 0.2 s and at exit; a
process killed with SIGKILL loses at most the last 0.2 s of counts.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

PASS = "pass"
DROP = "drop"
DELAY = "delay"
STATS_PERIOD_S = 0.2
LAUNCHER = Path(__file__).resolve()


@dataclass(frozen=True)
class Faults:
    """What to inject: shares of messages dropped and delayed, and the seed.

    ``drop + delay`` of the messages are affected; a delay is drawn uniformly from
    ``[delay_min_s, delay_max_s]``. ``rpc`` applies the same shares to the unary
    calls validators make to each other (fetches during catch-up).
    """

    drop: float = 0.0
    delay: float = 0.0
    seed: int = 0
    delay_min_s: float = 0.02
    delay_max_s: float = 0.5
    rpc: bool = True

    def __post_init__(self) -> None:
        if not (0 <= self.drop <= 1 and 0 <= self.delay <= 1):
            raise ValueError("drop and delay are shares in [0, 1]")
        if self.drop + self.delay > 1:
            raise ValueError("drop + delay must not exceed 1")
        if not 0 <= self.delay_min_s <= self.delay_max_s:
            raise ValueError("need 0 <= delay_min_s <= delay_max_s")

    def args(self) -> list[str]:
        """The launcher's options for these faults."""
        return [
            f"--drop={self.drop}",
            f"--delay={self.delay}",
            f"--seed={self.seed}",
            f"--delay-min-ms={self.delay_min_s * 1000:g}",
            f"--delay-max-ms={self.delay_max_s * 1000:g}",
            *([] if self.rpc else ["--no-rpc"]),
        ]


class FaultPlan:
    """The fate of each message of one stream, in order, from a seed.

    Two draws per message (fate, then delay), whatever the fate, so a plan's n-th
    fate does not depend on the earlier fates' kinds.
    """

    def __init__(self, faults: Faults, stream: str) -> None:
        self.faults = faults
        # A str seed is hashed with SHA-512: the same in every process and run.
        self._rng = random.Random(f"pot-faults/{faults.seed}/{stream}")

    def next(self) -> tuple[str, float]:
        """``(fate, delay in seconds)`` of the next message."""
        u = self._rng.random()
        pause = self._rng.uniform(self.faults.delay_min_s, self.faults.delay_max_s)
        if u < self.faults.drop:
            return DROP, 0.0
        if u < self.faults.drop + self.faults.delay:
            return DELAY, pause
        return PASS, 0.0

    def fates(self, count: int) -> list[tuple[str, float]]:
        return [self.next() for _ in range(count)]


class FaultInjector:
    """Applies two plans: one to peer messages, one to peer calls; counts both."""

    def __init__(self, faults: Faults, name: str) -> None:
        self.faults = faults
        self.links = FaultPlan(faults, f"{name}/link")
        self.calls = FaultPlan(faults, f"{name}/rpc")
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "messages",
                "messages_dropped",
                "messages_delayed",
                "calls",
                "calls_failed",
                "calls_delayed",
            ),
            0,
        )
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._delayer: threading.Thread | None = None

    # -------------------------------------------------------------- messages
    def send(self, deliver: Callable[[], None]) -> str:
        """Deliver a message now, later, or never (its fate)."""
        with self._lock:
            fate, pause = self.links.next()
            self.counts["messages"] += 1
            if fate == DROP:
                self.counts["messages_dropped"] += 1
                return fate
            if fate == DELAY:
                self.counts["messages_delayed"] += 1
                heapq.heappush(
                    self._due, (time.monotonic() + pause, next(self._order), deliver)
                )
                if self._delayer is None:
                    self._delayer = threading.Thread(
                        target=self._deliver_due, daemon=True, name="fault-delayer"
                    )
                    self._delayer.start()
                self._ready.notify()
                return fate
        deliver()
        return fate

    def _deliver_due(self) -> None:
        while True:
            with self._lock:
                while not self._due or self._due[0][0] > time.monotonic():
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._ready.wait(wait)
                _, _, deliver = heapq.heappop(self._due)
            deliver()

    def pending(self) -> int:
        """Delayed messages not delivered yet."""
        with self._lock:
            return len(self._due)

    # ----------------------------------------------------------------- calls
    def before_call(self, method: str) -> None:
        """Fail or pause a peer call, or let it through (its fate)."""
        if not self.faults.rpc:
            return
        with self._lock:
            fate, pause = self.calls.next()
            self.counts["calls"] += 1
            if fate == DROP:
                self.counts["calls_failed"] += 1
            elif fate == DELAY:
                self.counts["calls_delayed"] += 1
        if fate == DROP:
            raise InjectedUnavailable(method)
        if fate == DELAY:
            time.sleep(pause)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


class InjectedUnavailable(grpc.RpcError):  # type: ignore[misc]
    """A peer call the fault layer failed before it was sent."""

    def __init__(self, method: str) -> None:
        super().__init__(f"fault injected: {method} dropped")
        self._method = method

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return f"fault injected: {self._method} dropped"


class _CallFaults(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """Client interceptor for a validator's channels to its peers."""

    def __init__(self, injector: FaultInjector) -> None:
        self.injector = injector

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        self.injector.before_call(details.method)
        return continuation(details, request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        self.injector.before_call(details.method)
        return continuation(details, request)


def install(faults: Faults, name: str, stats: Path | None = None) -> FaultInjector:
    """Patch this process's validator transport to inject ``faults``.

    Called by the launcher before the daemon starts; nothing else calls it.
    """
    from pot_flower.ops import daemon
    from pot_flower.transport import node

    injector = FaultInjector(faults, name)
    offer = node._Peer.offer

    def faulty_offer(peer: Any, data: bytes) -> None:
        injector.send(functools.partial(offer, peer, data))

    setattr(node._Peer, "offer", faulty_offer)  # noqa: B010 (a patch)
    channel = getattr(node, "open_channel")  # noqa: B009
    interceptor = _CallFaults(injector)

    def faulty_channel(*args: Any, **kwargs: Any) -> grpc.Channel:
        return grpc.intercept_channel(channel(*args, **kwargs), interceptor)

    setattr(node, "open_channel", faulty_channel)  # noqa: B010
    if stats is not None:
        _report(injector, stats, daemon)
    return injector


def _report(injector: FaultInjector, path: Path, daemon: Any) -> None:
    """Write the counts every :data:`STATS_PERIOD_S` and when the daemon exits."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        counts = injector.snapshot()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(counts))
        os.replace(tmp, path)

    def loop() -> None:
        while True:
            time.sleep(STATS_PERIOD_S)
            try:
                write()
            except OSError:  # the directory is gone: nobody reads them any more
                return

    threading.Thread(target=loop, daemon=True, name="fault-stats").start()
    exit_now = daemon._exit_now

    def flushed_exit(status: int) -> None:
        write()
        exit_now(status)

    daemon._exit_now = flushed_exit
    write()


def read_stats(data: Path) -> dict[str, int]:
    """The counts of every incarnation of the validator whose data is ``data``."""
    total: dict[str, int] = {}
    for path in sorted((data / "faults").glob("*.json")):
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key, value in counts.items():
            total[key] = total.get(key, 0) + int(value)
    return total


# ------------------------------------------------------------------ launching
def command(path: Path, vid: int, faults: Faults, incarnation: int) -> list[str]:
    """The command line of validator ``vid`` behind the fault layer."""
    return [
        sys.executable,
        str(LAUNCHER),
        "--config",
        str(path),
        "--id",
        str(vid),
        f"--incarnation={incarnation}",
        *faults.args(),
    ]


def start(
    path: Path, ids: list[int], faults: Faults, incarnation: int = 0
) -> dict[int, subprocess.Popen[bytes]]:
    """Start validators ``ids`` of committee file ``path`` behind the fault layer.

    Like :func:`pot_flower.ops.local.start` (same data directories and logs).
    """
    processes = {}
    for vid in ids:
        data = path.parent / f"validator-{vid}"
        data.mkdir(parents=True, exist_ok=True)
        log = open(data / "validator.log", "ab")  # noqa: SIM115 (owned by the child)
        processes[vid] = subprocess.Popen(
            command(path, vid, faults, incarnation),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
    return processes


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delay-min-ms", type=float, default=20.0)
    parser.add_argument("--delay-max-ms", type=float, default=500.0)
    parser.add_argument("--no-rpc", action="store_true")
    parser.add_argument("--incarnation", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    faults = Faults(
        drop=args.drop,
        delay=args.delay,
        seed=args.seed,
        delay_min_s=args.delay_min_ms / 1000,
        delay_max_s=args.delay_max_ms / 1000,
        rpc=not args.no_rpc,
    )
    data = args.config.parent / f"validator-{args.id}"
    name = f"v{args.id}/i{args.incarnation}"
    stats = data / "faults" / f"{args.incarnation}-{os.getpid()}.json"
    install(faults, name, stats)
    print(
        json.dumps(
            {
                "ts": round(time.time(), 3),
                "level": "warning",
                "logger": "pot.tests.faults",
                "msg": f"FAULT INJECTION (tests only): {faults}",
            }
        ),
        file=sys.stderr,
        flush=True,
    )
    from pot_flower.ops.daemon import run_validator

    key = args.config.parent / f"validator-{args.id}.key"
    return run_validator(args.config, args.id, key, data)


def shares(counts: dict[str, int]) -> Iterator[tuple[str, float]]:
    """Observed shares of dropped and delayed messages and calls."""
    for kind, total in (("messages", "messages"), ("calls", "calls")):
        n = counts.get(total, 0)
        for fate in (
            ("dropped", "delayed") if kind == "messages" else ("failed", "delayed")
        ):
            key = f"{kind}_{fate}"
            yield key, (counts.get(key, 0) / n if n else 0.0)


if __name__ == "__main__":
    sys.exit(main())
