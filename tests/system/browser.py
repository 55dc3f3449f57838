"""One JupyterLab from `make lab` for the browser tests of a whole run.

Under `make test` the run's controller (pytest-xdist) starts it and every test worker uses it;
a run without workers starts its own. (Each worker launches its own Chromium: one Chromium
shared over its DevTools endpoint cost more CPU, in it and in Playwright, than six, since
every connection follows every page.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from restate_tutorial.lab import free_port, wait_until
from restate_tutorial.lab.binaries import PROJECT_DIR
from restate_tutorial.lab.failover import tls
from restate_tutorial.lab.processes import spawn, terminate

CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright's own download is not reachable
# Headless, loopback only, and no calls home: the machine's network is closed (SPEC §5).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
NO_CHROMIUM = ("The browser test needs Chromium: install Debian's chromium package "
               "(`apt-get install chromium`; `make test` does it when run as root).")
TOKEN = "lab-test-token"


@dataclass
class JupyterLabServer:
    """Where the run's JupyterLab listens."""

    jupyterlab: str
    logs: str  # the directory of its log, for an error message

    @classmethod
    def start(cls) -> tuple[JupyterLabServer, list[subprocess.Popen[bytes]], Path]:
        """Start it without waiting for it (a user waits: :meth:`wait_until_up`); returns the
        stack, its processes and its directory (settings, log)."""
        home = Path(tempfile.mkdtemp(prefix="restate-tutorial-browser-"))
        # JupyterLab settings of its own: every cell in the page (no windowing), so the whole
        # notebook can be checked, and no autosave, so the notebooks stay without outputs.
        settings = home / "jupyterlab-settings"
        for plugin, values in (("notebook-extension/tracker", '{"windowingMode": "none"}'),
                               ("docmanager-extension/plugin", '{"autosave": false}')):
            path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(values)
        lab_port = free_port()
        lab = spawn(["make", "--no-print-directory", "lab",
                     f"LAB_ARGS=--ServerApp.port={lab_port} --no-browser "
                     f"--IdentityProvider.token={TOKEN}"],
                    home / "jupyterlab.log", cwd=PROJECT_DIR,
                    env={"JUPYTERLAB_SETTINGS_DIR": str(settings),
                         "JUPYTERLAB_WORKSPACES_DIR": str(home / "jupyterlab-workspaces")})
        return cls(f"http://127.0.0.1:{lab_port}", str(home)), [lab], home

    def wait_until_up(self) -> None:
        wait_until(lambda: _answers(f"{self.jupyterlab}/api/contents?token={TOKEN}"), 90,
                   f"JupyterLab of the browser tests (log in {self.logs})")


def stop(processes: list[subprocess.Popen[bytes]], home: Path) -> None:
    for process in processes:  # `make lab` runs JupyterLab as a child: the whole group
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        terminate(process, timeout=30)
    shutil.rmtree(home, ignore_errors=True)


_http = httpx.Client(verify=tls())  # (a client per probe costs ~65 ms of CPU)


def _answers(url: str) -> bool:
    try:
        return _http.get(url, timeout=2).is_success
    except httpx.HTTPError:
        return False
