"""Validator processes killed, restarted, stalled and stopped at awkward moments."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import grpc
from process_support import ProcessCommittee

from pot_flower.audit import audit_ledger
from pot_flower.ops.local import stop_all
from pot_flower.transport import pot_pb2, pot_pb2_grpc
from pot_flower.transport.channels import open_channel

CAUGHT_UP = "ledger caught up"
CATCHING_UP = "catching up the ledger"


def wait_for_log(c: ProcessCommittee, vid: int, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in c.log(vid):
            return True
        time.sleep(0.02)
    return False


def test_a_backup_that_missed_a_checkpoint_catches_up_by_state_transfer(
    tmp_path: Path,
) -> None:
    c = ProcessCommittee(tmp_path / "committee")
    try:
        c.round()
        c.kill(3)
        c.round()
        c.pings(12)  # beyond a checkpoint interval: the others collect their log
        c.round()
        c.restart(3)
        assert c.round() == 4
        assert c.wait_converged(4) == [4] * 4
        c.ledgers_agree()
        log = c.log(3)
        assert CATCHING_UP in log and CAUGHT_UP in log  # it went through transfer
        health = [c.remote._client.health(v) for v in range(4)]
        assert [h.status for h in health] == ["serving"] * 4
        assert len({h.last_executed for h in health}) == 1
        # The spare is back: the committee survives losing its primary now.
        primary = health[0].view % 4
        c.kill(primary)
        config = c.committee.config
        budget = 2 * config.view_change_timeout_ms / 1000 + 1.0
        started = time.monotonic()
        c.round()
        assert time.monotonic() - started < budget
    finally:
        c.close()


def test_killed_during_state_transfer_it_resumes_from_a_verified_prefix(
    tmp_path: Path,
) -> None:
    c = ProcessCommittee(tmp_path / "committee")
    try:
        c.round()
        c.kill(3)
        for _ in range(4):
            c.round()
        c.pings(12)
        # Two peers frozen: every request to them costs validator 3 a deadline,
        # so its catch-up is slow enough to be killed in the middle.
        c.pause(1)
        c.pause(2)
        c.restart(3)
        assert wait_for_log(c, 3, CATCHING_UP, timeout=30)
        c.kill(3)
        assert CAUGHT_UP not in c.log(3)
        partial = audit_ledger(c.ledger_dir(3))
        assert partial.ok, partial.problem  # whatever it appended is verified
        assert partial.blocks <= 5
        c.resume(1)
        c.resume(2)
        c.restart(3)
        assert c.round() == 6
        assert c.wait_converged(6) == [6] * 4
        c.ledgers_agree()
        assert CAUGHT_UP in c.log(3)
    finally:
        c.close()


def test_a_failed_replica_is_reported_and_the_validator_exits_non_zero(
    tmp_path: Path,
) -> None:
    c = ProcessCommittee(tmp_path / "committee")
    try:
        c.round()
        # Damage validator 2's ledger under it: its next append cannot succeed.
        with sqlite3.connect(c.ledger_dir(2) / "ledger.sqlite") as db:
            db.execute(
                "INSERT INTO blocks (height, hash, body) VALUES (2, ?, ?)",
                (b"\x01" * 32, b"not a block"),
            )
        c.round()  # the other three carry on
        deadline = time.monotonic() + 20
        while c.processes[2].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.processes[2].returncode == 3
        assert '"level": "error"' in c.log(2) and "replica failed" in c.log(2)
    finally:
        c.close()


def test_validators_stop_within_ten_seconds_whatever_clients_do(
    tmp_path: Path,
) -> None:
    c = ProcessCommittee(tmp_path / "committee")
    held = []
    try:
        c.round()
        for vid, address in c.committee.addresses.items():
            channel = grpc.insecure_channel(address)
            for method in ("Link", "PutPayload"):
                raw = channel.stream_unary(
                    f"/pot.v1.Validator/{method}",
                    request_serializer=lambda b: b,
                    response_deserializer=lambda b: b,
                )
                try:
                    raw(iter([b"\xff\xff\xff"]), timeout=5)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
            stub = pot_pb2_grpc.ValidatorStub(open_channel(address))  # type: ignore[no-untyped-call]
            for _ in range(20):
                held.append(stub.Replies(pot_pb2.Subscribe(client="coordinator")))
            del vid
        c.remote.close()
        started = time.monotonic()
        for process in c.processes.values():
            process.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=12) for p in c.processes.values()]
        assert time.monotonic() - started < 10
        assert codes == [0] * 4
    finally:
        for call in held:
            call.cancel()
        stop_all(c.processes)


def test_a_second_process_for_one_validator_refuses_to_start(tmp_path: Path) -> None:
    # Two processes as one validator would write the same records and sign
    # conflicting votes with one key: neither the data directory nor the port
    # may be shared (gRPC lets two servers share a port by default).
    import subprocess
    import sys

    c = ProcessCommittee(tmp_path / "committee")
    try:
        command = [
            *(sys.executable, "-m", "pot_flower", "validator", "run"),
            *("--config", str(c.path), "--id", "1"),
        ]
        for extra in ([], ["--data", str(tmp_path / "elsewhere")]):
            done = subprocess.run(
                command + extra, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 2, done.stderr[-500:]
            assert "in use" in done.stderr.splitlines()[-1]
        assert c.round() == 1  # the real validator 1 never noticed
    finally:
        c.close()
