"""Notebooks live in git without outputs (``scripts/strip_notebooks.py`` strips)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
STRIP = REPO / "scripts" / "strip_notebooks.py"
NOTEBOOKS = sorted(
    p
    for p in (REPO / "examples").rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts  # Jupyter's autosaves, not in git
)


def check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STRIP), "--check", *map(str, paths)],
        capture_output=True,
        text=True,
    )


def test_every_notebook_is_stored_without_outputs() -> None:
    assert NOTEBOOKS, "no notebooks found"
    result = check(*NOTEBOOKS)
    assert result.returncode == 0, result.stdout


def test_a_notebook_with_outputs_fails_the_check_until_stripped(
    tmp_path: Path,
) -> None:
    notebook = nbformat.read(NOTEBOOKS[0], as_version=4)
    cell = next(c for c in notebook.cells if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("stream", text="42\n")]
    cell.execution_count = 1
    path = tmp_path / "run.ipynb"
    nbformat.write(notebook, path)
    result = check(path)
    assert result.returncode == 1 and "has outputs" in result.stdout
    subprocess.run([sys.executable, str(STRIP), str(path)], check=True)
    assert check(path).returncode == 0
    assert (
        nbformat.read(path, as_version=4).cells
        == nbformat.read(NOTEBOOKS[0], as_version=4).cells
    )
