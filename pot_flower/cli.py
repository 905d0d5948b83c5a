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
ledger = typer.Typer(
    help="Inspect and verify a validator's ledger.", no_args_is_help=True
)
app.add_typer(ledger, name="ledger")
keys = typer.Typer(help="Create validator, coordinator and miner keys.")
app.add_typer(keys, name="keys")
validator = typer.Typer(help="Run and inspect validator processes.")
app.add_typer(validator, name="validator")
committee = typer.Typer(help="Start a committee of validators.")
app.add_typer(committee, name="committee")
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
    votes: Annotated[
        str,
        typer.Option(
            help="Vote routing: broadcast (all-to-all), relay (through the "
            "primary) or mixed (odd seeds relay)."
        ),
    ] = "broadcast",
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
            votes=votes,
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


LedgerPath = Annotated[
    Path, typer.Argument(help="A validator's ledger directory or its ledger.sqlite.")
]


def _short(key: bytes | None) -> str:
    return "-" if not key else key.hex()[:12]


@ledger.command("show")
def ledger_show(path: LedgerPath, blocks: bool = True) -> None:
    """Print the ledger as a table: one row per block, then its submissions."""
    from pot_flower.audit import read_blocks
    from pot_flower.encoding import decode

    try:
        rows = read_blocks(path)
    except Exception as exc:
        err.print(f"[red]cannot read {path}: {exc}")
        raise typer.Exit(2) from exc
    out = Console()
    table = Table(title=f"ledger {path}")
    for column in (
        "block",
        "hash",
        "model",
        "accepted",
        "rejected",
        "reasons",
        "minted",
        "certified by",
    ):
        table.add_column(column)
    for row in rows:
        try:
            body = decode(row.body)
            assert isinstance(body, dict)
        except Exception:
            table.add_row(str(row.height), _short(row.hash), "undecodable", *[""] * 5)
            continue
        subs = body.get("submissions") or []
        assert isinstance(subs, list)
        accepted = [
            s for s in subs if isinstance(s, dict) and s["verdict"] == "accepted"
        ]
        reasons: dict[str, int] = {}
        for s in subs:
            if isinstance(s, dict) and s["verdict"] != "accepted":
                reasons[str(s["reason"])] = reasons.get(str(s["reason"]), 0) + 1
        signers = "-"
        if row.certificate is not None:
            cert = decode(row.certificate)
            if isinstance(cert, dict) and isinstance(cert.get("signatures"), list):
                signers = ",".join(str(x[0]) for x in cert["signatures"])  # type: ignore[index,union-attr]
        table.add_row(
            str(row.height),
            _short(row.hash),
            _short(body.get("model")),  # type: ignore[arg-type]
            "genesis" if row.height == 0 else str(len(accepted)),
            "" if row.height == 0 else str(len(subs) - len(accepted)),
            ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items())),
            str(body.get("minted", "")),
            signers,
        )
    out.print(table)


@ledger.command("verify")
def ledger_verify(path: LedgerPath) -> None:
    """Recompute the hash chain, certificates, rewards and model files.

    Exit 0 only if every block holds; otherwise name the first bad block and why.
    """
    from pot_flower.audit import audit_ledger

    report = audit_ledger(path)
    if not report.ok:
        err.print(f"[red]FAIL[/red] {path}: {report.problem}")
        raise typer.Exit(1)
    Console().print(
        f"[green]OK[/green] {path}: {report.blocks} blocks (genesis + "
        f"{report.blocks - 1} rounds), chain, certificates "
        f"({len(report.validators)} validators), rewards ({report.minted} units) "
        "and models verified"
    )


@app.command("rewards")
def rewards(path: LedgerPath) -> None:
    """Print token balances (miners and validators) from a verified ledger."""
    from pot_flower.audit import audit_ledger

    report = audit_ledger(path)
    if not report.ok:
        err.print(f"[red]ledger does not verify[/red]: {report.problem}")
        raise typer.Exit(1)
    table = Table(title=f"balances after {report.blocks - 1} rounds (token units)")
    table.add_column("account")
    table.add_column("key")
    table.add_column("balance", justify="right")
    for miner, amount in sorted(report.miner_balances.items(), key=lambda kv: -kv[1]):
        table.add_row("miner", miner.hex()[:16], str(amount))
    for index, amount in sorted(report.validator_balances.items()):
        table.add_row(
            f"validator {index}", report.validators[index].hex()[:16], str(amount)
        )
    table.add_row("total minted", "", str(report.minted))
    Console().print(table)


@keys.command("new")
def keys_new(
    out: Annotated[Path, typer.Argument(help="Key file to create (mode 0600).")],
) -> None:
    """Create an Ed25519 key (validator, coordinator or miner); print its public key."""
    from pot_flower.deploy import write_key
    from pot_flower.zk.signatures import SigningKey

    key = SigningKey.generate()
    try:
        write_key(out, key)
    except FileExistsError as exc:
        err.print(f"[red]{out} exists; refusing to overwrite a key")
        raise typer.Exit(1) from exc
    out.with_suffix(".pub").write_text(key.verify_key.raw.hex() + "\n")
    typer.echo(key.verify_key.raw.hex())


CommitteePath = Annotated[Path, typer.Option("--config", help="Committee file (TOML).")]


@validator.command("run")
def validator_run(
    config: CommitteePath,
    vid: Annotated[int, typer.Option("--id", help="This validator's id.")],
    key: Annotated[
        Path | None, typer.Option(help="Key file (default: beside the config).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Data directory (default: validator-<id>/).")
    ] = None,
) -> None:
    """Run one validator until SIGTERM (JSON logs on stderr)."""
    from pot_flower.daemon import run_validator

    key = key or config.parent / f"validator-{vid}.key"
    data = data or config.parent / f"validator-{vid}"
    raise typer.Exit(run_validator(config, vid, key, data))


@validator.command("health")
def validator_health(
    config: CommitteePath,
    vid: Annotated[int | None, typer.Option("--id", help="One validator.")] = None,
    coordinator: Annotated[
        str, typer.Option(help="Whose TLS certificate to present.")
    ] = "coordinator",
) -> None:
    """Ask validators for their health (exit 1 if one in the set does not answer)."""
    import grpc

    from pot_flower.deploy import load_committee
    from pot_flower.transport import pot_pb2, pot_pb2_grpc
    from pot_flower.transport.node import open_channel

    committee_file = load_committee(config)
    ids = [vid] if vid is not None else list(committee_file.addresses)
    credentials = committee_file.channel_credentials(coordinator)
    failed = False
    for i in ids:
        channel = open_channel(committee_file.addresses[i], credentials)
        stub = pot_pb2_grpc.ValidatorStub(channel)  # type: ignore[no-untyped-call]
        try:
            r = stub.Health(pot_pb2.HealthRequest(), timeout=3)
            typer.echo(
                json.dumps(
                    {
                        "id": i,
                        "status": r.status,
                        "view": r.view,
                        "last_executed": r.last_executed,
                        "stable": r.stable,
                        "in_view_change": r.in_view_change,
                    }
                )
            )
        except grpc.RpcError as exc:
            failed = True
            typer.echo(
                json.dumps({"id": i, "status": "unreachable", "error": exc.code().name})
            )
        finally:
            channel.close()
    raise typer.Exit(1 if failed else 0)


@committee.command("init")
def committee_init(
    validators: Annotated[
        str, typer.Option(help="Comma-separated host:port of every validator.")
    ],
    directory: Annotated[Path, typer.Option("--dir", help="Output directory.")] = Path(
        "pot-committee"
    ),
    insecure: Annotated[
        bool, typer.Option(help="No TLS (only for isolated test networks).")
    ] = False,
) -> None:
    """Create keys, a committee CA with certificates, and committee.toml.

    Copy ``validator-<i>.key``, ``tls/ca.pem`` and ``tls/validator-<i>*.pem`` with
    the committee file to host i; the coordinator needs ``coordinator.key`` and
    ``tls/coordinator*.pem``.
    """
    from pot_flower.localnet import prepare

    hosts = [h.strip() for h in validators.split(",") if h.strip()]
    path = prepare(len(hosts), directory, tls=not insecure, hosts=hosts)
    typer.echo(str(path))


@committee.command("up")
def committee_up(
    local: Annotated[int, typer.Option("--local", help="Validators on loopback.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Keys, committee file, data.")
    ] = Path("pot-committee"),
    tls: Annotated[
        bool, typer.Option(help="Mutual TLS on loopback too (off by default here).")
    ] = False,
) -> None:
    """Start N validator processes on loopback (development); Ctrl-C stops them.

    Creates (or reuses) keys, a coordinator key and ``committee.toml`` in DIR.
    """
    from pot_flower.localnet import run_local_committee

    raise typer.Exit(run_local_committee(local, directory, tls=tls))


def main() -> None:
    """Entry point of the ``pot`` console script."""
    app()


if __name__ == "__main__":
    main()
