"""After the last verified block: stray rows, completeness pins, WAL damage."""

from __future__ import annotations

from collections.abc import Sequence

from pot_flower.audit.report import AuditReport, Failure, LiveHead, Pins, WalDamage
from pot_flower.audit.rows import RawRow, storage_class


def _stray_note(strays: Sequence[RawRow]) -> str:
    if not strays:
        return ""
    value = strays[0].height
    shown = storage_class(value) + ("" if value is None else f" {value!r:.24}")
    return (
        f"; {len(strays)} row(s) with a height that is not a non-negative integer "
        f"(e.g. {shown})"
    )


def _wal_note(wal: WalDamage | None) -> str:
    return "" if wal is None else f" ({wal.detail})"


def _after_last(
    report: AuditReport,
    pins: Pins,
    height: int,
    later: dict[int, list[RawRow]],
    strays: list[RawRow],
) -> None:
    """Rows past the verified ones, then completeness pins and WAL damage.

    WAL damage names the block after the last one read ("may be lost") unless a
    completeness pin shows every block is there; then it is a ledger-level
    failure (the file is damaged all the same).
    """
    wal = report.wal
    if later:
        report.fail(
            Failure.MISSING,
            f"missing (the ledger holds block {min(later)}){_stray_note(strays)}",
            height,
        )
    elif strays:
        report.fail(Failure.MALFORMED_ROW, f"missing{_stray_note(strays)}", height)
    elif pins.expect_height is not None and report.head != pins.expect_height:
        _expected_height(report, pins.expect_height, _wal_note(wal))
    else:
        complete = pins.expect_height is not None
        if pins.live_head is not None and report.run is not None:
            _live(report, pins.live_head(report.run), _wal_note(wal))
            if report.ok:
                complete = True
            elif report.failure != Failure.LIVE_HEAD_UNKNOWN or wal is None:
                return  # else the WAL damage below is the definite failure
        if wal is not None:
            if complete:
                report.fail(
                    Failure.WAL_DAMAGED,
                    f"{wal.detail} (every expected block is present)",
                    None,
                )
            else:
                report.fail(Failure.WAL_DAMAGED, f"may be lost: {wal.detail}", height)


def _expected_height(report: AuditReport, expected: int, note: str) -> None:
    if report.head < expected:
        report.fail(
            Failure.MISSING,
            f"missing: the ledger ends at {report.head}, the expected height is "
            f"{expected}{note}",
            report.head + 1,
        )
    else:
        report.fail(
            Failure.BEYOND_EXPECTED,
            f"beyond the expected height {expected} (the ledger ends at {report.head})",
            expected + 1,
        )


def _live(report: AuditReport, live: LiveHead, note: str) -> None:
    report.live = live
    if live.answered < live.quorum:
        report.fail(
            Failure.LIVE_HEAD_UNKNOWN,
            f"completeness not checked: only {live.answered} of {live.total} "
            f"validators answered (quorum {live.quorum})",
            None,
        )
    elif live.height is None or live.block is None:
        report.fail(
            Failure.LIVE_HEAD_UNKNOWN,
            f"completeness not checked: no block of run {report.run} is vouched "
            f"for by a quorum of the {live.answered} validators that answered",
            None,
        )
    elif live.height > report.head:
        report.fail(
            Failure.MISSING,
            f"missing: the ledger ends at {report.head}, a quorum of live "
            f"validators certifies height {live.height}{note}",
            report.head + 1,
        )
    elif report.hashes[live.height] != live.block:
        report.fail(
            Failure.FORK,
            "differs from the block a quorum of live validators certifies "
            f"({live.block.hex()[:16]})",
            live.height,
        )
