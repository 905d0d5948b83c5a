"""ServerApp: PoTStrategy with an embedded validator committee (or plain FedAvg)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable
from logging import INFO
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

from pot_flower.audit import audit_ledger
from pot_flower.strategies import PoTStrategy, RoundReport
from quickstart_pytorch.task import Net, evaluate, load_test

app = ServerApp()


def _render(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    console.print(renderable)
    return console.file.getvalue().rstrip()  # type: ignore[attr-defined]


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation and report the committee's ledger."""
    rc = context.run_config
    rounds = int(rc["num-server-rounds"])
    torch.manual_seed(0)
    initial = ArrayRecord(Net().state_dict())
    x_test, y_test = load_test(str(rc["data-source"]), str(rc["data-dir"]))
    timeline: list[dict[str, float]] = []
    exchanges: list[float] = []  # seconds Flower took to deliver and train, a round
    if str(rc.get("metrics-out", "")):
        send_and_receive = grid.send_and_receive

        def timed(messages: Iterable[Message], **kwargs: Any) -> Iterable[Message]:
            messages = list(messages)
            started = time.perf_counter()
            replies = send_and_receive(messages, **kwargs)
            if any(m.metadata.message_type.startswith("train") for m in messages):
                exchanges.append(time.perf_counter() - started)
            return replies

        grid.send_and_receive = timed  # type: ignore[method-assign]

    def progress(report: RoundReport) -> None:
        acc = report.evaluation.get("accuracy", float("nan"))
        bar = ProgressBar(total=rounds, completed=report.round, width=30)
        reasons = ", ".join(f"{k} x{v}" for k, v in sorted(report.reasons.items()))
        log(INFO, "%s", _render(bar))
        log(
            INFO,
            "round %d/%d  accuracy %.2f%%  accepted %d  rejected %d%s  "
            "minted %d units  block %s",
            report.round,
            rounds,
            100 * acc,
            report.accepted,
            report.rejected,
            f" ({reasons})" if reasons else "",
            report.minted,
            report.block.hex()[:16],
        )

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        started = time.perf_counter()
        net = Net()
        net.load_state_dict(arrays.to_torch_state_dict())
        loss, accuracy = evaluate(net, x_test, y_test)
        timeline.append(
            {
                "round": server_round,
                "eval_start": started,
                "eval_end": time.perf_counter(),
                "exchange_seconds": exchanges[-1]
                if server_round and exchanges
                else 0.0,
                "accuracy": accuracy,
                "loss": loss,
            }
        )
        return MetricRecord({"accuracy": accuracy, "loss": loss})

    common = {
        "fraction_train": float(rc["fraction-train"]),
        "fraction_evaluate": float(rc["fraction-evaluate"]),
        "min_available_nodes": int(rc["min-available-nodes"]),
    }
    strategy: FedAvg | PoTStrategy
    if str(rc.get("strategy", "pot")) == "fedavg":
        strategy = FedAvg(**common)  # type: ignore[arg-type]
    else:
        strategy = PoTStrategy.from_run_config(rc, on_round=progress)
    result = strategy.start(
        grid=grid,
        initial_arrays=initial,
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": float(rc["learning-rate"])}),
        evaluate_fn=central_evaluate,
    )
    out = str(rc.get("metrics-out", ""))
    if out:
        rounds_info = [
            {
                "round": r.round,
                "seconds": r.seconds,
                "committee_seconds": r.committee_seconds,
                "accepted": r.accepted,
                "rejected": r.rejected,
            }
            for r in getattr(strategy, "history", [])
        ]
        Path(out).write_text(
            json.dumps({"timeline": timeline, "pot_rounds": rounds_info}, indent=1)
        )
    if isinstance(strategy, PoTStrategy):
        _report_ledger(strategy)
    log(INFO, "final accuracy: %.4f", timeline[-1]["accuracy"] if timeline else 0.0)
    del result


def _report_ledger(strategy: PoTStrategy) -> None:
    committee = strategy.committee
    directory = getattr(committee, "directory", None)
    if directory is None:
        return
    table = Table(title="validator ledgers")
    for column in ("validator", "blocks", "verify", "minted"):
        table.add_column(column)
    for ledger in sorted(Path(directory).glob("validator-*")):
        report = audit_ledger(ledger)
        table.add_row(
            ledger.name,
            str(report.blocks),
            "OK" if report.ok else f"FAIL: {report.problem}",
            str(report.minted),
        )
    log(INFO, "%s", _render(table))
    log(
        INFO,
        "ledgers: %s  (pot ledger show|verify %s/validator-0; pot rewards …)",
        directory,
        directory,
    )
