"""Any cell can be run again: each notebook, with every code cell run twice in a row.

(The last cell stops the lab; it runs once.) nbmake runs each notebook once, top to bottom;
this runs the doubled notebook the same way, from a fresh kernel in the notebooks' folder.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_every_cell_can_run_twice_in_a_row(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    doubled = []
    for cell in notebook.cells:
        doubled.append(cell)
        if cell.cell_type == "code" and cell is not code[-1]:
            doubled.append(copy.deepcopy(cell))
    notebook.cells = doubled
    client = NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
