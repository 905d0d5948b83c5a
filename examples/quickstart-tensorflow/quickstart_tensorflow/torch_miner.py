"""A PyTorch miner for mixed federations: the same CNN, trained with PyTorch.

Only used with ``miner-frameworks`` naming ``torch`` (and ``model-layout =
"torch"``): it receives and returns the PyTorch quickstart's ``state_dict``
layout, which the Keras miners convert to and from.
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from torch import nn

from pot_flower import datasets

torch.set_num_threads(1)  # simulated clients share the machine's cores


class Net(nn.Module):
    """The PyTorch quickstart's CNN (37,610 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def train_torch(msg: Message, context: Context) -> Message:
    """One round of local SGD (momentum 0.9) in PyTorch; the reply as Flower's."""
    rc = context.run_config
    if str(rc["model-layout"]) != "torch":
        raise ValueError('PyTorch miners need model-layout = "torch"')
    partition = int(context.node_config["partition-id"])
    server_round = int(msg.content["config"]["server-round"])
    images, labels = datasets.load_partition(
        partition,
        int(context.node_config["num-partitions"]),
        alpha=float(rc["dirichlet-alpha"]),
        seed=int(rc["partition-seed"]),
        source=str(rc["data-source"]),
        data_dir=str(rc["data-dir"]),
    )
    x = torch.from_numpy(datasets.normalized(images)).unsqueeze(1)
    y = torch.from_numpy(labels)
    net = Net()
    net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    optimizer = torch.optim.SGD(
        net.parameters(), lr=float(msg.content["config"]["lr"]), momentum=0.9
    )
    generator = torch.Generator().manual_seed(partition * 1000 + server_round)
    batch_size, total, batches = int(rc["batch-size"]), 0.0, 0
    for _ in range(int(rc["local-epochs"])):
        order = torch.randperm(len(x), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
    metrics = {"train_loss": total / max(batches, 1), "num-examples": len(x)}
    content = RecordDict(
        {"arrays": ArrayRecord(net.state_dict()), "metrics": MetricRecord(metrics)}
    )
    return Message(content=content, reply_to=msg)
