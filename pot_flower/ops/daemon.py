"""``pot validator run``: one validator as a long-running process.

Structured logs (one JSON object per line on stderr), a gRPC health check
(``Health``), shutdown on SIGTERM/SIGINT within :data:`STOP_DEADLINE_S` whatever
callers do. State lives under the data directory: ``consensus.sqlite`` (PBFT
records), ``payloads/``, ``chains/run-<id>/`` (one ledger per Flower run). A
restarted validator rebuilds from these and catches up from its peers.

Exit status: 0 after SIGTERM, 2 for a configuration error, 3 when the replica
stopped on an error (the health check said ``failed`` and why; a supervisor
restarts the process), 4 when shutdown had to be forced.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import grpc

from pot_flower.ops.committee_file import (
    CommitteeFile,
    CommitteeFileError,
    load_committee,
    read_key,
    read_noise_key,
)
from pot_flower.ops.signals import StopFlag, stop_requested
from pot_flower.patience import Interrupted
from pot_flower.protocol.certificate import BlsKey
from pot_flower.transport.node import ValidatorNode
from pot_flower.validator.chains import Chains, named_payloads
from pot_flower.validator.payloads import PayloadStore, Retention
from pot_flower.validator.replica_store import RecordStore
from pot_flower.validator.scoring import Scorer, load_score_fn
from pot_flower.zk.signatures import SigningKey

EXIT_CONFIG = 2
EXIT_FAILED = 3
EXIT_FORCED = 4
#: Longest a validator takes to stop after SIGTERM before it forces its exit.
STOP_DEADLINE_S = 8.0


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg"}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


@dataclass(frozen=True)
class _Identity:
    """Who this validator is: its committee, key and TLS credentials."""

    committee: CommitteeFile
    key: SigningKey
    server_credentials: grpc.ServerCredentials | None
    channel_credentials: grpc.ChannelCredentials | None
    scorer: Scorer | None = None
    noise_key: bytes | None = None


def run_validator(committee_path: Path, vid: int, key_path: Path, data: Path) -> int:
    """Serve until SIGTERM (or until the replica fails), then exit the process.

    Returns (an exit status) only if the validator cannot start.
    """
    log = _configure_logging()
    identity = _identity(committee_path, vid, key_path, log)
    if isinstance(identity, int):
        return identity
    data.mkdir(parents=True, exist_ok=True)
    lock = _lock(data)
    if lock is None:
        log.error("%s is in use by another validator process", data)
        return EXIT_CONFIG
    # Before anything that may wait for peers (a replay may catch a ledger up).
    stopping = stop_requested()
    node = _start_node(identity, vid, data, stopping, log)
    if isinstance(node, int):
        return node
    _serve(node, identity, vid, data, stopping, log)


def _configure_logging() -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    return logging.getLogger("pot.validator")


def _identity(
    committee_path: Path, vid: int, key_path: Path, log: logging.Logger
) -> _Identity | int:
    """The validator's identity, or the exit status saying why there is none."""
    try:
        committee = load_committee(committee_path)
        key = read_key(key_path)
    except (CommitteeFileError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return EXIT_CONFIG
    config = committee.config
    if not 0 <= vid < config.n or config.replicas[vid] != key.verify_key:
        log.error("key %s is not validator %d of %s", key_path, vid, committee_path)
        return EXIT_CONFIG
    if committee.bls and committee.bls[vid].key != BlsKey.of(key).key:
        log.error(
            "validator %d's bls-public-key in %s is not the one its key derives",
            vid,
            committee_path,
        )
        return EXIT_CONFIG
    try:
        scorer = None
        if committee.score_fn is not None:  # the task owner's, on this host
            scorer = Scorer(load_score_fn(committee.score_fn))
        noise_key = None
        if committee.noise_key_digest is not None:
            noise_key = read_noise_key(
                committee.noise_key_path, committee.noise_key_digest
            )
        return _Identity(
            committee,
            key,
            committee.server_credentials(vid),
            committee.channel_credentials(f"validator-{vid}"),
            scorer,
            noise_key,
        )
    except (CommitteeFileError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return EXIT_CONFIG


def _start_node(
    identity: _Identity,
    vid: int,
    data: Path,
    stopping: StopFlag,
    log: logging.Logger,
) -> ValidatorNode | int:
    """The node, restored from ``data`` and serving; or an exit status."""
    committee = identity.committee
    config, limits = committee.config, committee.limits
    payloads = PayloadStore(data / "payloads")
    retention = Retention(
        payloads, limits.payload_quota_bytes, limits.payload_store_bytes
    )
    service = Chains(
        data / "chains",
        tuple(k.raw for k in config.replicas),
        config.quorum,
        payloads,
        retention=retention,
        scorer=identity.scorer,
        noise_key=identity.noise_key,
        bls=committee.bls,
    )
    try:
        node = ValidatorNode(
            config,
            vid,
            identity.key,
            service,
            committee.addresses,
            store=RecordStore(data / "consensus.sqlite"),
            service=service,
            server_credentials=identity.server_credentials,
            channel_credentials=identity.channel_credentials,
            limits=limits,
            stopping=lambda: stopping.requested,
        )
    except Interrupted:
        log.info("validator %d stopped while starting up", vid)
        return 0
    except Exception as exc:  # damaged records or ledgers: say so, exit non-zero
        log.exception("validator %d cannot start: %s", vid, exc)
        return EXIT_FAILED
    swept = retention.sweep(limits.payload_retention_s, _pending_payloads(node))
    if swept:
        log.info("validator %d deleted %d stale payloads", vid, swept)
    try:
        node.start()
    except OSError as exc:  # the address is taken, say
        log.error("validator %d cannot serve: %s", vid, exc)
        return EXIT_CONFIG
    return node


def _serve(
    node: ValidatorNode,
    identity: _Identity,
    vid: int,
    data: Path,
    stopping: StopFlag,
    log: logging.Logger,
) -> NoReturn:
    """Serve until SIGTERM or a replica failure; stop and exit the process."""
    config = identity.committee.config
    log.info(
        "validator %d of %d up (f = %d, %s), data in %s, executed up to %d",
        vid,
        config.n,
        config.f,
        "mutual TLS" if identity.server_credentials else "PLAINTEXT, no TLS",
        data,
        node.replica.last_executed,
    )
    while not stopping.wait() and node.failure is None:
        pass
    if node.failure is not None:
        log.error("validator %d stopping: replica failed (%s)", vid, node.failure)
    else:
        log.info("validator %d stopping (SIGTERM)", vid)
    _force_exit_after(STOP_DEADLINE_S, log)
    clean = node.stop(grace=2.0)
    log.info("validator %d stopped%s", vid, "" if clean else " (not cleanly)")
    # Everything durable is written. Worker threads may still be blocked on a
    # stalled caller's I/O, and the interpreter would wait for them at exit.
    _exit_now(EXIT_FAILED if node.failure is not None else 0)


def _exit_now(status: int) -> NoReturn:
    logging.shutdown()
    sys.stderr.flush()
    os._exit(status)


def _lock(data: Path) -> int | None:
    """Hold ``data/validator.lock`` for the life of the process (None: taken).

    Two processes on one data directory would write the same records and sign
    conflicting votes under one key.
    """
    fd = os.open(data / "validator.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _pending_payloads(node: ValidatorNode) -> set[bytes]:
    """Payloads the durable records still name (requests not yet executed)."""
    keep: set[bytes] = set()
    for slot in node.replica.durable_state().slots:
        proposals = [slot.pre_prepare]
        if slot.committed is not None:
            proposals.append(slot.committed.pre_prepare)
        for pp in proposals:
            for request in pp.requests if pp is not None else ():
                keep.update(named_payloads(request.operation))
    return keep


def _force_exit_after(seconds: float, log: logging.Logger) -> None:
    """Exit the process after ``seconds`` if it has not exited by then."""

    def force() -> None:
        log.error("shutdown took longer than %.0f s: forcing the exit", seconds)
        _exit_now(EXIT_FORCED)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()
