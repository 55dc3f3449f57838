"""Any cell can be run again: each notebook, with every code cell run twice in a row.

(The last cell stops the lab; it runs once.) nbmake runs each notebook once, top to bottom;
this runs the doubled notebook the same way, from a fresh kernel in the notebooks' folder.
"""

from __future__ import annotations

import copy
import os
import signal
import threading
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

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


def test_a_long_cell_interrupted_and_run_again_lets_the_cells_after_it_pass() -> None:
    """Notebook 02's longest wait, interrupted (the kernel's stop button) mid-way, then run
    again: it and the cells after it, to the journal of section 5, pass."""
    path = NOTEBOOKS / "02_transactional_event_processing.ipynb"
    notebook = nbformat.read(path, as_version=4)
    [long_cell] = [i for i, c in enumerate(notebook.cells) if "live.wait(" in c.source]
    [journal] = [i for i, c in enumerate(notebook.cells) if "views.journal(lab.admin, user1_first"
                 in c.source]
    client = NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}})
    with client.setup_kernel(env={**os.environ, "RESTATE_TUTORIAL_POLL_SECONDS": "2"}):
        for index, cell in enumerate(notebook.cells[:long_cell]):
            client.execute_cell(cell, index)
        # The stop button: SIGINT to the kernel (its interrupt mode is "signal").
        kernel = client.km.provisioner.process.pid  # type: ignore[union-attr]
        interrupt = threading.Timer(3.0, os.kill, (kernel, signal.SIGINT))
        interrupt.start()
        with pytest.raises(CellExecutionError, match="KeyboardInterrupt"):
            client.execute_cell(notebook.cells[long_cell], long_cell)  # ~10 s with 2 s polls
        interrupt.join()
        for index in range(long_cell, journal + 1):
            client.execute_cell(notebook.cells[index], index)
        client.execute_cell(notebook.cells[-1], len(notebook.cells) - 1)  # stops the lab
