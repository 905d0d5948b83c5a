"""The ``pot`` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from pot_flower.sim.faults import FAULT_KINDS

if TYPE_CHECKING:
    from pot_flower.audit import HeadSource, LiveHead, Pins
    from pot_flower.ops.committee_file import CommitteeFile
    from pot_flower.protocol.block import RoundBlock
    from pot_flower.sim.campaign import CampaignReport, CampaignSpec
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
    seed: Annotated[
        int,
        typer.Option(help="First seed; run i uses seed + i (see --spread)."),
    ] = 0,
    spread: Annotated[
        bool,
        typer.Option(
            "--spread",
            help="Spread seeds over the 64-bit range: run i uses "
            "splitmix64(seed + i). The JSON's failing_seeds are the seeds used; "
            "replay one with --runs 1 --seed S (without --spread).",
        ),
    ] = False,
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
    # Here, not at the top: the PBFT simulator costs every other command ~0.3 s.
    from pot_flower.sim.campaign import CampaignSpec

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
            spread=spread,
        )
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    report = _campaign_with_progress(spec, jobs)
    summary = report.summary()
    _print_figures(report, summary, f"PBFT simulation, n={validators}, {runs} runs")
    line = json.dumps(summary, sort_keys=True)
    if json_out is not None:
        json_out.write_text(line + "\n")
    print(line)


def _bar() -> Progress:
    """A progress bar on stderr, gone once it is done (stdout stays for results)."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _campaign_with_progress(spec: CampaignSpec, jobs: int | None) -> CampaignReport:
    """Run the campaign with a progress bar on stderr (gone once it is done)."""
    from pot_flower.sim.campaign import run_campaign

    with _bar() as progress:
        name = f"n={spec.validators}"
        task = progress.add_task(name, total=spec.runs)
        bad = [0]

        def advance(result: RunResult) -> None:
            bad[0] += bool(result.verdict.safety or result.verdict.liveness)
            progress.update(task, advance=1, description=f"{name} failing={bad[0]}")

        return run_campaign(spec, jobs=jobs, on_result=advance)


@contextmanager
def _blocks_progress(verb: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar over blocks on stderr, for terminals and long ledgers only."""
    # The stream itself: rich takes FORCE_COLOR (set in Jupyter kernels) for a tty.
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    with _bar() as progress:
        task = progress.add_task(verb, total=None, visible=False)

        def advance(done: int, total: int) -> None:
            if total >= 200:  # short ledgers verify in a blink: no bar
                progress.update(task, completed=done, total=total, visible=True)

        yield advance


def _print_figures(report: CampaignReport, summary: dict[str, Any], title: str) -> None:
    """The headline figures as a table and the first failing seeds, on stderr."""
    table = Table(title=title)
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


LedgerPath = Annotated[
    Path, typer.Argument(help="A validator's ledger directory or its ledger.sqlite.")
]
CommitteeOpt = Annotated[
    Path | None,
    typer.Option(
        "--committee",
        help="Pin the committee: genesis must name this committee file's keys "
        "(and at least its quorum).",
    ),
]
KeysOpt = Annotated[
    str | None,
    typer.Option(
        "--validator-keys",
        help="Pin the committee: HEX,HEX,... validator public keys by index.",
    ),
]
GenesisOpt = Annotated[
    str | None,
    typer.Option("--genesis-hash", help="Pin the committee: genesis block hash (hex)."),
]
HeightOpt = Annotated[
    int | None,
    typer.Option(
        "--expect-height", min=0, help="Pin completeness: the last block's height."
    ),
]


def _fail_line(text: str, code: int) -> typer.Exit:
    """Print one uncoloured-markup line on stderr; the exit to raise."""
    typer.echo(text.replace("\n", " "), err=True)
    return typer.Exit(code)


def _pins(
    committee: Path | None,
    validator_keys: str | None,
    genesis_hash: str | None,
    expect_height: int | None,
    against: Path | None = None,
    identity: str = "coordinator",
    timeout: float = 5.0,
) -> Pins:
    """The pins the options name; usage problems exit 2 with one line."""
    from dataclasses import replace

    from pot_flower.audit import CommitteePin, Pins

    if committee is not None and validator_keys is not None:
        raise _fail_line("error: give --committee or --validator-keys, not both", 2)
    errors: tuple[type[Exception], ...] = (ValueError,)
    live_file: CommitteeFile | None = None
    if committee is not None or against is not None:
        # Only here: committee files bring grpc (~0.15 s a plain verify need not pay).
        from pot_flower.ops.committee_file import CommitteeFileError, load_committee

        errors = (CommitteeFileError, ValueError)
    try:
        pin: CommitteePin | None = None
        if against is not None:
            live_file = load_committee(against)
        if live_file is not None:
            live_file.channel_credentials(identity)  # the TLS files exist
        if committee is not None:
            pin = CommitteePin.from_committee_file(committee)
        elif validator_keys is not None:
            pin = CommitteePin.from_hex_keys(validator_keys)
        elif live_file is not None:
            pin = CommitteePin.from_committee(live_file)
        if genesis_hash is not None:
            hashed = CommitteePin.from_genesis_hex(genesis_hash)
            pin = (
                hashed
                if pin is None
                else replace(pin, genesis_hash=hashed.genesis_hash)
            )
    except errors as exc:
        raise _fail_line(f"error: {exc}", 2) from exc
    live: HeadSource | None = None
    if live_file is not None:
        live = _live_source(live_file, identity, timeout)
    return Pins(committee=pin, expect_height=expect_height, live_head=live)


def _live_source(committee: CommitteeFile, identity: str, timeout: float) -> HeadSource:
    """Ask ``committee``'s validators for a run's head (as ``identity``)."""
    from pot_flower.audit import live_head

    def ask(run: int) -> LiveHead:
        return live_head(committee, run, identity=identity, timeout=timeout)

    return ask


@ledger.command("show")
def ledger_show(
    path: LedgerPath,
    submissions: Annotated[
        bool,
        typer.Option(
            "--submissions",
            "-s",
            help="Also print each round's submissions: node, miner, verdict, "
            "reason, examples, quality, score, reputation, the miner's "
            "self-reported local epsilon, reward.",
        ),
    ] = False,
) -> None:
    """Print the ledger as a table: one row per stored row, nothing verified.

    Rows that are not what a ledger holds are shown as far as they can be (their
    storage class, "malformed"); exit 2 if the file cannot be read at all.
    """
    from rich.text import Text

    from pot_flower.audit import LedgerReadError, read_rows, sorted_rows, summarize
    from pot_flower.audit.rows import typed_block
    from pot_flower.protocol.block import RoundBlock

    try:
        rows = read_rows(path)
    except LedgerReadError as exc:
        raise _fail_line(f"cannot read {path}: {exc}", 2) from exc
    table = Table(title=Text(f"ledger {path}"))
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
    ordered = sorted_rows(rows)
    summaries = [summarize(row) for row in ordered]
    private = any(s.epsilon for s in summaries)
    adaptive = any(s.dp_clip for s in summaries)
    if private:
        table.add_column("epsilon (sampled)")
    if adaptive:
        table.add_column("DP clip norm")
    for s in summaries:
        cells = (s.height, s.hash, s.model, s.accepted, s.rejected, s.reasons)
        extra = ((s.epsilon,) if private else ()) + ((s.dp_clip,) if adaptive else ())
        table.add_row(*(Text(c) for c in (*cells, s.minted, s.signers, *extra)))
    console = Console()
    console.print(table)
    if not submissions:
        return
    for row in ordered:
        block = typed_block(row)
        if isinstance(block, RoundBlock):
            console.print(_submissions_table(block))


def _submissions_table(block: RoundBlock) -> Table:
    from rich.text import Text

    table = Table(title=Text(f"block {block.height}: submissions"))
    columns = (
        "node",
        "miner",
        "verdict",
        "reason",
        "examples",
        "quality",
        "score",
        "reputation",
        "local epsilon",
    )
    for column in columns:
        table.add_column(column)
    table.add_column("reward", justify="right")
    for sub in block.submissions:
        verdict = "accepted" if sub.accepted else "rejected"
        cells = (
            str(sub.node),
            sub.miner.hex()[:16] if sub.miner else "-",
            f"{verdict} (clipped)" if sub.clipped else verdict,
            str(sub.reason or ""),
            str(sub.examples),
            f"{sub.quality_ppm / 1e6:.6f}",
            "-" if sub.score is None else f"{sub.score / 1e6:.6f}",
            f"{sub.reputation_ppm / 1e6:.6f}" if sub.reputation_ppm else "-",
            "-" if sub.local_dp is None else f"{sub.local_dp.epsilon:.4f} (self)",
            str(sub.reward),
        )
        table.add_row(*(Text(c) for c in cells))
    return table


@ledger.command("export")
def ledger_export(
    path: LedgerPath,
    directory: Annotated[Path, typer.Argument(help="Where blocks.jsonl goes.")],
    committee: CommitteeOpt = None,
    validator_keys: KeysOpt = None,
    genesis_hash: GenesisOpt = None,
    expect_height: HeightOpt = None,
) -> None:
    """Write a verified ledger's blocks to DIRECTORY/blocks.jsonl, one per line.

    Each line is one typed block in JSON: height, hash, signers, model digests and,
    for rounds, every submission's node, miner key, verdict, reason, examples,
    quality and reward, plus the validator fees. Takes the pins of ``pot ledger
    verify``; exit 1 (one line) if the ledger does not verify, 2 on a usage error.
    """
    from pot_flower.audit import audit_ledger
    from pot_flower.audit.export import export_blocks

    report = audit_ledger(
        path, _pins(committee, validator_keys, genesis_hash, expect_height)
    )
    if not report.ok:
        raise _fail_line(f"ledger does not verify: {report.problem}", 1)
    try:
        out = export_blocks(path, directory)
    except OSError as exc:
        raise _fail_line(f"error: cannot write {directory}: {exc}", 2) from exc
    typer.echo(f"{report.blocks} blocks written to {out}; {report.trust()}")


@ledger.command("verify")
def ledger_verify(
    path: LedgerPath,
    committee: CommitteeOpt = None,
    validator_keys: KeysOpt = None,
    genesis_hash: GenesisOpt = None,
    expect_height: HeightOpt = None,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="Pin completeness: reach the head a quorum of this committee's "
            "live validators certifies (pins the committee too, unless "
            "--committee or --validator-keys does).",
        ),
    ] = None,
    identity: Annotated[
        str, typer.Option("--as", help="TLS identity presented with --against.")
    ] = "coordinator",
    timeout: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds to wait for each validator (--against)."),
    ] = 5.0,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Recompute every block even where this machine's checkpoint of an "
            "earlier verification matches.",
        ),
    ] = False,
) -> None:
    """Recompute the hash chain, certificates, rewards and model files.

    Pin the committee (--committee, --validator-keys or --genesis-hash) so that
    a chain re-signed under other keys fails at block 0, and completeness
    (--expect-height or --against) so that a truncated ledger fails at its first
    missing block; the OK line says what was pinned and what was trusted.

    Exit status: 0 every check holds; 1 the ledger does not verify (the first
    bad block and why, one line); 2 usage error (bad option, unreadable
    committee file or TLS files); 3 the ledger verifies but --against could not
    establish the head (fewer than a quorum of validators answered, or none
    vouched for a block).
    """
    from pot_flower.audit import Failure, audit_ledger
    from pot_flower.audit.checkpoint import CheckpointStore

    pins = _pins(
        committee,
        validator_keys,
        genesis_hash,
        expect_height,
        against,
        identity,
        timeout,
    )
    store = CheckpointStore()
    with _blocks_progress("verifying") as progress:
        report = audit_ledger(path, pins, progress, store, resume=not full)
    if not report.ok:
        code = 3 if report.failure == Failure.LIVE_HEAD_UNKNOWN else 1
        raise _fail_line(
            f"{typer.style('FAIL', fg='red')} {path}: {report.problem}", code
        )
    resumed = ""
    if report.resumed_at is not None:
        resumed = (
            f" (blocks 1-{report.resumed_at} re-hashed and matched this machine's "
            f"earlier verification, {report.head - report.resumed_at} recomputed; "
            "--full recomputes all)"
        )
    typer.echo(
        f"{typer.style('OK', fg='green')} {path}: {report.blocks} blocks (genesis + "
        f"{report.blocks - 1} rounds), chain, certificates "
        f"({len(report.validators)} validators), rewards ({report.minted} units) "
        f"and models verified{resumed}; {report.trust()}"
    )


@ledger.command("audit")
def ledger_audit(path: LedgerPath) -> None:
    """Check every model against the miners' Pedersen commitments, from the ledger.

    On a chain with ``pot-commitment = "pedersen"`` and the plain weighted mean
    (preset ``off``, no DP), each round's certified model must be the previous one
    moved by the weighted sum of exactly the updates its accepted miners
    committed to: checked through the commitments' homomorphism, without any
    individual update. Run ``pot ledger verify`` too: it checks the chain and the
    certificates, this checks what they certify.

    Exit status: 0 every round accounted for; 1 a round is not (its block and
    why, one line) or the chain records no openings.
    """
    from pot_flower.audit.opening import audit_openings

    report = audit_openings(path)
    if not report.ok:
        raise _fail_line(f"{typer.style('FAIL', fg='red')} {path}: {report.problem}", 1)
    typer.echo(
        f"{typer.style('OK', fg='green')} {path}: {report.rounds} rounds, "
        f"{report.opened} weighted sums opened against the miners' commitments; "
        "every model recomputed from genesis"
    )


@app.command("rewards")
def rewards(
    path: LedgerPath,
    committee: CommitteeOpt = None,
    validator_keys: KeysOpt = None,
    genesis_hash: GenesisOpt = None,
    expect_height: HeightOpt = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: full keys, balances, each miner's nodes.",
        ),
    ] = False,
) -> None:
    """Print token balances (miners and validators) from a verified ledger.

    Takes the pins of ``pot ledger verify``; exit 1 (one line) if the ledger does
    not verify, 2 on a usage error.
    """
    from pot_flower.audit import audit_ledger
    from pot_flower.audit.export import balances

    report = audit_ledger(
        path, _pins(committee, validator_keys, genesis_hash, expect_height)
    )
    if not report.ok:
        raise _fail_line(f"ledger does not verify: {report.problem}", 1)
    if as_json:
        print(json.dumps(balances(path, report), sort_keys=True))
        return
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
    typer.echo(report.trust())


@app.command("report")
def report_command(
    path: LedgerPath,
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for the PNGs and README.md (created)."),
    ] = Path("pot-report"),
    committee: CommitteeOpt = None,
    validator_keys: KeysOpt = None,
    genesis_hash: GenesisOpt = None,
    expect_height: HeightOpt = None,
) -> None:
    """Plot a verified ledger: verdicts, rewards, quality, epsilon; a summary.

    Takes the pins of ``pot ledger verify``; exit 1 (one line) if the ledger does
    not verify (nothing is written), 2 on a usage error (matplotlib missing, --out
    not writable).
    """
    from pot_flower.report import LedgerNotVerified, PlottingUnavailable, write_report

    pins = _pins(committee, validator_keys, genesis_hash, expect_height)
    try:
        written = write_report(path, out, pins)
    except LedgerNotVerified as exc:
        raise _fail_line(str(exc), 1) from None
    except PlottingUnavailable as exc:
        raise _fail_line(str(exc), 2) from None
    except OSError as exc:  # --out is a file, or not writable
        raise _fail_line(f"cannot write the report to {out}: {exc}", 2) from None
    for picture in written.pictures:
        typer.echo(f"wrote {picture}")
    typer.echo(f"wrote {written.summary}")


@keys.command("new")
def keys_new(
    out: Annotated[Path, typer.Argument(help="Key file to create (mode 0600).")],
) -> None:
    """Create an Ed25519 key (validator, coordinator or miner); print its public key."""
    from pot_flower.ops.committee_file import write_key
    from pot_flower.zk.signatures import SigningKey

    key = SigningKey.generate()
    try:
        write_key(out, key)
    except FileExistsError as exc:
        err.print(f"[red]{out} exists; refusing to overwrite a key")
        raise typer.Exit(1) from exc
    out.with_suffix(".pub").write_text(key.verify_key.raw.hex() + "\n")
    typer.echo(key.verify_key.raw.hex())


@keys.command("miners")
def keys_miners(
    keystore: Annotated[
        Path, typer.Argument(help="Keystore directory (pot-keystore).")
    ],
    count: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Miners: partition-0 .. N-1.")
    ],
    allow_list: Annotated[
        Path,
        typer.Option("--allow-list", help="Write their public keys here (hex lines)."),
    ],
) -> None:
    """Create (or keep) the keys of miners partition-0..N-1 and write their allow-list.

    For ``pot-registration = "allow-list"`` with ``pot-miner-name =
    "partition-id"``: a node with partition-id i signs with ``partition-<i>``'s
    key, so the whole federation can be registered in genesis before it starts.
    Existing keys are kept.
    """
    from pot_flower.keystore import Keystore

    store = Keystore(keystore)
    lines = []
    with _bar() as progress:
        task = progress.add_task("miner keys", total=count)
        for i in range(count):
            key = store.miner_key(f"partition-{i}")
            lines.append(f"{key.verify_key.raw.hex()}  # partition-{i}")
            progress.update(task, advance=1)
    try:
        allow_list.write_text("\n".join(lines) + "\n")
    except OSError as exc:
        raise _fail_line(f"error: cannot write {allow_list}: {exc}", 2) from exc
    typer.echo(f"{count} miner keys in {keystore}; allow-list {allow_list}")


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
    from pot_flower.ops.daemon import run_validator

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
    """Ask validators for their health (exit 1 if one does not answer or failed)."""
    import grpc

    from pot_flower.ops.committee_file import load_committee
    from pot_flower.transport import pot_pb2, pot_pb2_grpc
    from pot_flower.transport.channels import open_channel

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
                        **({"detail": r.detail} if r.detail else {}),
                    }
                )
            )
            failed = failed or r.status == "failed"
        except grpc.RpcError as exc:
            failed = True
            typer.echo(
                json.dumps({"id": i, "status": "unreachable", "error": exc.code().name})
            )
        finally:
            channel.close()
    raise typer.Exit(1 if failed else 0)


ScoreFnOption = Annotated[
    str | None,
    typer.Option(
        "--score-fn",
        help="Proof-of-Training scoring: 'module:function' every validator loads.",
    ),
]


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
    score_fn: ScoreFnOption = None,
) -> None:
    """Create keys, a committee CA with certificates, and committee.toml.

    Copy ``validator-<i>.key``, ``noise.key``, ``tls/ca.pem`` and
    ``tls/validator-<i>*.pem`` with the committee file to host i; the coordinator
    needs ``coordinator.key`` and ``tls/coordinator*.pem``, and never ``noise.key``
    (the secret the validators draw DP noise from).
    """
    from pot_flower.ops.local import prepare

    hosts = [h.strip() for h in validators.split(",") if h.strip()]
    path = prepare(
        len(hosts), directory, tls=not insecure, hosts=hosts, score_fn=score_fn
    )
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
    score_fn: ScoreFnOption = None,
) -> None:
    """Start N validator processes on loopback (development); Ctrl-C stops them.

    Creates (or reuses) keys, a coordinator key and ``committee.toml`` in DIR.
    """
    from pot_flower.ops.local import run_local_committee

    raise typer.Exit(run_local_committee(local, directory, tls=tls, score_fn=score_fn))


def main() -> None:
    """Entry point of the ``pot`` console script."""
    app()


if __name__ == "__main__":
    main()
