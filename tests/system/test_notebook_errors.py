"""In a notebook a LabError shows as one line — and still fails the cell (so nbmake sees it)."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def test_lab_error_is_one_line_and_fails_the_cell() -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from restate_tutorial.lab import LabError\nraise LabError('Port 1 is taken: fix it.')")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    with pytest.raises(CellExecutionError):
        NotebookClient(notebook, timeout=60).execute()
    (error,) = [o for o in notebook.cells[0].outputs if o.output_type == "error"]
    assert error.traceback == ["LabError: Port 1 is taken: fix it."]
