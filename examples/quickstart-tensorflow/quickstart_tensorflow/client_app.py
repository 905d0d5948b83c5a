"""ClientApp: a plain Flower + Keras client; PoT is one mod (``pot_mod``).

``model-layout = "keras"`` sends the weights under Keras names
(:func:`pot_flower.clients.keras_arrays`); ``"torch"`` sends them in the PyTorch
quickstart's layout, so Keras and PyTorch miners can train one model
(``miner-frameworks = "keras,torch"``: partitions alternate between them).
"""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from pot_flower.clients import (
    demo_attack_mod,
    keras_arrays,
    load_keras_arrays,
    pot_mod,
)
from quickstart_tensorflow.task import (
    evaluate,
    from_torch_layout,
    load_partition,
    make_model,
    to_torch_layout,
    train,
)

app = ClientApp(mods=[pot_mod, demo_attack_mod])


def _framework(context: Context) -> str:
    frameworks = [
        f.strip() for f in str(context.run_config["miner-frameworks"]).split(",")
    ]
    return frameworks[int(context.node_config["partition-id"]) % len(frameworks)]


def _data(context: Context):  # type: ignore[no-untyped-def]
    rc = context.run_config
    return load_partition(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        alpha=float(rc["dirichlet-alpha"]),
        seed=int(rc["partition-seed"]),
        source=str(rc["data-source"]),
        data_dir=str(rc["data-dir"]),
    )


def _model(arrays: ArrayRecord, layout: str):  # type: ignore[no-untyped-def]
    model = make_model()
    if layout == "torch":
        arrays = from_torch_layout(arrays)
    load_keras_arrays(model, arrays)
    return model


def _arrays(model, layout: str) -> ArrayRecord:  # type: ignore[no-untyped-def]
    arrays = keras_arrays(model)
    return to_torch_layout(arrays) if layout == "torch" else arrays


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    """Train the received model on the local partition."""
    if _framework(context) == "torch":
        from quickstart_tensorflow.torch_miner import train_torch

        return train_torch(msg, context)
    layout = str(context.run_config["model-layout"])
    model = _model(msg.content["arrays"], layout)
    x, y = _data(context)
    rc = context.run_config
    server_round = int(msg.content["config"]["server-round"])
    loss = train(
        model,
        x,
        y,
        epochs=int(rc["local-epochs"]),
        batch_size=int(rc["batch-size"]),
        lr=float(msg.content["config"]["lr"]),
        seed=int(context.node_config["partition-id"]) * 1000 + server_round,
    )
    content = RecordDict(
        {
            "arrays": _arrays(model, layout),
            "metrics": MetricRecord({"train_loss": loss, "num-examples": len(x)}),
        }
    )
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate_fn(msg: Message, context: Context) -> Message:
    """Evaluate the received model on the local partition."""
    model = _model(msg.content["arrays"], str(context.run_config["model-layout"]))
    x, y = _data(context)
    loss, accuracy = evaluate(model, x, y)
    metrics = MetricRecord(
        {"eval_loss": loss, "eval_acc": accuracy, "num-examples": len(x)}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
