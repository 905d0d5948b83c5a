"""Execute every notebook here from top to bottom (nbclient), as a reader would.

Run by ``bash scripts/notebooks.sh`` (and so by ``.ci/run``); each notebook's
wall time is printed at the end and written to ``$POT_NOTEBOOK_TIMES`` if set;
``$POT_NOTEBOOK_OUT`` keeps the executed notebooks (outputs included) there.
A cell that raises fails its notebook, with the cell and the traceback.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(HERE.glob("*.ipynb"))
TIMES: dict[str, float] = {}


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_from_top_to_bottom(path: Path) -> None:
    """Every cell runs without an error, in order, in a fresh kernel."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=900,  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE)}},
    )
    started = time.perf_counter()
    try:
        client.execute()
    finally:  # a failing notebook's outputs are what one needs to see
        executed = os.environ.get("POT_NOTEBOOK_OUT")
        if executed:
            Path(executed).mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, Path(executed) / path.name)
    TIMES[path.name] = round(time.perf_counter() - started, 1)
    out = os.environ.get("POT_NOTEBOOK_TIMES")
    if out:
        Path(out).write_text(json.dumps(TIMES, indent=1, sort_keys=True))
    errors = [
        o
        for c in notebook.cells
        for o in c.get("outputs", ())
        if o.output_type == "error"
    ]
    assert not errors
