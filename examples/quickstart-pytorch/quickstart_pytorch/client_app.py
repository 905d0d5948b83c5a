"""ClientApp: a plain Flower + PyTorch client; PoT is one mod (``pot_mod``)."""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from pot_flower.clients import demo_attack_mod, pot_mod
from quickstart_pytorch.task import Net, evaluate, load_partition, train

torch.set_num_threads(1)  # simulated clients share the machine's cores

# demo_attack_mod does nothing unless pot-demo-attack names an attack.
app = ClientApp(mods=[pot_mod, demo_attack_mod])


def _data(context: Context) -> tuple[torch.Tensor, torch.Tensor]:
    rc = context.run_config
    nodes = int(context.node_config["num-partitions"])
    # More nodes than the data has shares for (10,000 nodes): node i trains on
    # share i mod data-partitions.
    shares = int(rc.get("data-partitions", 0)) or nodes
    return load_partition(
        int(context.node_config["partition-id"]) % shares,
        shares,
        alpha=float(rc["dirichlet-alpha"]),
        seed=int(rc["partition-seed"]),
        source=str(rc["data-source"]),
        data_dir=str(rc["data-dir"]),
    )


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    """Train the received model on the local partition."""
    net = Net()
    net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = _data(context)
    rc = context.run_config
    server_round = int(msg.content["config"]["server-round"])
    loss = train(
        net,
        x,
        y,
        epochs=int(rc["local-epochs"]),
        batch_size=int(rc["batch-size"]),
        lr=float(msg.content["config"]["lr"]),
        seed=int(context.node_config["partition-id"]) * 1000 + server_round,
    )
    content = RecordDict(
        {
            "arrays": ArrayRecord(net.state_dict()),
            "metrics": MetricRecord({"train_loss": loss, "num-examples": len(x)}),
        }
    )
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate_fn(msg: Message, context: Context) -> Message:
    """Evaluate the received model on the local partition."""
    net = Net()
    net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = _data(context)
    loss, accuracy = evaluate(net, x, y)
    metrics = MetricRecord(
        {"eval_loss": loss, "eval_acc": accuracy, "num-examples": len(x)}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
