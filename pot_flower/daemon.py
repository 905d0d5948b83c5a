"""``pot validator run``: one validator as a long-running process.

Structured logs (one JSON object per line on stderr), a gRPC health check
(``Health``), graceful shutdown on SIGTERM/SIGINT. State lives under the data
directory: ``consensus.sqlite`` (PBFT records), ``payloads/``, ``chains/run-<id>/``
(one ledger per Flower run). A restarted validator rebuilds from these and catches
up from its peers.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from pot_flower.deploy import CommitteeFileError, load_committee, read_key
from pot_flower.localnet import stop_requested
from pot_flower.payloads import PayloadStore
from pot_flower.service import ValidatorService
from pot_flower.transport.node import ValidatorNode
from pot_flower.transport.store import RecordStore


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


def run_validator(committee_path: Path, vid: int, key_path: Path, data: Path) -> int:
    """Serve until SIGTERM; return the exit status."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    log = logging.getLogger("pot.validator")
    try:
        committee = load_committee(committee_path)
        key = read_key(key_path)
    except (CommitteeFileError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    config = committee.config
    if not 0 <= vid < config.n or config.replicas[vid] != key.verify_key:
        log.error("key %s is not validator %d of %s", key_path, vid, committee_path)
        return 2
    service = ValidatorService(
        data / "chains",
        tuple(k.raw for k in config.replicas),
        config.quorum,
        PayloadStore(data / "payloads"),
    )
    try:
        server_credentials = committee.server_credentials(vid)
        channel_credentials = committee.channel_credentials(f"validator-{vid}")
    except CommitteeFileError as exc:
        log.error("cannot start: %s", exc)
        return 2
    node = ValidatorNode(
        config,
        vid,
        key,
        service,
        committee.addresses,
        store=RecordStore(data / "consensus.sqlite"),
        service=service,
        server_credentials=server_credentials,
        channel_credentials=channel_credentials,
    )
    stopping = stop_requested()
    node.start()
    log.info(
        "validator %d of %d up (f = %d, %s), data in %s, executed up to %d",
        vid,
        config.n,
        config.f,
        "mutual TLS" if server_credentials is not None else "PLAINTEXT, no TLS",
        data,
        node.replica.last_executed,
    )
    while not stopping.wait():
        pass
    log.info("validator %d stopping (SIGTERM)", vid)
    node.stop(grace=2.0)
    log.info("validator %d stopped", vid)
    return 0
