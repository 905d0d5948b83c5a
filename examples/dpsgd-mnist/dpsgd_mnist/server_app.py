"""ServerApp: PoTStrategy aggregating DP-SGD miners; test accuracy per round."""

from __future__ import annotations

from logging import INFO

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from dpsgd_mnist.task import accuracy, load_mnist, make_cnn
from pot_flower.strategies import PoTStrategy, RoundReport

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation; log accuracy and the miners' self-reported epsilon."""
    rc = context.run_config
    rounds = int(rc["num-server-rounds"])
    _, _, x_test, y_test = load_mnist()

    def progress(report: RoundReport) -> None:
        reported = [s.local_dp.epsilon for s in report.submissions if s.local_dp]
        log(
            INFO,
            "round %d/%d  accuracy %.2f%%  accepted %d  rejected %d  "
            "largest self-reported miner epsilon %.3f (delta %g)",
            report.round,
            rounds,
            100 * report.evaluation.get("accuracy", float("nan")),
            report.accepted,
            report.rejected,
            max(reported, default=0.0),
            float(rc["dp-sgd-delta"]),
        )

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        net = make_cnn()
        net.load_state_dict(arrays.to_torch_state_dict())
        return MetricRecord({"accuracy": accuracy(net, x_test, y_test)})

    strategy = PoTStrategy.from_run_config(rc, on_round=progress)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(make_cnn().state_dict()),
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": float(rc["learning-rate"])}),
        evaluate_fn=evaluate,
    )
