"""Local DP on miners: Opacus DP-SGD across rounds, its epsilon signed and recorded."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from flower_support import LocalGrid, Net, set_task_identity, synthetic_partition
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pot_flower.audit import audit_ledger, read_blocks
from pot_flower.clients import DpSgd, pot_mod
from pot_flower.clients.pot_mod import _local_dp
from pot_flower.protocol.block import RoundBlock, parse_block
from pot_flower.strategies import PoTStrategy

ROUNDS = 3


def train_privately(dp: DpSgd, model: Net, context: Context, partition: int) -> int:
    """One local epoch of DP-SGD on ``partition``; the examples it holds."""
    x, y = synthetic_partition(partition)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    private, optimizer, loader = dp.make_private(model, optimizer, loader, context)
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(private(xb), yb).backward()
        optimizer.step()
    return len(x)


def private_app(dp: DpSgd) -> ClientApp:
    """A quickstart-style ClientApp training with DP-SGD (and pot_mod)."""
    app = ClientApp(mods=[pot_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        torch.manual_seed(0)
        model = Net()
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        partition = int(context.node_config["partition-id"])
        examples = train_privately(dp, model, context, partition)
        metrics = {"num-examples": examples, **dp.metrics(context)}
        content = RecordDict(
            {
                "arrays": ArrayRecord(model.state_dict()),
                "metrics": MetricRecord(metrics),  # type: ignore[arg-type]
            }
        )
        return Message(content=content, reply_to=msg)

    return app


def test_the_budget_is_spent_over_the_rounds_and_not_exceeded() -> None:
    set_task_identity()
    dp = DpSgd(target_epsilon=2.0, target_delta=1e-5, rounds=ROUNDS)
    context = Context(
        run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={}
    )
    spent = []
    for _ in range(ROUNDS):
        train_privately(dp, Net(), context, 0)
        spent.append(dp.metrics(context)["dp-epsilon"])
    assert spent == sorted(spent) and len(set(spent)) == ROUNDS
    # Poisson batches vary in number; the solved sigma spends close to the target.
    assert 1.5 < spent[-1] <= 2.0 * 1.05
    with pytest.raises(RuntimeError, match="budget spent"):
        spent_dp = DpSgd(target_epsilon=spent[-1] * 0.9, target_delta=1e-5, rounds=1)
        train_privately(spent_dp, Net(), context, 0)


def test_the_miners_epsilon_is_signed_and_recorded(tmp_path: Path) -> None:
    dp = DpSgd(target_epsilon=4.0, target_delta=1e-5, rounds=2)
    grid = LocalGrid(
        private_app(dp), 3, run_config={"pot-keystore": str(tmp_path / "keys")}
    )
    strategy = PoTStrategy(
        ledger_dir=tmp_path / "ledger", min_available_nodes=3, fraction_evaluate=0.0
    )
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(Net().state_dict()),
        num_rounds=2,
        train_config=ConfigRecord({"lr": 0.1}),
    )
    assert [r.accepted for r in strategy.history] == [3, 3]
    path = tmp_path / "ledger" / "validator-0"
    blocks = [parse_block(b.body) for b in read_blocks(path)]
    rounds = [b for b in blocks if isinstance(b, RoundBlock)]
    first = [s.local_dp for s in rounds[0].submissions]
    second = [s.local_dp for s in rounds[1].submissions]
    assert all(d is not None and 0 < d.epsilon <= 4.0 * 1.05 for d in first + second)
    assert all(a.epsilon < b.epsilon for a, b in zip(first, second, strict=True))  # type: ignore[union-attr]
    assert all(d.delta == 1e-5 for d in first)  # type: ignore[union-attr]
    assert audit_ledger(path).ok


@pytest.mark.parametrize(
    "metrics",
    [
        {},
        {"dp-epsilon": 1.0},
        {"dp-epsilon": math.nan, "dp-delta": 1e-5},
        {"dp-epsilon": -1.0, "dp-delta": 1e-5},
        {"dp-epsilon": 1.0, "dp-delta": 1.5},
        {"dp-epsilon": 1e9, "dp-delta": 1e-5},
    ],
)
def test_nonsense_local_dp_metrics_sign_no_local_dp(metrics: dict[str, object]) -> None:
    assert _local_dp(MetricRecord(metrics)) is None  # type: ignore[arg-type]


def test_sensible_metrics_round_epsilon_up() -> None:
    got = _local_dp(MetricRecord({"dp-epsilon": 1.0000001, "dp-delta": 1e-5}))
    assert got is not None and got.epsilon_micro == 1_000_001
