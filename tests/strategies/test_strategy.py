"""PoTStrategy with Flower's own Message/Context/mod machinery (offline grid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flower_support import BatchNormNet, LocalGrid, Net, make_plain_app
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from typer.testing import CliRunner

from pot_flower.audit import audit_ledger
from pot_flower.cli import app
from pot_flower.clients import Keystore, PoTClientApp, pot_mod
from pot_flower.keystore import miner_name
from pot_flower.protocol.reasons import Reason
from pot_flower.strategies import PoTStrategy, RoundReport


def start(
    tmp_path: Path,
    app: object,
    *,
    rounds: int = 2,
    nodes: int = 5,
    tamper: object = None,
    net: type[Net] = Net,
    miner_name: str = "node-id",
    **strategy_kwargs: object,
) -> tuple[PoTStrategy, object, LocalGrid]:
    grid = LocalGrid(
        app,  # type: ignore[arg-type]
        nodes,
        run_config={
            "pot-keystore": str(tmp_path / "keys"),
            "pot-miner-name": miner_name,
        },
        tamper=tamper,  # type: ignore[arg-type]
    )
    reports: list[RoundReport] = []
    strategy = PoTStrategy(
        ledger_dir=tmp_path / "ledger",
        min_available_nodes=nodes,
        on_round=reports.append,
        **strategy_kwargs,  # type: ignore[arg-type]
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(net().state_dict()),
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": 0.1}),
        evaluate_fn=lambda r, arrays: MetricRecord({"round": r}),
    )
    assert [r.round for r in reports] == list(range(1, rounds + 1))
    return strategy, result, grid


def ledgers_verify(tmp_path: Path) -> None:
    for i in range(4):
        report = audit_ledger(tmp_path / "ledger" / f"validator-{i}")
        assert report.ok, report.problem


def test_plain_torch_clientapp_with_only_pot_mod_added(tmp_path: Path) -> None:
    strategy, result, grid = start(tmp_path, make_plain_app(mods=[pot_mod]))
    assert all(r.accepted == 5 and r.rejected == 0 for r in strategy.history)
    assert result.train_metrics_clientapp[2]["pot-accepted"] == 5
    # Federated evaluation ran and was aggregated.
    assert 0.0 <= result.evaluate_metrics_clientapp[2]["accuracy"] <= 1.0
    # Centralized evaluation saw every round.
    assert sorted(result.evaluate_metrics_serverapp) == [0, 1, 2]
    # The returned model is the certified one: it differs from the initial model.
    initial = ArrayRecord(Net().state_dict())
    assert not np.array_equal(
        result.arrays["fc1.weight"].numpy(), initial["fc1.weight"].numpy()
    )
    # Per-miner messages: each carries the same round nonce, its own destination.
    train = [m for m in grid.sent if m.metadata.message_type == "train"]
    assert len({m.metadata.dst_node_id for m in train[:5]}) == 5
    assert len({m.content["pot.ticket"]["nonce"] for m in train[:5]}) == 1
    ledgers_verify(tmp_path)
    keys = sorted(p.name for p in (tmp_path / "keys").glob("miner-*.key"))
    assert len(keys) == 5


def test_existing_clientapp_wrapped_without_editing_it(tmp_path: Path) -> None:
    strategy, _, _ = start(tmp_path, PoTClientApp(make_plain_app()))
    assert [r.accepted for r in strategy.history] == [5, 5]
    ledgers_verify(tmp_path)


def test_without_pot_mod_every_reply_is_rejected_not_crashed(tmp_path: Path) -> None:
    strategy, result, _ = start(tmp_path, make_plain_app())
    assert all(r.accepted == 0 for r in strategy.history)
    assert strategy.history[0].reasons == {"missing-signature": 5}
    # The model stays the initial one; the run still finishes and verifies.
    initial = ArrayRecord(Net().state_dict())
    assert np.array_equal(
        result.arrays["fc1.weight"].numpy(), initial["fc1.weight"].numpy()
    )
    ledgers_verify(tmp_path)


def test_tampered_and_failed_replies_become_verdicts(tmp_path: Path) -> None:
    def tamper(node: int, reply: Message) -> Message:
        if reply.metadata.message_type != "train":
            return reply
        if node == 1000:  # a coordinator rewriting an update
            arrays = reply.content["arrays"]
            weight = arrays["fc2.bias"].numpy() + 1.0
            arrays["fc2.bias"] = Array(weight.astype(np.float32))
        elif node == 1007:  # a NaN update (signed by the miner, then poisoned)
            arrays = reply.content["arrays"]
            arrays["fc2.bias"] = Array(np.full(10, np.nan, np.float32))
        elif node == 1014:  # a reply without arrays at all
            del reply.content["arrays"]
        return reply

    strategy, _, _ = start(tmp_path, make_plain_app(mods=[pot_mod]), tamper=tamper)
    first = strategy.history[0]
    assert first.accepted == 2
    assert first.reasons == {
        "commitment-mismatch": 1,
        "non-finite": 1,
        "malformed-update": 1,
    }
    verdicts = first.verdicts()
    assert verdicts[1000] == Reason.COMMITMENT_MISMATCH
    assert verdicts[1007] == Reason.NON_FINITE
    assert verdicts[1014] == Reason.MALFORMED_UPDATE
    assert sorted(n for n, r in verdicts.items() if r is None) == [1021, 1028]
    ledgers_verify(tmp_path)


def test_allow_list_admits_only_listed_miners(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path / "keys")
    allowed = tmp_path / "miners.txt"
    listed = [1000, 1007]
    allowed.write_text(
        "# miners\n"
        + "".join(
            keystore.miner_key(str(n)).verify_key.raw.hex() + "\n" for n in listed
        )
    )
    strategy, _, _ = start(
        tmp_path,
        make_plain_app(mods=[pot_mod]),
        registration="allow-list",
        allowed_miners=str(allowed),
    )
    assert strategy.history[0].accepted == 2
    assert strategy.history[0].reasons == {"unknown-miner": 3}


def keys_miners(keystore: Path, count: int, allow_list: Path) -> None:
    """``pot keys miners KEYSTORE --count N --allow-list FILE``."""
    args = [str(keystore), "--count", str(count), "--allow-list", str(allow_list)]
    made = CliRunner().invoke(app, ["keys", "miners", *args])
    assert made.exit_code == 0, made.output


def test_a_federation_registered_before_it_starts(tmp_path: Path) -> None:
    # `pot keys miners` makes partition-0..N-1's keys and their allow-list; the
    # nodes sign with the key of their partition id, whatever node id they drew.
    allowed = tmp_path / "miners.txt"
    keys_miners(tmp_path / "keys", 4, allowed)
    assert len(allowed.read_text().splitlines()) == 4
    strategy, _, _ = start(
        tmp_path,
        make_plain_app(mods=[pot_mod]),
        miner_name="partition-id",
        registration="allow-list",
        allowed_miners=str(allowed),
    )
    # Partitions 0..3 are listed, partition 4 is not.
    assert [r.accepted for r in strategy.history] == [4, 4]
    assert strategy.history[0].reasons == {"unknown-miner": 1}
    keys_miners(tmp_path / "keys", 4, tmp_path / "again.txt")
    assert (tmp_path / "again.txt").read_text() == allowed.read_text()  # keys kept
    ledgers_verify(tmp_path)


def test_miner_names_are_checked_before_any_round() -> None:
    with pytest.raises(ValueError, match="pot-miner-name"):
        PoTStrategy.from_run_config({"pot-miner-name": "hostname"})
    assert miner_name("partition-id", 7, {"partition-id": 3}) == "partition-3"
    assert miner_name("node-id", 7, {"partition-id": 3}) == "7"
    for config in (
        {},
        {"partition-id": -1},
        {"partition-id": True},
        {"partition-id": "3"},
    ):
        with pytest.raises(ValueError, match="partition-id"):
            miner_name("partition-id", 7, config)  # type: ignore[arg-type]


def test_settings_from_run_config() -> None:
    strategy = PoTStrategy.from_run_config(
        {
            "fraction-train": 0.5,
            "pot-validators": 7,
            "pot-max-update-norm": 3.5,
            "pot-emission": 10,
            "pot-ledger-dir": "",
            "unrelated": "x",
        }
    )
    assert strategy.fraction_train == 0.5
    assert strategy.validators == 7
    assert strategy.max_update_norm == 3.5
    assert strategy.emission == 10
    assert strategy.ledger_dir is None
    keystore = PoTStrategy.from_run_config({"pot-keystore": "/k"})  # a miners' key
    assert keystore.validators == 4
    with pytest.raises(ValueError, match="pot-validatros") as typo:
        PoTStrategy.from_run_config({"pot-validatros": 7, "pot-emission": 1})
    assert "valid: " in str(typo.value) and "pot-validators" in str(typo.value)
    with pytest.raises(ValueError, match="allow-list"):
        PoTStrategy(registration="allow-list")
    with pytest.raises(ValueError, match="norm bound"):
        PoTStrategy(max_update_norm=1e9)


def test_a_miner_whose_training_diverges_gets_a_signed_non_finite_verdict(
    tmp_path: Path,
) -> None:
    def diverge(msg: Message, ctxt: object, call_next: object) -> Message:
        reply = call_next(msg, ctxt)  # type: ignore[operator]
        if msg.metadata.message_type == "train" and msg.metadata.dst_node_id == 1007:
            reply.content["arrays"]["fc2.bias"] = Array(np.full(10, np.inf, np.float32))
        return reply

    strategy, _, _ = start(tmp_path, make_plain_app(mods=[pot_mod, diverge]))
    assert strategy.history[0].reasons == {"non-finite": 1}
    assert strategy.history[0].accepted == 4
    ledgers_verify(tmp_path)


def test_batchnorm_buffers_and_counters_are_aggregated(tmp_path: Path) -> None:
    app = make_plain_app(mods=[pot_mod], net=BatchNormNet)
    strategy, result, _ = start(tmp_path, app, net=BatchNormNet)
    assert [r.accepted for r in strategy.history] == [5, 5]
    counter = result.arrays["bn.num_batches_tracked"].numpy()
    assert counter.shape == () and counter.dtype == np.int64
    assert int(counter) == 8  # 4 batches per round, averaged over miners, 2 rounds
    assert np.all(result.arrays["bn.running_var"].numpy() != 1.0)
    ledgers_verify(tmp_path)


def test_replies_with_reordered_keys_are_accepted(tmp_path: Path) -> None:
    def reorder(msg: Message, ctxt: object, call_next: object) -> Message:
        reply = call_next(msg, ctxt)  # type: ignore[operator]
        if msg.metadata.message_type == "train":
            arrays = reply.content["arrays"]
            reply.content["arrays"] = ArrayRecord(
                {k: arrays[k] for k in reversed(list(arrays.keys()))}
            )
        return reply

    strategy, _, _ = start(tmp_path, make_plain_app(mods=[pot_mod, reorder]))
    assert [r.accepted for r in strategy.history] == [5, 5]


def test_every_pot_key_is_listed_in_the_quickstart_config() -> None:
    import tomllib

    from pot_flower.protocol.records import CLIENT_KEYS
    from pot_flower.strategies.pot_strategy import RUN_CONFIG_KEYS

    app = Path(__file__).resolve().parents[2] / "examples/quickstart-pytorch"
    config = tomllib.loads((app / "pyproject.toml").read_text())
    listed = set(config["tool"]["flwr"]["app"]["config"])
    wanted = {k for k in RUN_CONFIG_KEYS if k.startswith("pot-")} | set(CLIENT_KEYS)
    assert wanted <= listed, sorted(wanted - listed)
    # And the quickstart's values are accepted as they stand.
    PoTStrategy.from_run_config(
        {
            k: v
            for k, v in config["tool"]["flwr"]["app"]["config"].items()
            if k in wanted
        }
    )


def test_a_round_lets_go_of_the_replies_arrays_once_the_payloads_hold_them(
    tmp_path: Path,
) -> None:
    replies: list[Message] = []

    def keep(node: int, reply: Message) -> Message:
        replies.append(reply)
        return reply

    strategy, _, _ = start(tmp_path, make_plain_app(mods=[pot_mod]), tamper=keep)
    train = [r for r in replies if r.metadata.message_type == "train"]
    assert len(train) == 10 and all(r.accepted == 5 for r in strategy.history)
    assert all(not r.content.array_records for r in train)
    assert all(r.content.metric_records for r in train)  # metrics are aggregated
