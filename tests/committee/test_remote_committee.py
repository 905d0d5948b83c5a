"""PoTStrategy with a remote committee: 4 validator services over real gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flower_support import RUN_ID, LocalGrid, Net, make_plain_app
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp.strategy import Result

from pot_flower.audit import audit_ledger
from pot_flower.clients import pot_mod
from pot_flower.committee.remote import RemoteCommittee
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.ops.superlink import free_port
from pot_flower.protocol.block import parse_block
from pot_flower.protocol.certificate import BlsKey, Certificate, CertificateKind
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.model import Arrays
from pot_flower.strategies import PoTStrategy
from pot_flower.transport.node import ValidatorNode
from pot_flower.validator.chains import Chains
from pot_flower.validator.ledger import Ledger
from pot_flower.validator.payloads import PayloadStore
from pot_flower.validator.replica_store import RecordStore
from pot_flower.zk.signatures import SigningKey

N = 4
KEYS = [SigningKey.from_seed(b"remote-validator-%d" % i) for i in range(N)]
COORDINATOR = SigningKey.from_seed(b"remote-coordinator")
NOISE_KEY = bytes(range(32))
BLS_KEYS = tuple(BlsKey.of(k) for k in KEYS)  # as the committee file lists them


def start_nodes(
    tmp_path: Path, noise_keys: list[bytes | None] | None = None
) -> Iterator[tuple[CommitteeConfig, dict[int, str]]]:
    """N validator nodes over gRPC on loopback (``noise_keys``: each one's)."""
    config = CommitteeConfig(
        replicas=tuple(k.verify_key for k in KEYS),
        clients={"coordinator": COORDINATOR.verify_key},
    )
    addresses = {i: f"127.0.0.1:{free_port()}" for i in range(N)}
    nodes = []
    for i in range(N):
        home = tmp_path / f"v{i}"
        service = Chains(
            home / "chains",
            tuple(k.verify_key.raw for k in KEYS),
            config.quorum,
            PayloadStore(home / "payloads"),
            noise_key=None if noise_keys is None else noise_keys[i],
            bls=BLS_KEYS,
        )
        node = ValidatorNode(
            config,
            i,
            KEYS[i],
            service,
            addresses,
            store=RecordStore(home / "consensus.sqlite"),
            service=service,
        )
        node.start()
        nodes.append(node)
    yield config, addresses
    for node in nodes:
        node.stop(grace=0.1)


@pytest.fixture
def committee(tmp_path: Path) -> Iterator[tuple[CommitteeConfig, dict[int, str]]]:
    yield from start_nodes(tmp_path)


@pytest.fixture
def private_committee(
    tmp_path: Path,
) -> Iterator[tuple[CommitteeConfig, dict[int, str]]]:
    # Validator 3 holds no noise key: a faulty validator the quorum tolerates.
    yield from start_nodes(tmp_path, [NOISE_KEY, NOISE_KEY, NOISE_KEY, None])


def run_remote(
    tmp_path: Path,
    committee: tuple[CommitteeConfig, dict[int, str]],
    rounds: int,
    **strategy_kwargs: object,
) -> tuple[PoTStrategy, Result]:
    """A PoTStrategy run on 4 in-process nodes against the remote ``committee``."""
    config, addresses = committee

    def remote(run_id: int, model: Arrays) -> RemoteCommittee:
        return RemoteCommittee(
            config,
            addresses,
            "coordinator",
            COORDINATOR,
            run=run_id,
            model=model,
            norm_bound_units=strategy.norm_bound_units,
            robust=strategy.robust,
            privacy=strategy.privacy,
            commitment=strategy.commitment,
            bls=BLS_KEYS if strategy.certificate == CertificateKind.BLS else (),
            commit_reveal=strategy.commit_reveal,
        )

    strategy = PoTStrategy(
        min_available_nodes=4,
        committee=remote,
        **strategy_kwargs,  # type: ignore[arg-type]
    )
    grid = LocalGrid(
        make_plain_app(mods=[pot_mod]),
        4,
        run_config={"pot-keystore": str(tmp_path / "k")},
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(Net().state_dict()),
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": 0.1}),
    )
    return strategy, result


@pytest.mark.parametrize(
    "adaptive",
    [{}, {"dp_adaptive_clipping": True, "dp_clipped_count_stddev": 1.0}],
    ids=["fixed", "adaptive"],
)
def test_a_dp_run_against_remote_validators_agrees_on_the_noise(
    tmp_path: Path,
    private_committee: tuple[CommitteeConfig, dict[int, str]],
    adaptive: dict[str, object],
) -> None:
    strategy, _ = run_remote(
        tmp_path,
        private_committee,
        rounds=2,
        fraction_evaluate=0.0,
        dp="central",
        dp_clip_norm=0.5,
        **adaptive,
    )
    assert [r.accepted for r in strategy.history] == [4, 4]
    steps = [r.clipping for r in strategy.history]
    assert all(step is not None for step in steps) == bool(adaptive)
    keyed = []
    for i in range(3):
        ledger_dir = tmp_path / f"v{i}" / "chains" / f"run-{RUN_ID}"
        report = audit_ledger(ledger_dir)
        assert report.ok, report.problem
        keyed.append([b.body for b in Ledger(ledger_dir).blocks()])
    assert keyed[0] == keyed[1] == keyed[2] and len(keyed[0]) == 3
    # The keyless validator could open the chain but execute no DP round.
    keyless = Ledger(tmp_path / "v3" / "chains" / f"run-{RUN_ID}")
    assert keyless.head_height() == 0


@pytest.mark.parametrize(
    "setting",
    [
        {},
        {"commitment": "pedersen"},
        {"certificate": "bls"},
        {"commit_reveal": True, "commitment": "pedersen"},
    ],
    ids=["hash", "pedersen", "bls-certificates", "commit-reveal"],
)
def test_strategy_runs_against_a_remote_committee(
    tmp_path: Path,
    committee: tuple[CommitteeConfig, dict[int, str]],
    setting: dict[str, object],
) -> None:
    strategy, result = run_remote(tmp_path, committee, rounds=3, **setting)
    assert [r.accepted for r in strategy.history] == [4, 4, 4]
    assert result.train_metrics_clientapp[3]["pot-accepted"] == 4
    bodies = []
    for i in range(N):
        ledger_dir = tmp_path / f"v{i}" / "chains" / f"run-{RUN_ID}"
        report = audit_ledger(ledger_dir)
        assert report.ok, report.problem
        assert report.blocks == 4
        blocks = list(Ledger(ledger_dir).blocks())
        bodies.append([b.body for b in blocks])
        kinds = {Certificate.from_bytes(b.certificate or b"").kind for b in blocks}
        assert kinds == {CertificateKind(str(setting.get("certificate", "ed25519")))}
        if setting.get("commit_reveal"):
            rounds = [parse_block(b.body) for b in blocks[1:]]
            assert all(len(r.sealed.seals.seals) == 4 for r in rounds)  # type: ignore[union-attr]
    assert bodies[0] == bodies[1] == bodies[2] == bodies[3]


def test_a_killed_serverapp_run_resumes_from_the_last_certified_round(
    tmp_path: Path, committee: tuple[CommitteeConfig, dict[int, str]]
) -> None:
    config, addresses = committee

    def remote_factory(resume: bool):  # type: ignore[no-untyped-def]
        def make(run_id: int, model: Arrays) -> RemoteCommittee:
            return RemoteCommittee(
                config,
                addresses,
                "coordinator",
                COORDINATOR,
                run=run_id,
                model=model,
                norm_bound_units=max_norm_units(100.0),
                resume=resume,
            )

        return make

    class Killed(Exception):
        pass

    def die_in_round_three(node: int, reply: Message) -> Message:
        if reply.metadata.message_type == "train":
            train_replies.append(node)
            if len(train_replies) > 6:  # 3 nodes, rounds 1 and 2 done
                raise Killed
        return reply

    train_replies: list[int] = []
    run_config = {"pot-keystore": str(tmp_path / "k")}
    first = PoTStrategy(min_available_nodes=3, committee=remote_factory(False))
    grid = LocalGrid(
        make_plain_app(mods=[pot_mod]),
        3,
        run_config=run_config,
        tamper=die_in_round_three,
    )
    with pytest.raises(Killed):
        first.start(
            grid=grid,
            initial_arrays=ArrayRecord(Net().state_dict()),
            num_rounds=4,
            train_config=ConfigRecord({"lr": 0.1}),
        )
    assert [r.round for r in first.history] == [1, 2]

    second = PoTStrategy(
        min_available_nodes=3, resume_run=RUN_ID, committee=remote_factory(True)
    )
    grid = LocalGrid(make_plain_app(mods=[pot_mod]), 3, run_config=run_config)
    result = second.start(
        grid=grid,
        initial_arrays=ArrayRecord(Net().state_dict()),  # ignored: chain's model wins
        num_rounds=4,
        train_config=ConfigRecord({"lr": 0.1}),
    )
    assert [r.round for r in second.history] == [3, 4]
    assert [r.accepted for r in second.history] == [3, 3]
    assert sorted(result.train_metrics_clientapp) == [1, 2]  # Flower's own numbering
    for i in range(N):
        ledger_dir = tmp_path / f"v{i}" / "chains" / f"run-{RUN_ID}"
        report = audit_ledger(ledger_dir)
        assert report.ok, report.problem
        assert [b.height for b in Ledger(ledger_dir).blocks()] == [0, 1, 2, 3, 4]


def test_a_validator_signs_a_receipt_only_for_payloads_it_holds(
    committee: tuple[CommitteeConfig, dict[int, str]],
) -> None:
    import hashlib

    import grpc

    from pot_flower.transport import pot_pb2, pot_pb2_grpc
    from pot_flower.transport.channels import open_channel
    from pot_flower.transport.server import MAX_HELD_DIGESTS
    from pot_flower.transport.uploads import first_chunk
    from pot_flower.validator.availability import DOMAIN, receipt_message

    config, addresses = committee
    channel = open_channel(addresses[2])
    stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
    data = b"an update"
    digest = hashlib.sha256(data).digest()
    other = hashlib.sha256(b"never uploaded").digest()
    reply = stub.Holds(pot_pb2.HoldsRequest(digests=[digest, other]), timeout=5)
    assert not reply.receipt and set(reply.missing) == {digest, other}
    unsigned = [pot_pb2.Chunk(digest=digest, data=data)]
    refused = stub.PutPayload(iter(unsigned), timeout=5)
    assert not refused.accepted and "not a coordinator" in refused.reason
    ticket = first_chunk(COORDINATOR, "coordinator", 1, 1, digest, len(data))
    chunks = [ticket, pot_pb2.Chunk(data=data)]
    assert stub.PutPayload(iter(chunks), timeout=5).accepted
    reply = stub.Holds(pot_pb2.HoldsRequest(digests=[digest]), timeout=5)
    assert not reply.missing
    assert config.replicas[2].verify(DOMAIN, receipt_message([digest]), reply.receipt)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Holds(
            pot_pb2.HoldsRequest(digests=[digest] * (MAX_HELD_DIGESTS + 1)), timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()
