"""An offline Flower harness: a Grid that calls ClientApps in process, and a plain app.

No SuperLink, no Ray: the strategy's messages go straight to a ClientApp object per
node, with Flower's own Message, Context and mod machinery. The quickstart-style
torch app below knows nothing of PoT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from torch import nn

RUN_ID = 4242


def set_task_identity() -> None:
    TaskIdentity.run_id = RUN_ID
    TaskIdentity.node_id = 1
    TaskIdentity.task_id = 1


class LocalGrid(Grid):
    """Delivers messages to in-process ClientApps; ``tamper`` may rewrite replies."""

    def __init__(
        self,
        app: ClientApp,
        num_nodes: int,
        *,
        run_config: dict[str, object] | None = None,
        tamper: Callable[[int, Message], Message] | None = None,
    ) -> None:
        set_task_identity()
        self.app = app
        self.node_ids = [1000 + 7 * i for i in range(num_nodes)]
        self.contexts = {
            nid: Context(
                run_id=RUN_ID,
                node_id=nid,
                node_config={"partition-id": i, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config=dict(run_config or {}),  # type: ignore[arg-type]
            )
            for i, nid in enumerate(self.node_ids)
        }
        self.tamper = tamper
        self._run = Run.create_empty(RUN_ID)
        self.sent: list[Message] = []

    def set_run(self, run_id: int) -> None:  # type: ignore[override]
        pass

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, *args: object, **kwargs: object) -> Message:
        raise NotImplementedError("LocalGrid only delivers via send_and_receive")

    def get_node_ids(self) -> Iterable[int]:
        return list(self.node_ids)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError("LocalGrid only delivers via send_and_receive")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError("LocalGrid only delivers via send_and_receive")

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for msg in messages:
            self.sent.append(msg)
            node = msg.metadata.dst_node_id
            # Flower delivers a copy on the node; the node id arrives in metadata.
            delivered = Message(
                msg.content, dst_node_id=node, message_type=msg.metadata.message_type
            )
            delivered.metadata.__dict__["_message_id"] = f"m{len(self.sent)}"
            reply = self.app(delivered, self.contexts[node])
            reply.metadata.__dict__["_src_node_id"] = node
            if self.tamper is not None:
                reply = self.tamper(node, reply)
            replies.append(reply)
        return replies


# ------------------------------------------------------------------ plain app
class Net(nn.Module):
    """A small MLP (784 -> 32 -> 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class BatchNormNet(Net):
    """The MLP with BatchNorm: int64 0-d counters and float buffers in its state."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def synthetic_partition(
    partition: int, n: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(partition)
    y = rng.integers(0, 10, size=n)
    centers = np.random.default_rng(99).standard_normal((10, 784)).astype(np.float32)
    x = centers[y] + 0.5 * rng.standard_normal((n, 784)).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def make_plain_app(
    mods: list | None = None,  # type: ignore[type-arg]
    net: type[Net] = Net,
) -> ClientApp:
    """A quickstart-style ClientApp: it knows Flower and torch, nothing of PoT."""
    app = ClientApp(mods=mods)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        torch.manual_seed(0)
        model = net()
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        x, y = synthetic_partition(int(context.node_config["partition-id"]))
        opt = torch.optim.SGD(model.parameters(), lr=float(msg.content["config"]["lr"]))
        loss = torch.tensor(0.0)
        for i in range(0, len(x), 16):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[i : i + 16]), y[i : i + 16])
            loss.backward()
            opt.step()
        content = RecordDict(
            {
                "arrays": ArrayRecord(model.state_dict()),
                "metrics": MetricRecord(
                    {"train_loss": loss.item(), "num-examples": len(x)}
                ),
            }
        )
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        model = net()
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        x, y = synthetic_partition(1000 + int(context.node_config["partition-id"]))
        with torch.no_grad():
            acc = float((model(x).argmax(1) == y).float().mean())
        metrics = MetricRecord({"accuracy": acc, "num-examples": len(x)})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return app
