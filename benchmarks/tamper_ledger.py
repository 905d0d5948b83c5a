"""Tamper with a genuine ledger in every way pot_flower.sim.tamper knows; count.

An embedded committee of 4 validators certifies 3 rounds (every kind of verdict);
each tamper kind (fields x mutations x forger variants, forged committees, rows,
certificates, files, models, WAL damage) is applied to a fresh copy of one
validator's ledger, which is then verified with the committee (its genesis keys)
and the height pinned, through ``audit_ledger`` or, with --cli, through
``pot ledger verify`` itself. Counted: kinds tried, rejected, accepted, tracebacks
(or checks that raised), and kinds whose expected first bad block was named.
--unpinned also runs every kind without pins, to show what the pins add.

    python benchmarks/tamper_ledger.py [--cli] [--unpinned]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from pot_flower.audit import AuditReport, audit_ledger
from pot_flower.cli import app
from pot_flower.sim import tamper

ROOT = Path(__file__).resolve().parents[1]


def cli_verify(genuine: tamper.Genuine) -> Callable[[Path], AuditReport]:
    """``pot ledger verify`` with the pins, read back as a report."""
    runner = CliRunner()
    keys = ",".join(k.hex() for k in genuine.keys)
    pins = ["--validator-keys", keys, "--expect-height", str(genuine.head)]

    def verify(path: Path) -> AuditReport:
        result = runner.invoke(app, ["ledger", "verify", str(path), *pins])
        if result.exception is not None and not isinstance(
            result.exception, SystemExit
        ):
            raise result.exception
        if "Traceback" in result.output or len(result.output.splitlines()) != 1:
            raise RuntimeError(f"not one clean line: {result.output!r}")
        report = AuditReport(path)
        if result.exit_code != 0:
            problem = result.output.strip().split(": ", 1)[1]
            report.problem = problem
            if problem.startswith("block "):
                report.bad_block = int(problem.split(":", 1)[0].split()[1])
        return report

    return verify


def run(directory: Path, *, cli: bool, unpinned: bool) -> dict[str, object]:
    started = time.monotonic()
    genuine = tamper.build_genuine(directory / "genuine")
    kinds = tamper.tamper_kinds(genuine)
    verify = cli_verify(genuine) if cli else None
    result = tamper.run_suite(genuine, directory / "pinned", kinds, verify)
    summary: dict[str, object] = {
        "pins": "committee (genesis keys) + expected height",
        "through": "pot ledger verify" if cli else "audit_ledger",
        **result.summary(),
    }
    if unpinned:
        bare = tamper.run_suite(
            genuine, directory / "unpinned", kinds, lambda path: audit_ledger(path)
        )
        summary["accepted_without_pins"] = len(bare.accepted)
        summary["accepted_without_pins_families"] = sorted(
            {o.kind.family for o in bare.accepted}
        )
    summary["seconds"] = round(time.monotonic() - started, 1)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cli", action="store_true", help="verify through the CLI")
    parser.add_argument("--unpinned", action="store_true", help="also without pins")
    parser.add_argument(
        "--json-out", type=Path, default=ROOT / "benchmarks/results/tamper_ledger.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        summary = run(Path(tmp), cli=args.cli, unpinned=args.unpinned)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(summary, indent=1) + "\n")
    headline = {
        k: summary[k]
        for k in (
            "kinds",
            "rejected",
            "accepted",
            "tracebacks",
            "first_bad_block_expected",
            "first_bad_block_named",
            "seconds",
        )
    }
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
