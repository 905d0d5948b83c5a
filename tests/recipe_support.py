"""Running an example recipe (a shell script that starts processes) from a test."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path


def alive(group: int) -> list[int]:
    """The live (not zombie) processes of process group or session ``group``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            # pid (comm) state ppid pgrp session ...; comm may hold spaces
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and group in (int(fields[2]), int(fields[3])):
                pids.append(int(stat.parent.name))
    return pids


def run_recipe(
    command: list[str], env: dict[str, str], log: Path, timeout: float
) -> tuple[int, str]:
    """Run ``command`` in its own session; (exit status, output).

    On a timeout the script and its foreground children get SIGTERM together (its
    EXIT trap stops what it started), then SIGKILL 45 s later.
    """
    with log.open("w") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return proc.returncode, log.read_text(errors="replace")


def reap(groups: Iterable[int]) -> dict[int, list[int]]:
    """What was still alive in ``groups``, killed now (never left behind)."""
    leftovers = {g: alive(g) for g in groups}
    for pids in leftovers.values():
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return leftovers
