"""``pot report``: pictures and a summary of a verified ledger.

>>> from pot_flower.report import write_report
>>> written = write_report(Path("ledger/validator-0"), Path("report"))  # doctest: +SKIP
>>> written.summary  # doctest: +SKIP
PosixPath('report/README.md')

The ledger is verified first (:func:`~pot_flower.audit.audit_ledger`); a ledger
that does not verify gets no report. Then, with matplotlib: verdicts per round by
reason, cumulative rewards of miners and validators, each miner's quality (and
the committee's scores on scored chains), epsilon where DP is on; and one
Markdown summary linking them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pot_flower.audit import AuditReport, audit_ledger
from pot_flower.audit.report import Pins
from pot_flower.report import plots
from pot_flower.report.plots import PlottingUnavailable
from pot_flower.report.series import LedgerSeries, ledger_series, short_labels

__all__ = [
    "LedgerNotVerified",
    "PlottingUnavailable",
    "Written",
    "ledger_series",
    "write_report",
]

PICTURES = ("verdicts.png", "rewards.png", "quality.png", "privacy.png")


class LedgerNotVerified(ValueError):
    """The ledger does not verify: no report is drawn from it."""


@dataclass
class Written:
    """What :func:`write_report` wrote."""

    summary: Path
    pictures: list[Path] = field(default_factory=list)


def write_report(path: Path, out: Path, pins: Pins | None = None) -> Written:
    """Verify the ledger at ``path``, then write PNGs and ``README.md`` in ``out``.

    Raises
    ------
    LedgerNotVerified
        The audit failed (its problem is the message); nothing is written.
    PlottingUnavailable
        matplotlib is not installed (checked before the audit).
    OSError
        ``out`` cannot be made or written (a file, no permission).

    """
    plots.require()
    report = audit_ledger(path, pins)
    if not report.ok:
        raise LedgerNotVerified(f"ledger does not verify: {report.problem}")
    # Read only the verified heights: a block appended since is not reported.
    series = ledger_series(path, up_to=report.blocks - 1)
    out.mkdir(parents=True, exist_ok=True)
    for name in PICTURES:  # a previous report's pictures would be stale
        (out / name).unlink(missing_ok=True)
    written = Written(summary=out / "README.md")
    if series.rounds:
        written.pictures.append(plots.verdicts(series, out / "verdicts.png"))
        written.pictures.append(plots.rewards(series, out / "rewards.png"))
        if series.quality or series.score:
            written.pictures.append(plots.quality(series, out / "quality.png"))
        if series.local_epsilon or any(e is not None for e in series.epsilon):
            written.pictures.append(plots.privacy(series, out / "privacy.png"))
    partial = written.summary.with_suffix(".partial")
    partial.write_text(summary(path, report, series, written.pictures))
    partial.replace(written.summary)
    return written


def summary(
    path: Path, report: AuditReport, series: LedgerSeries, pictures: list[Path]
) -> str:
    """The Markdown summary: what was verified, totals, the pictures."""
    rejected = sum(sum(r.values()) for r in series.rejected)
    lines = [
        f"# Ledger report: `{path}`",
        "",
        f"Verified: {report.blocks} blocks (genesis + {len(series.rounds)} rounds), "
        f"run {report.run}, committee of {len(report.validators)}; "
        f"{report.minted} token units minted. Trust: {report.trust()}.",
        "",
        "| round | accepted (paid nothing) | rejected (by reason) | clipped | minted |"
        + (" epsilon |" if any(e is not None for e in series.epsilon) else ""),
        "|---|---|---|---|---|"
        + ("---|" if any(e is not None for e in series.epsilon) else ""),
    ]
    for i, height in enumerate(series.rounds):
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(series.rejected[i].items()))
        row = (
            f"| {height} | {series.accepted[i]} ({series.unpaid[i]}) | "
            f"{reasons or '0'} | {series.clipped[i]} | {series.minted[i]} |"
        )
        if any(e is not None for e in series.epsilon):
            eps = series.epsilon[i]
            row += f" {'' if eps is None else f'{eps:.4f}'} |"
        lines.append(row)
    lines += [
        "",
        f"Totals: {sum(series.accepted)} accepted, {rejected} rejected.",
        "",
        "| miner | nodes | balance |",
        "|---|---|---|",
    ]
    # Every miner that submitted, paid or not (the audit lists only the paid).
    balance = {k: v[-1] for k, v in series.miner_balance.items()}
    short = short_labels(balance)
    for label, amount in sorted(balance.items(), key=lambda kv: (-kv[1], kv[0])):
        nodes = ", ".join(str(n) for n in sorted(series.miner_nodes.get(label, ())))
        lines.append(f"| `{short[label]}` | {nodes} | {amount} |")
    for index, amount in sorted(report.validator_balances.items()):
        lines.append(f"| validator {index} | | {amount} |")
    lines.append("")
    for picture in pictures:
        lines += [f"![{picture.stem}]({picture.name})", ""]
    return "\n".join(lines)
