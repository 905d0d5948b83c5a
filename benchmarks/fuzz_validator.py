"""Throw hostile inputs at a live validator and count what gets through.

A committee of 4 validator processes runs on loopback; validator 1 receives
--inputs random, mutated and impostor messages on both its peer port (`Deliver`,
`Link`) and its coordinator port (`Submit`), plus oversized frames, garbage payload
uploads and garbage certificates. Counted: validator crashes, inputs not dropped
(the replica's drop counter must grow by one per hostile frame), state changes the
inputs caused (view, executed sequence), and whether the committee still commits.

    python benchmarks/fuzz_validator.py --inputs 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc

from pot_flower.deploy import load_committee, read_key
from pot_flower.encoding import encode
from pot_flower.localnet import COORDINATOR, prepare, running
from pot_flower.sim.fuzzinputs import hostile_inputs, impostor_corpus
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.client import CommitteeClient
from pot_flower.transport.node import MAX_MESSAGE_BYTES, open_channel

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1


def health(stub: pot_pb2_grpc.ValidatorStub) -> pot_pb2.HealthReply:
    return stub.Health(pot_pb2.HealthRequest(), timeout=5)


def settle(
    stub: pot_pb2_grpc.ValidatorStub, expected_dropped: int, timeout: float = 60
) -> pot_pb2.HealthReply:
    deadline = time.monotonic() + timeout
    while True:
        reply = health(stub)
        if reply.dropped >= expected_dropped or time.monotonic() > deadline:
            return reply
        time.sleep(0.2)


def run(inputs: int, directory: Path) -> dict[str, object]:
    path = prepare(4, directory)
    with running(path) as processes:
        committee = load_committee(path)
        client = CommitteeClient(
            committee.config,
            COORDINATOR,
            read_key(directory / f"{COORDINATOR}.key"),
            committee.addresses,
        )
        client.call(encode({"kind": "ping", "digest": b"before"}), timeout=30)
        channel = open_channel(committee.addresses[TARGET])
        stub = pot_pb2_grpc.ValidatorStub(channel)
        time.sleep(1.5)  # let status traffic settle
        before = health(stub)
        kinds: Counter[str] = Counter()
        refused_by_transport = 0
        frames = list(hostile_inputs(impostor_corpus(4), inputs, seed=7))
        started = time.perf_counter()
        stream: list[pot_pb2.Frame] = []
        for i, (kind, data) in enumerate(frames):
            kinds[kind] += 1
            route = i % 3
            if route == 0:
                stub.Deliver(pot_pb2.Frame(data=data), timeout=5)
            elif route == 1:
                stub.Submit(pot_pb2.Frame(data=data), timeout=5)
            else:
                stream.append(pot_pb2.Frame(data=data))
        stub.Link(iter(stream), timeout=60)
        # Frames past the size limit never reach the replica.
        for size in (MAX_MESSAGE_BYTES + 1, 2 * MAX_MESSAGE_BYTES):
            try:
                stub.Deliver(pot_pb2.Frame(data=b"x" * size), timeout=30)
            except grpc.RpcError as exc:
                refused_by_transport += exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Garbage payloads and certificates are refused with a reason.
        bad_payload = stub.PutPayload(
            iter([pot_pb2.Chunk(digest=b"\x00" * 32, data=b"not it")]), timeout=10
        )
        bad_cert = stub.Certify(pot_pb2.Frame(data=b"garbage"), timeout=10)
        elapsed = time.perf_counter() - started
        after = settle(stub, before.dropped + len(frames))
        alive = all(p.poll() is None for p in processes.values())
        result = client.call(encode({"kind": "ping", "digest": b"after"}), timeout=30)
        client.close()
        channel.close()
    codes = [p.returncode for p in processes.values()]
    log = (directory / f"validator-{TARGET}" / "validator.log").read_text()
    return {
        "inputs": len(frames),
        "kinds": dict(kinds),
        "seconds": round(elapsed, 1),
        "crashes": sum(1 for c in codes if c != 0) + (0 if alive else 1),
        "dropped": after.dropped - before.dropped,
        "not_dropped": max(0, len(frames) - (after.dropped - before.dropped)),
        "view_changed": after.view != before.view,
        "executed_changed": after.last_executed != before.last_executed,
        "oversized_refused": refused_by_transport,
        "bad_payload_refused": not bad_payload.accepted,
        "bad_certificate_refused": not bad_cert.accepted,
        "commits_afterwards": bool(result),
        "drop_log_lines": log.count("dropped input"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument(
        "--json-out", type=Path, default=ROOT / "benchmarks/results/fuzz_validator.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pot-fuzz-") as tmp:
        summary = run(args.inputs, Path(tmp) / "committee")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
