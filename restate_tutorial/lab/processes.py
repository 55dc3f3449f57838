"""Child processes that cannot outlive us, free ports, and waiting with a deadline."""

from __future__ import annotations

import atexit
import ctypes
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .errors import LabError

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_children: list[subprocess.Popen[bytes]] = []
_handed_out: set[int] = set()


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A pre-exec hook: the kernel SIGKILLs the child when its parent dies, even by SIGKILL."""

    def hook() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def spawn(args: Sequence[str], log_file: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None, user: str | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` with output appended to ``log_file``; it dies when this process dies.

    The child gets its own session so that a Ctrl-C in a terminal reaches only us: we decide
    when it stops. Safe from any thread: see :func:`_in_spawner_thread`. ``user``: run as this
    user (we are root).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)

    def start() -> subprocess.Popen[bytes]:
        with open(log_file, "ab") as log:
            return subprocess.Popen(
                list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True, user=user,
                preexec_fn=_die_with_parent(os.getpid()),
            )

    child = _in_spawner_thread(start)
    _children.append(child)
    return child


_spawn_requests: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]],
                                         Future[subprocess.Popen[bytes]]]] = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _in_spawner_thread(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Run ``start`` in the one thread that forks every child, and return its result.

    Linux sends the death signal (PR_SET_PDEATHSIG) when the *thread* that forked the child
    exits, not the process. Were children forked by the calling thread, a lab started from a
    worker thread would lose restate-server and the broker when that thread ended. The spawner
    thread lives as long as the process (a daemon: it ends only with it).
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_serve_spawn_requests, name="lab-spawner",
                                        daemon=True)
            _spawner.start()
    result: Future[subprocess.Popen[bytes]] = Future()
    _spawn_requests.put((start, result))
    return result.result()


def _serve_spawn_requests() -> None:
    while True:
        start, result = _spawn_requests.get()
        try:
            result.set_result(start())
        except BaseException as error:  # handed to the caller
            result.set_exception(error)


def terminate(child: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; returns once the child is gone."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if child in _children:
        _children.remove(child)


def kill(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL, as a crash would; returns once the child is gone."""
    if child.poll() is None:
        child.kill()
    child.wait()
    if child in _children:
        _children.remove(child)


_temp_dirs: list[Path] = []


def temp_dir(prefix: str) -> Path:
    """A new directory in the system temp dir, deleted when this process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _temp_dirs.append(path)
    return path


@atexit.register
def _reap_children() -> None:
    for child in list(_children):
        terminate(child, timeout=5.0)
    for path in _temp_dirs:  # after the children: they may write there until they end
        shutil.rmtree(path, ignore_errors=True)
    for port in _handed_out:
        (_PORT_CLAIMS / str(port)).unlink(missing_ok=True)


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports handed out by any living process of ours, one file each, named by port, holding the
# owner's pid: a lab picks its ports seconds before its servers bind them. In /tmp, where there
# is one, whatever a process's $TMPDIR: every process of the user must see the same claims.
_PORT_CLAIMS = (Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())) \
    / f"restate-tutorial-ports-{os.getuid()}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, that this process has not
    handed out before, and that no other living process of ours has.

    It is taken from below the kernel's ephemeral range, so that no outgoing connection can grab
    it between now and the moment a server binds it (a port picked with ``bind(0)`` can). The
    claim keeps our other processes (test workers, notebook kernels) off it meanwhile: they too
    would find it free until the server binds it.
    """
    low = _ephemeral_low()
    candidates = range(10000, low) if low > 11000 else range(low, 65536)
    for _ in range(1000):
        port = random.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
        if not _claim(port):
            continue
        _handed_out.add(port)
        return port
    raise LabError("Found no free TCP port on 127.0.0.1: free some ports and try again.")


def _claim(port: int) -> bool:
    """Claim ``port`` for this process, unless a living process of ours holds it."""
    _PORT_CLAIMS.mkdir(parents=True, exist_ok=True)
    path = _PORT_CLAIMS / str(port)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                owner = int(path.read_text() or 0)
                if owner:  # (0: the claim is being written)
                    os.kill(owner, 0)  # raises if there is no such process
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # its owner is gone
                continue
            return owner == os.getpid()
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def serve_http(port: int, handler: type[BaseHTTPRequestHandler],
               what: str) -> ThreadingHTTPServer:
    """Serve ``handler`` on 127.0.0.1:``port`` from a daemon thread (a small server of the
    lab's own: the auth proxy, the trace collector); ``stop_http`` ends it."""
    ensure_port_free(port, what)
    server = ThreadingHTTPServer((LOOPBACK, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=what, daemon=True).start()
    return server


def stop_http(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def ensure_port_free(port: int, what: str) -> None:
    """Raise a one-sentence LabError when something already listens on ``port``."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            raise LabError(
                f"Port {port} on {LOOPBACK} (wanted for {what}) is already in use: stop what holds "
                f"it (see `ss -ltnp 'sport = :{port}'`), or let the lab pick free ports."
            ) from None


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.02, dead: Callable[[], str | None] | None = None,
               slowest: float = 0.25) -> None:
    """Poll ``check`` until it is true; raise LabError naming ``what`` at the deadline.

    It polls every ``interval`` seconds at first, then less and less often, up to every
    ``slowest``: a check is often a SQL query, which costs restate-server ~5 ms of CPU, and a
    long wait need not ask 50 times a second. ``dead`` may return a reason to give up early
    (e.g. the process being waited on exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if dead is not None and (reason := dead()):
            raise LabError(f"{what} did not come up: {reason}")
        if time.monotonic() > deadline:
            raise LabError(f"{what} was not ready within {timeout:g} s; see its log for why.")
        time.sleep(interval)
        interval = min(max(slowest, interval), interval * 1.25)
