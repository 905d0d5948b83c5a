"""Flood a live committee and measure what it costs: memory, disk, logs, latency.

A committee of 4 validator processes on loopback (plaintext: no credentials needed
to reach it). While a coordinator keeps committing pings, validator 1 (and, for the
streams, every validator) is flooded with:

* idle streams: --streams `Replies` and `Link` streams per validator, never used;
* big bad frames: --big 8 MiB requests that parse but carry a bad signature;
* uploads: unsigned 1 MiB uploads from a stranger, and signed uploads from the
  coordinator's own key far beyond its quota (a Byzantine coordinator);
* malformed protobufs: --malformed 3-byte messages on every RPC.

Reported: resident memory of the target before, at the peak and after; bytes in
its payload store against the quota; its log growth; commit latency of the pings
(median and worst) during the floods; whether health answered throughout.

    python benchmarks/flood_validator.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import grpc

from pot_flower.consensus.messages import Request
from pot_flower.encoding import encode
from pot_flower.ops.committee_file import load_committee, read_key
from pot_flower.ops.local import COORDINATOR, prepare, start, stop_all, wait_healthy
from pot_flower.sim.fuzzinputs import RPC_SHAPES, raw_call
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.gateway import Gateway
from pot_flower.transport.uploads import first_chunk
from pot_flower.zk.signatures import SigningKey

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1
MIB = 1 << 20
QUOTA_MB = 64  # the committee file's [limits] for this run: small, to hit it


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


class Pinger(threading.Thread):
    """Commits pings back to back and records each latency."""

    def __init__(self, client: Gateway) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.latencies: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.client.call(encode({"kind": "ping", "digest": b"f"}), timeout=30)
                self.latencies.append(time.monotonic() - started)
            except TimeoutError:
                self.failures += 1


def flood(args: argparse.Namespace, directory: Path) -> dict[str, object]:
    path = prepare(4, directory, tuning=None)
    text = path.read_text() + (
        f"\n[limits]\npayload-quota-mb = {QUOTA_MB}\nmax-payload-mb = 8\n"
    )
    path.write_text(text)
    processes = start(path)
    assert wait_healthy(path, timeout=60)
    committee = load_committee(path)
    key = read_key(directory / f"{COORDINATOR}.key")
    client = Gateway(committee.config, COORDINATOR, key, committee.addresses)
    pid = processes[TARGET].pid
    address = committee.addresses[TARGET]
    target = pot_pb2_grpc.ValidatorStub(grpc.insecure_channel(address))  # type: ignore[no-untyped-call]
    log_file = directory / f"validator-{TARGET}" / "validator.log"
    payload_dir = directory / f"validator-{TARGET}" / "payloads"
    client.call(encode({"kind": "ping", "digest": b"warm"}), timeout=30)
    time.sleep(1)
    before = {"rss_mb": rss_mb(pid), "log_bytes": log_file.stat().st_size}
    peak = [before["rss_mb"]]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak.append(rss_mb(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    pinger = Pinger(client)
    pinger.start()
    health_failures = 0
    held = []
    started = time.monotonic()
    try:
        # Idle streams on every validator.
        for vid, addr in committee.addresses.items():
            stub = pot_pb2_grpc.ValidatorStub(grpc.insecure_channel(addr))  # type: ignore[no-untyped-call]
            for _ in range(args.streams):
                held.append(stub.Replies(pot_pb2.Subscribe(client=COORDINATOR)))

                def silent() -> object:
                    time.sleep(3600)
                    yield pot_pb2.Frame()

                held.append(stub.Link.future(silent()))
            del vid
        # Big frames that parse and fail their signature check.
        stranger = SigningKey.from_seed(b"flood-stranger")
        for i in range(args.big):
            frame = Request(COORDINATOR, 10**16 + i, b"x" * (8 * MIB)).signed(stranger)
            target.Deliver(pot_pb2.Frame(data=frame.to_bytes()), timeout=30)
        # Unsigned uploads, then signed ones beyond the quota.
        refused_unsigned = refused_quota = accepted = 0
        for i in range(args.uploads):
            data = os.urandom(MIB)
            digest = hashlib.sha256(data).digest()
            ack = target.PutPayload(
                iter([pot_pb2.Chunk(digest=digest, data=data)]), timeout=30
            )
            refused_unsigned += not ack.accepted
            ticket = first_chunk(key, COORDINATOR, 1, 1, digest, len(data))
            ack = target.PutPayload(
                iter([ticket, pot_pb2.Chunk(data=data)]), timeout=30
            )
            if ack.accepted:
                accepted += 1
            else:
                refused_quota += ack.reason.startswith("quota")
            del i
        # Malformed protobufs on every RPC.
        channel = grpc.insecure_channel(address)
        for i in range(args.malformed):
            method = sorted(RPC_SHAPES)[i % len(RPC_SHAPES)]
            raw_call(channel, method, [b"\xff\xff\xff"], timeout=2)
        for _ in range(20):
            try:
                target.Health(pot_pb2.HealthRequest(), timeout=2)
            except grpc.RpcError:
                health_failures += 1
        flood_s = time.monotonic() - started
    finally:
        pinger.stop.set()
        pinger.join(timeout=60)
        for call in held:
            call.cancel()
    time.sleep(2)
    sampling.set()
    after_rss = rss_mb(pid)
    summary: dict[str, object] = {
        "streams_per_validator": 2 * args.streams,
        "big_bad_frames_8mib": args.big,
        "uploads_unsigned": args.uploads,
        "uploads_signed": args.uploads,
        "malformed": args.malformed,
        "flood_s": round(flood_s, 1),
        "rss_mb_before": round(before["rss_mb"], 1),
        "rss_mb_peak": round(max(peak), 1),
        "rss_mb_after": round(after_rss, 1),
        "unsigned_refused": refused_unsigned,
        "signed_accepted": accepted,
        "signed_refused_by_quota": refused_quota,
        "payload_store_mb": round(directory_bytes(payload_dir) / MIB, 1),
        "payload_quota_mb": QUOTA_MB,
        "log_growth_bytes": log_file.stat().st_size - before["log_bytes"],
        "pings_during_flood": len(pinger.latencies),
        "ping_failures": pinger.failures,
        "ping_p50_ms": round(1000 * statistics.median(pinger.latencies), 1)
        if pinger.latencies
        else None,
        "ping_max_ms": round(1000 * max(pinger.latencies), 1)
        if pinger.latencies
        else None,
        "health_failures": health_failures,
    }
    client.close()
    stop_all(processes)
    summary["exit_codes"] = [p.returncode for p in processes.values()]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--big", type=int, default=60)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--malformed", type=int, default=5000)
    parser.add_argument(
        "--json-out",
        type=Path,
        default=ROOT / "benchmarks/results/flood_validator.json",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pot-flood-") as tmp:
        summary = flood(args, Path(tmp) / "committee")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
