"""Validators as real processes: `pot committee up --local 4`, kills and restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flower_support import RUN_ID, LocalGrid, Net, make_plain_app
from flwr.app import ArrayRecord, ConfigRecord, Message

from pot_flower.audit import audit_ledger
from pot_flower.clients import pot_mod
from pot_flower.ops.local import running, start, wait_healthy
from pot_flower.strategies import PoTStrategy
from pot_flower.validator.ledger import Ledger


def committee_up(directory: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pot_flower",
            "committee",
            "up",
            "--local",
            "4",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "committee of 4 up" in line, line
    return process


def validator_pids(directory: Path) -> dict[int, int]:
    """PIDs of this committee's validator processes (children of `committee up`)."""
    pids = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"validator" in argv and str(directory / "committee.toml").encode() in argv:
            pids[int(argv[argv.index(b"--id") + 1])] = int(proc.name)
    return pids


def test_kill_a_validator_mid_run_restart_it_and_ledgers_agree(tmp_path: Path) -> None:
    directory = tmp_path / "committee"
    up = committee_up(directory)
    restarted: dict[int, subprocess.Popen[bytes]] = {}
    try:
        pids = validator_pids(directory)
        assert sorted(pids) == [0, 1, 2, 3]
        killed: list[int] = []

        def kill_after_round_one(node: int, reply: Message) -> Message:
            if not killed and reply.metadata.message_type == "train":
                os.kill(pids[2], signal.SIGKILL)  # mid-round: replies still coming
                killed.append(2)
            return reply

        strategy = PoTStrategy(
            min_available_nodes=4, committee_file=directory / "committee.toml"
        )
        grid = LocalGrid(
            make_plain_app(mods=[pot_mod]),
            4,
            run_config={"pot-keystore": str(tmp_path / "keys")},
            tamper=kill_after_round_one,
        )
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(Net().state_dict()),
            num_rounds=3,
            train_config=ConfigRecord({"lr": 0.1}),
        )
        assert [r.accepted for r in strategy.history] == [4, 4, 4]
        # The killed validator restarts from its records and catches up.
        restarted = start(directory / "committee.toml", [2])
        assert wait_healthy(directory / "committee.toml", [2])
        ledger_dirs = [
            directory / f"validator-{i}" / "chains" / f"run-{RUN_ID}" for i in range(4)
        ]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            heights = [
                Ledger(d).head_height() if d.exists() else -1 for d in ledger_dirs
            ]
            if heights == [3, 3, 3, 3]:
                break
            time.sleep(0.5)
        assert heights == [3, 3, 3, 3], heights
        bodies = [[b.body for b in Ledger(d).blocks()] for d in ledger_dirs]
        assert bodies[0] == bodies[1] == bodies[2] == bodies[3]
        for d in ledger_dirs[:2] + ledger_dirs[3:]:
            report = audit_ledger(d)
            assert report.ok, report.problem
        restarted[2].send_signal(signal.SIGTERM)
        assert restarted[2].wait(timeout=15) == 0
    finally:
        for process in restarted.values():  # by PID, whatever happened above
            if process.poll() is None:
                process.kill()
                process.wait()
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
    assert validator_pids(directory) == {}


def test_mutual_tls_committee_serves_the_strategy_and_refuses_strangers(
    tmp_path: Path,
) -> None:
    import grpc

    from pot_flower.ops.committee_file import load_committee
    from pot_flower.ops.local import prepare
    from pot_flower.transport import pot_pb2, pot_pb2_grpc
    from pot_flower.transport.channels import open_channel

    path = prepare(4, tmp_path / "tls-committee", tls=True)
    with running(path) as processes:
        strategy = PoTStrategy(min_available_nodes=2, committee_file=path)
        grid = LocalGrid(
            make_plain_app(mods=[pot_mod]),
            2,
            run_config={"pot-keystore": str(tmp_path / "keys")},
        )
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(Net().state_dict()),
            num_rounds=1,
            train_config=ConfigRecord({"lr": 0.1}),
        )
        assert strategy.history[0].accepted == 2
        address = load_committee(path).addresses[0]
        for credentials in (None, grpc.ssl_channel_credentials()):
            channel = open_channel(address, credentials)
            stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
            try:
                stub.Health(pot_pb2.HealthRequest(), timeout=3)
                raise AssertionError("a client without a committee certificate got in")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                channel.close()
    assert all(p.returncode == 0 for p in processes.values())  # clean SIGTERM exits
    assert "mutual TLS" in (path.parent / "validator-0" / "validator.log").read_text()


def test_killing_the_primary_costs_one_view_change(tmp_path: Path) -> None:
    import hashlib

    import numpy as np

    from pot_flower.committee.remote import RemoteCommittee
    from pot_flower.ops.committee_file import load_committee, read_key
    from pot_flower.protocol.batch import SubmissionRef
    from pot_flower.protocol.fixedpoint import max_norm_units
    from pot_flower.protocol.submission import build_submission
    from pot_flower.zk.signatures import SigningKey

    directory = tmp_path / "committee"
    up = committee_up(directory)
    try:
        committee_file = load_committee(directory / "committee.toml")
        config = committee_file.config
        model = {"w": np.zeros(100, np.float32)}
        remote = RemoteCommittee(
            config,
            committee_file.addresses,
            "coordinator",
            read_key(directory / "coordinator.key"),
            run=9,
            model=model,
            norm_bound_units=max_norm_units(10.0),
        )

        def one_round() -> float:
            ticket = remote.ticket()
            current = remote.model
            sub = build_submission(
                SigningKey.from_seed(b"m"),
                run=9,
                round_=ticket.round,
                node=1,
                nonce=ticket.nonce,
                received=current,
                returned={"w": current["w"] + np.float32(0.01)},
                num_examples=5,
            )
            digest = hashlib.sha256(sub.payload).digest()
            started = time.monotonic()
            remote.certify_round(
                [SubmissionRef(1, sub.envelope_bytes, sub.signature, digest)],
                {digest: sub.payload},
            )
            return time.monotonic() - started

        one_round()
        os.kill(validator_pids(directory)[0], signal.SIGKILL)  # primary of view 0
        elapsed = one_round()
        remote.close()
        budget = (
            2 * config.view_change_timeout_ms / 1000 + config.request_timeout_ms / 1000
        )
        print(f"round after killing the primary: {elapsed:.2f} s (budget {budget} s)")
        assert elapsed < budget, (elapsed, budget)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
