"""`make lab` — the learner's one command — serves JupyterLab on 127.0.0.1 with the notebooks."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx

from restate_tutorial.lab import free_port, wait_until
from restate_tutorial.lab.binaries import PROJECT_DIR


def test_make_lab_serves_the_notebooks_on_loopback() -> None:
    port, token = free_port(), "lab-test-token"
    lab = subprocess.Popen(
        ["make", "--no-print-directory", "lab",
         f"LAB_ARGS=--ServerApp.port={port} --no-browser --IdentityProvider.token={token}"],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        def contents() -> list[str]:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/contents",
                                   headers={"Authorization": f"token {token}"}, timeout=2)
            except httpx.HTTPError:
                return []
            return [item["name"] for item in answer.json()["content"]] if answer.is_success \
                else []

        wait_until(lambda: bool(contents()), 60, "JupyterLab from `make lab`",
                   dead=lambda: None if lab.poll() is None else lab.stdout.read())  # type: ignore[union-attr]
        assert "00_durable_execution_basics.ipynb" in contents()
        # No "get notified about Jupyter news?" pop-up over the notebooks.
        settings = httpx.get(f"http://127.0.0.1:{port}/lab/api/settings/"
                             "@jupyterlab/apputils-extension:notification",
                             headers={"Authorization": f"token {token}"}, timeout=5).json()
        defaults = settings["schema"]["properties"]  # overrides.json sets the defaults
        assert defaults["fetchNews"]["default"] == "false", defaults["fetchNews"]
        assert defaults["checkForUpdates"]["default"] is False, defaults["checkForUpdates"]
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(30)
