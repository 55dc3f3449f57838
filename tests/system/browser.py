"""One JupyterLab from `make lab` and one Chromium for the browser tests of a whole run.

Under `make test` the run's controller (pytest-xdist) starts both and every test worker uses
them: a Chromium loading JupyterLab for the first time costs ~11 s of CPU, a page after that
~1 s, and each JupyterLab costs its own start and upkeep. A run without workers starts its own.
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
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--remote-debugging-address=127.0.0.1"]
NO_CHROMIUM = ("The browser test needs Chromium: install Debian's chromium package "
               "(`apt-get install chromium`; `make test` does it when run as root).")
TOKEN = "lab-test-token"


@dataclass
class BrowserStack:
    """Where the run's JupyterLab and Chromium (its DevTools endpoint) listen."""

    jupyterlab: str
    chromium: str  # "" when there is no Chromium
    logs: str  # the directory of both logs, for an error message

    @classmethod
    def start(cls) -> tuple[BrowserStack, list[subprocess.Popen[bytes]], Path]:
        """Start both without waiting for them (a user waits: :meth:`wait_until_up`); returns
        the stack, its processes and its directory (settings, profile, logs)."""
        home = Path(tempfile.mkdtemp(prefix="restate-tutorial-browser-"))
        # JupyterLab settings of its own: every cell in the page (no windowing), so the whole
        # notebook can be checked, and no autosave, so the notebooks stay without outputs.
        settings = home / "jupyterlab-settings"
        for plugin, values in (("notebook-extension/tracker", '{"windowingMode": "none"}'),
                               ("docmanager-extension/plugin", '{"autosave": false}')):
            path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(values)
        lab_port, devtools_port = free_port(), free_port()
        lab = spawn(["make", "--no-print-directory", "lab",
                     f"LAB_ARGS=--ServerApp.port={lab_port} --no-browser "
                     f"--IdentityProvider.token={TOKEN}"],
                    home / "jupyterlab.log", cwd=PROJECT_DIR,
                    env={"JUPYTERLAB_SETTINGS_DIR": str(settings),
                         "JUPYTERLAB_WORKSPACES_DIR": str(home / "jupyterlab-workspaces")})
        if not Path(CHROMIUM).exists():
            return cls(f"http://127.0.0.1:{lab_port}", "", str(home)), [lab], home
        chromium = spawn([CHROMIUM, *CHROMIUM_ARGS, f"--remote-debugging-port={devtools_port}",
                          f"--user-data-dir={home / 'chromium-profile'}", "about:blank"],
                         home / "chromium.log")
        stack = cls(f"http://127.0.0.1:{lab_port}", f"http://127.0.0.1:{devtools_port}", str(home))
        return stack, [lab, chromium], home

    def wait_until_up(self) -> None:
        waits = [(f"{self.jupyterlab}/api/contents?token={TOKEN}", "JupyterLab")]
        if self.chromium:  # else the browser fixture says what is missing
            waits.append((f"{self.chromium}/json/version", "Chromium's DevTools endpoint"))
        for url, what in waits:
            wait_until(lambda url=url: _answers(url), 90,
                       f"{what} of the browser tests (logs in {self.logs})")


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
