"""Progress bars for the benchmarks: rich, on stderr, gone once done.

Results stay on stdout (the JSON or summary line last); ``print`` inside the bar's
block still lands above it.

    with steps("cells", total=len(cells)) as advance:
        for cell in cells:
            ...
            advance()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def steps(description: str, total: int | None = None) -> Iterator[Callable[[], None]]:
    """A bar of ``total`` steps (unknown: a spinner-like count); yields ``advance``."""
    with Progress(
        f"[progress.description]{description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)
