"""The ``pot`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from pot_flower.sim.campaign import CampaignSpec, run_campaign
from pot_flower.sim.faults import FAULT_KINDS
from pot_flower.sim.simulator import RunResult

app = typer.Typer(
    help="pot-flower: Proof of Training for Flower with a PBFT validator committee.",
    no_args_is_help=True,
)
consensus = typer.Typer(help="The PBFT consensus core.", no_args_is_help=True)
app.add_typer(consensus, name="consensus")
err = Console(stderr=True)


@consensus.command("simulate")
def simulate(
    validators: Annotated[
        int, typer.Option("--validators", "-n", help="Committee size.")
    ] = 4,
    runs: Annotated[int, typer.Option(help="Seeded runs.")] = 100,
    seed: Annotated[int, typer.Option(help="First seed; run i uses seed + i.")] = 0,
    faults: Annotated[
        str,
        typer.Option(
            help=f"Comma-separated fault kinds, or 'all' ({', '.join(FAULT_KINDS)})."
        ),
    ] = "all",
    faulty: Annotated[
        int | None, typer.Option(help="Faulty validators per run (default: f).")
    ] = None,
    clients: Annotated[int, typer.Option(help="Closed-loop clients per run.")] = 2,
    requests: Annotated[int, typer.Option(help="Requests per client.")] = 4,
    mutant: Annotated[
        str | None,
        typer.Option(
            help="Run a deliberately broken replica (commit-on-2f, "
            "skip-prepared-certificates) to see the checker catch it."
        ),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option(help="Worker processes (default: all cores).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option(help="Also write the JSON here.")
    ] = None,
) -> None:
    """Simulate the committee under seeded faults and check safety and liveness.

    The last line printed is one JSON object with the aggregated figures.
    """
    kinds = (
        frozenset(FAULT_KINDS)
        if faults == "all"
        else frozenset(k.strip() for k in faults.split(",") if k.strip())
    )
    try:
        spec = CampaignSpec(
            validators=validators,
            runs=runs,
            seed=seed,
            faults=kinds,
            faulty=faulty,
            clients=clients,
            requests_per_client=requests,
            mutant=mutant,
        )
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(f"n={validators}", total=runs)
        bad = [0]

        def advance(result: RunResult) -> None:
            bad[0] += bool(result.verdict.safety or result.verdict.liveness)
            progress.update(
                task, advance=1, description=f"n={validators} failing={bad[0]}"
            )

        report = run_campaign(spec, jobs=jobs, on_result=advance)
    summary = report.summary()
    table = Table(title=f"PBFT simulation, n={validators}, {runs} runs")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in (
        "requests_committed",
        "safety_violations",
        "liveness_failures",
        "view_changes",
        "byzantine_replicas",
        "crashed_replicas",
        "commit_latency_p50_ms",
        "commit_latency_p99_ms",
        "elapsed_s",
    ):
        table.add_row(key, str(summary[key]))
    err.print(table)
    for failure in report.failing[:5]:
        problems = failure["safety"] or failure["liveness"]
        err.print(f"[yellow]seed {failure['seed']}[/yellow]: {problems}")
    line = json.dumps(summary, sort_keys=True)
    if json_out is not None:
        json_out.write_text(line + "\n")
    print(line)


def main() -> None:
    """Entry point of the ``pot`` console script."""
    app()


if __name__ == "__main__":
    main()
