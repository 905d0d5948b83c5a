"""Strip outputs and execution counts from notebooks (git keeps them clean).

    python scripts/strip_notebooks.py examples/notebooks/*.ipynb
    python scripts/strip_notebooks.py --check examples/notebooks/*.ipynb

``--check`` changes nothing and exits 1 naming each notebook that has outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat


def dirty(notebook: nbformat.NotebookNode) -> bool:
    """Whether any cell carries outputs or an execution count."""
    return (
        any(
            cell.get("outputs") or cell.get("execution_count") is not None
            for cell in notebook.cells
            if cell.cell_type == "code"
        )
        or "widgets" in notebook.metadata
    )


def strip(notebook: nbformat.NotebookNode) -> None:
    """Clear every code cell's outputs and execution count, in place."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    notebook.metadata.pop("widgets", None)


def main(argv: list[str] | None = None) -> int:
    """Strip (or ``--check``) the notebooks named."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    found = []
    for path in args.paths:
        notebook = nbformat.read(path, as_version=4)
        if not dirty(notebook):
            continue
        found.append(path)
        if not args.check:
            strip(notebook)
            nbformat.write(notebook, path)
    for path in found:
        print(f"{path}: {'has outputs' if args.check else 'stripped'}")
    return 1 if args.check and found else 0


if __name__ == "__main__":
    sys.exit(main())
