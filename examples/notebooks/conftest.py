"""Print each notebook's wall time at the end of the run."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """After the run: one line per notebook executed, with its seconds."""
    from test_notebooks import TIMES

    if TIMES:
        terminalreporter.section("notebook wall times (s)")
        for name, seconds in sorted(TIMES.items()):
            terminalreporter.write_line(f"{name}: {seconds}")
