"""ServerApp: PoTStrategy with an embedded validator committee (or plain FedAvg)."""

from __future__ import annotations

import json
from logging import INFO
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from pot_flower.audit import audit_ledger
from pot_flower.clients import keras_arrays, load_keras_arrays
from pot_flower.strategies import PoTStrategy, RoundReport
from quickstart_tensorflow.task import (
    evaluate,
    from_torch_layout,
    load_test,
    make_model,
    to_torch_layout,
)

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation; report accuracy per round and the committee's ledgers."""
    import keras

    rc = context.run_config
    rounds = int(rc["num-server-rounds"])
    layout = str(rc["model-layout"])
    keras.utils.set_random_seed(0)
    model = make_model()
    initial = keras_arrays(model)
    if layout == "torch":
        initial = to_torch_layout(initial)
    x_test, y_test = load_test(str(rc["data-source"]), str(rc["data-dir"]))
    accuracies: list[float] = []

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        if layout == "torch":
            arrays = from_torch_layout(arrays)
        load_keras_arrays(model, arrays)
        loss, accuracy = evaluate(model, x_test, y_test)
        accuracies.append(accuracy)
        return MetricRecord({"accuracy": accuracy, "loss": loss})

    def progress(report: RoundReport) -> None:
        reasons = ", ".join(f"{k} x{v}" for k, v in sorted(report.reasons.items()))
        log(
            INFO,
            "round %d/%d  accuracy %.2f%%  accepted %d  rejected %d%s  block %s",
            report.round,
            rounds,
            100 * report.evaluation.get("accuracy", float("nan")),
            report.accepted,
            report.rejected,
            f" ({reasons})" if reasons else "",
            report.block.hex()[:16],
        )

    strategy: FedAvg | PoTStrategy
    if str(rc.get("strategy", "pot")) == "fedavg":
        strategy = FedAvg(
            fraction_train=float(rc["fraction-train"]),
            fraction_evaluate=float(rc["fraction-evaluate"]),
            min_available_nodes=int(rc["min-available-nodes"]),
        )
    else:
        strategy = PoTStrategy.from_run_config(rc, on_round=progress)
    strategy.start(
        grid=grid,
        initial_arrays=initial,
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": float(rc["learning-rate"])}),
        evaluate_fn=central_evaluate,
    )
    directory = getattr(getattr(strategy, "committee", None), "directory", None)
    for ledger in sorted(Path(directory).glob("validator-*")) if directory else []:
        report = audit_ledger(ledger)
        log(
            INFO,
            "%s: %d blocks, %s",
            ledger.name,
            report.blocks,
            "verified" if report.ok else f"FAILED: {report.problem}",
        )
    out = str(rc.get("metrics-out", ""))
    if out:
        Path(out).write_text(json.dumps({"accuracy_by_round": accuracies}))
    log(INFO, "final accuracy: %.4f", accuracies[-1] if accuracies else 0.0)
