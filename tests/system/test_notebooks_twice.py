"""Any cell can be run again — also one interrupted half-way. (Every notebook with each code
cell run twice in a row: the browser test, tests/system/test_make_lab.py, runs it that way.)
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


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
