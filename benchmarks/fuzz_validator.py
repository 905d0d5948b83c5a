"""Throw hostile inputs at live validators and count what gets through.

A committee of 4 validator processes runs on loopback (plaintext: what a stranger
without credentials reaches). Two phases:

1. consensus frames: --inputs random, mutated and impostor messages on validator
   1's peer and coordinator surfaces (`Deliver`, `Link`, `Submit`), plus oversized
   frames, a garbage payload upload and a garbage certificate. Counted: inputs not
   dropped (the drop counter must grow by one per frame), state changes they
   caused (view, executed sequence);
2. every RPC: --calls raw requests spread over all validators and all ten RPCs
   (random bytes, well-formed messages with hostile field values, mutated
   serializations, streams that mix both). Counted: status codes (UNKNOWN and
   INTERNAL must never appear).

Then: the committee must still commit, and every validator must stop within 10 s
of SIGTERM with exit status 0.

    python benchmarks/fuzz_validator.py --inputs 10000 --calls 20000
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from pot_flower.encoding import encode
from pot_flower.ops.committee_file import load_committee, read_key
from pot_flower.ops.local import COORDINATOR, prepare, start, stop_all, wait_healthy
from pot_flower.sim.fuzzinputs import (
    hostile_inputs,
    hostile_rpcs,
    impostor_corpus,
    raw_call,
)
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.channels import open_channel
from pot_flower.transport.gateway import Gateway
from pot_flower.transport.limits import Limits

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


def consensus_frames(
    stub: pot_pb2_grpc.ValidatorStub, inputs: int
) -> dict[str, object]:
    before = health(stub)
    kinds: Counter[str] = Counter()
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
    refused = 0
    size = Limits().max_message_bytes
    for oversized in (size + 1, 2 * size):
        try:
            stub.Deliver(pot_pb2.Frame(data=b"x" * oversized), timeout=30)
        except grpc.RpcError as exc:
            refused += exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    bad_payload = stub.PutPayload(
        iter([pot_pb2.Chunk(digest=b"\x00" * 32, data=b"not it")]), timeout=10
    )
    bad_cert = stub.Certify(pot_pb2.Frame(data=b"garbage"), timeout=10)
    elapsed = time.perf_counter() - started
    after = settle(stub, before.dropped + len(frames))
    return {
        "inputs": len(frames),
        "kinds": dict(kinds),
        "seconds": round(elapsed, 1),
        "dropped": after.dropped - before.dropped,
        "not_dropped": max(0, len(frames) - (after.dropped - before.dropped)),
        "view_changed": after.view != before.view,
        "executed_changed": after.last_executed != before.last_executed,
        "oversized_refused": refused,
        "bad_payload_refused": not bad_payload.accepted,
        "bad_certificate_refused": not bad_cert.accepted,
    }


def every_rpc(addresses: dict[int, str], calls: int) -> dict[str, object]:
    channels = {v: grpc.insecure_channel(a) for v, a in addresses.items()}
    work = list(hostile_rpcs(impostor_corpus(len(addresses)), calls, seed=13))
    codes: Counter[str] = Counter()
    by_method: dict[str, Counter[str]] = {}
    started = time.perf_counter()

    def one(item: tuple[int, tuple[str, list[bytes]]]) -> tuple[str, str]:
        i, (method, messages) = item
        channel = channels[i % len(channels)]
        return method, raw_call(channel, method, messages, timeout=1.0)

    with ThreadPoolExecutor(max_workers=16) as pool:
        for method, code in pool.map(one, enumerate(work)):
            codes[code] += 1
            by_method.setdefault(method, Counter())[code] += 1
    for channel in channels.values():
        channel.close()
    return {
        "calls": len(work),
        "seconds": round(time.perf_counter() - started, 1),
        "status_codes": dict(codes),
        "unknown": codes.get("UNKNOWN", 0),
        "internal": codes.get("INTERNAL", 0),
        "by_method": {m: dict(c) for m, c in sorted(by_method.items())},
    }


def run(inputs: int, calls: int, directory: Path) -> dict[str, object]:
    path = prepare(4, directory)
    processes = start(path)
    try:
        assert wait_healthy(path, timeout=60)
        committee = load_committee(path)
        client = Gateway(
            committee.config,
            COORDINATOR,
            read_key(directory / f"{COORDINATOR}.key"),
            committee.addresses,
        )
        client.call(encode({"kind": "ping", "digest": b"before"}), timeout=30)
        channel = open_channel(committee.addresses[TARGET])
        stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
        time.sleep(1.5)  # let status traffic settle
        frames = consensus_frames(stub, inputs)
        rpcs = every_rpc(committee.addresses, calls)
        alive = all(p.poll() is None for p in processes.values())
        started = time.monotonic()
        commits = bool(
            client.call(encode({"kind": "ping", "digest": b"after"}), timeout=30)
        )
        commit_s = time.monotonic() - started
        client.close()
        channel.close()
        started = time.monotonic()
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        codes = []
        for process in processes.values():
            try:
                codes.append(
                    process.wait(timeout=max(0.1, 10 - (time.monotonic() - started)))
                )
            except Exception:
                codes.append(None)
        stop_s = time.monotonic() - started
    finally:
        stop_all(processes)
    logs = [
        (directory / f"validator-{v}" / "validator.log").read_text() for v in range(4)
    ]
    return {
        "consensus_frames": frames,
        "every_rpc": rpcs,
        "crashes": sum(1 for c in codes if c not in (0, None)) + (0 if alive else 1),
        "commits_afterwards": commits,
        "commit_after_s": round(commit_s, 2),
        "stopped_within_10s": all(c == 0 for c in codes),
        "stop_s": round(stop_s, 2),
        "exit_codes": codes,
        "log_bytes": sum(len(log) for log in logs),
        "tracebacks_in_logs": sum(log.count("Traceback") for log in logs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument(
        "--json-out", type=Path, default=ROOT / "benchmarks/results/fuzz_validator.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pot-fuzz-") as tmp:
        summary = run(args.inputs, args.calls, Path(tmp) / "committee")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
