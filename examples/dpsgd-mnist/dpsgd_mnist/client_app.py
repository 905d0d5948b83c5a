"""ClientApp: a Flower miner training with Opacus DP-SGD; PoT is one mod.

The miner's epsilon so far (Opacus's RDP accountant over every round it trained)
goes into the reply's metrics; ``pot_mod`` signs it into the envelope and the
committee records it in the ledger as the miner's self-reported local DP.
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from dpsgd_mnist.task import load_partition, make_cnn, train_private
from pot_flower.clients import DpSgd, pot_mod

torch.set_num_threads(1)  # simulated clients share the machine's cores

app = ClientApp(mods=[pot_mod])


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    """One epoch of DP-SGD on this miner's share, within its budget for the run."""
    rc = context.run_config
    partition = int(context.node_config["partition-id"])
    server_round = int(msg.content["config"]["server-round"])
    net = make_cnn()
    net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = load_partition(
        partition,
        int(context.node_config["num-partitions"]),
        seed=int(rc["partition-seed"]),
        limit=int(rc["examples-per-miner"]),
    )
    dp = DpSgd(
        target_epsilon=float(rc["dp-sgd-epsilon"]),
        target_delta=float(rc["dp-sgd-delta"]),
        rounds=int(rc["num-server-rounds"]),
        max_grad_norm=float(rc["max-grad-norm"]),
    )
    loss = train_private(
        net,
        x,
        y,
        dp,
        context,
        batch_size=int(rc["batch-size"]),
        lr=float(msg.content["config"]["lr"]),
        seed=partition * 1000 + server_round,
    )
    metrics = MetricRecord(
        {"train_loss": loss, "num-examples": len(x), **dp.metrics(context)}
    )
    content = RecordDict({"arrays": ArrayRecord(net.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)
