"""``pot committee up --local N``: a development committee on loopback.

Keys, committee file and data live in one directory; running the command again
reuses them (same keys, ports and ledgers), which is how a local committee is
restarted. Validators run as child processes, each logging to its data directory;
SIGINT/SIGTERM stops them all.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from pot_flower.ops.committee_file import (
    NOISE_KEY_FILE,
    load_committee,
    read_key,
    render_committee,
    write_key,
    write_noise_key,
)
from pot_flower.ops.signals import stop_requested
from pot_flower.ops.superlink import free_port
from pot_flower.ops.tls import issue, make_ca
from pot_flower.protocol.certificate import BlsKey
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.channels import open_channel
from pot_flower.zk.signatures import SigningKey

COMMITTEE_FILE = "committee.toml"
COORDINATOR = "coordinator"


def prepare(
    n: int,
    directory: Path,
    *,
    tls: bool = False,
    hosts: list[str] | None = None,
    tuning: dict[str, int | bool] | None = None,
    score_fn: str | None = None,
) -> Path:
    """Create keys and the committee file for n validators (unless present).

    ``hosts`` (``host:port`` each) default to free loopback ports; with ``tls`` a
    committee CA and certificates for every validator and the coordinator are made;
    ``tuning`` overrides [committee] settings of the local defaults; ``score_fn``
    (``"module:function"``) makes the committee score every update.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / COMMITTEE_FILE
    if path.exists():
        committee = load_committee(path)
        if committee.config.n != n:
            raise SystemExit(f"{path} has {committee.config.n} validators, not {n}")
        if score_fn is not None and committee.score_fn != score_fn:
            raise SystemExit(f"{path} names score function {committee.score_fn!r}")
        return path
    addresses = hosts or [f"127.0.0.1:{free_port()}" for _ in range(n)]
    validators = []
    bls = []  # every committee can run BLS-certified chains
    for i in range(n):
        key = SigningKey.generate()
        write_key(directory / f"validator-{i}.key", key)
        validators.append((addresses[i], key.verify_key))
        bls.append(BlsKey.of(key))
    coordinator = SigningKey.generate()
    write_key(directory / f"{COORDINATOR}.key", coordinator)
    # The committee's DP noise key: for validator hosts only, never the coordinator's.
    noise_digest = write_noise_key(directory / NOISE_KEY_FILE)
    if tls:
        ca_key, ca_cert = make_ca(directory / "tls")
        for i, address in enumerate(addresses):
            host = address.rsplit(":", 1)[0]
            issue(directory / "tls", f"validator-{i}", [host], ca_key, ca_cert)
        issue(directory / "tls", COORDINATOR, [], ca_key, ca_cert)
    # Status messages (retransmission, catch-up) every second: at 250 ms they
    # cost a 16-validator committee on one host more than the requests do. Votes
    # relayed through the primary: O(n) messages per decision (n = 16: 2.6x
    # faster; n = 4: the same; benchmarks/committee_grpc.py).
    settings: dict[str, int | bool] = {
        "status-interval-ms": 1000,
        "relay-votes": True,
        **(tuning or {}),
    }
    path.write_text(
        render_committee(
            validators,
            {COORDINATOR: coordinator.verify_key},
            settings,
            tls=tls,
            score_fn=score_fn,
            noise_key_digest=noise_digest,
            bls=bls,
        )
    )
    return path


def start(
    path: Path, ids: list[int] | None = None
) -> dict[int, subprocess.Popen[bytes]]:
    """Start validator processes for ``path`` (all, or ``ids``)."""
    committee = load_committee(path)
    processes = {}
    for i in ids if ids is not None else list(committee.addresses):
        data = path.parent / f"validator-{i}"
        data.mkdir(parents=True, exist_ok=True)
        log = open(data / "validator.log", "ab")  # noqa: SIM115 (owned by the child)
        processes[i] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pot_flower",
                "validator",
                "run",
                "--config",
                str(path),
                "--id",
                str(i),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
    return processes


def wait_healthy(path: Path, ids: list[int] | None = None, timeout: float = 30) -> bool:
    """Whether every validator in ``ids`` answers its health check in time."""
    committee = load_committee(path)
    credentials = committee.channel_credentials(COORDINATOR)
    pending = set(ids if ids is not None else committee.addresses)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for i in sorted(pending):
            channel = open_channel(committee.addresses[i], credentials)
            try:
                stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
                stub.Health(pot_pb2.HealthRequest(), timeout=1)
                pending.discard(i)
            except grpc.RpcError:
                pass
            finally:
                channel.close()
        if pending:
            time.sleep(0.2)
    return not pending


def stop_all(
    processes: dict[int, subprocess.Popen[bytes]], timeout: float = 15
) -> None:
    """SIGTERM every process still running, wait, SIGKILL what does not exit."""
    for p in processes.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in processes.values():
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextmanager
def running(path: Path) -> Iterator[dict[int, subprocess.Popen[bytes]]]:
    """Every validator of ``path`` running and healthy inside the block."""
    processes = start(path)
    try:
        if not wait_healthy(path, timeout=60):
            raise RuntimeError(f"validators of {path} did not become healthy")
        yield processes
    finally:
        stop_all(processes)


def run_local_committee(
    n: int, directory: Path, *, tls: bool = False, score_fn: str | None = None
) -> int:
    """Prepare, start, wait for health, then serve until interrupted."""
    path = prepare(n, directory, tls=tls, score_fn=score_fn)
    read_key(directory / f"{COORDINATOR}.key")  # fail early if it is unreadable
    processes = start(path)
    stopping = stop_requested()
    healthy = wait_healthy(path)
    print(
        f"committee of {n} {'up' if healthy else 'NOT healthy'}: {path} "
        f"(coordinator key {directory / (COORDINATOR + '.key')})",
        flush=True,
    )
    reported: set[int] = set()
    while not stopping.wait():
        for i, p in processes.items():
            if p.poll() is not None and i not in reported:
                reported.add(i)  # the others keep going: f failures are tolerated
                print(f"validator {i} exited with {p.returncode}", flush=True)
    stop_all(processes)
    return 0 if healthy else 1
