"""Serve Restate services over HTTP/2 from inside this process (a Jupyter kernel, a test).

Hypercorn runs on its own event loop in a background thread, so a synchronous call from a
notebook cell, an ``await``ed one, and a cell that blocks all leave the handlers running, and a
kernel interrupt (SIGINT reaches the main thread only) does not touch it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import warnings
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.asyncio.worker_context import AsyncioSingleTask
from hypercorn.config import Config

from . import processes
from .errors import LabError
from .processes import LOOPBACK

log = logging.getLogger("restate_tutorial.service_host")
log.setLevel(logging.ERROR)  # hypercorn's "Running on…" and lifespan notices are noise here
# A handler cut off by stop() can leave a coroutine it made never awaited (the OpenAI Agents
# SDK's run_single_turn): a real crash prints nothing about it, so neither does ours.
warnings.filterwarnings("ignore", "coroutine 'run_single_turn' was never awaited",
                        RuntimeWarning)


class ServiceHost:
    """Hypercorn serving one ASGI app (``restate.app([...])``) on 127.0.0.1.

    ``stop()`` behaves like a crash of the service process: in-flight handlers are cut off, and
    Restate retries them once ``start()`` brings the host back on the same port. One thing a
    crash would stop is let finish: a ``ctx.run`` step already running in a worker thread (the
    SDK runs synchronous steps in a thread pool, and a thread cannot be killed). ``stop()``
    returns only once those threads are done, so their effects land *before* the host is back —
    never concurrently with Restate's retry of the same step. Their answers are lost: Restate
    runs those steps again, which the keys of the simulated systems turn into repeats. (A real
    zombie — a frozen or cut-off process that wakes up — has no such fence: there, only
    idempotent downstream calls keep a repeat harmless.)
    """

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or processes.free_port()
        #: Seconds to hold each message a handler sends to Restate (0: none). A crash test
        #: slows handlers down so that its crash lands right after the journal entry it aims at.
        self.pace = 0.0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> ServiceHost:
        """Serve and wait until the port accepts connections; a no-op when already serving."""
        if self.running:
            return self
        processes.ensure_port_free(self.port, "the tutorial's service host")
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"service-host:{self.port}",
                                        daemon=True)
        self._thread.start()
        processes.wait_until(lambda: processes.port_open(self.port), timeout,
                             f"service host {self.url}", dead=self._exit_reason)
        return self

    def _exit_reason(self) -> str | None:
        if self.running:
            return None
        return f"hypercorn stopped ({self._error!r})"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._on_loop_exception)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # reported through start() / stop()
            self._error = error
        finally:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            # The fence: step functions still running in worker threads finish here (unless
            # stop() cut it off too: those steps then finish on their own).
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self) -> None:
        config = Config()
        config.bind = [f"{LOOPBACK}:{self.port}"]
        config.graceful_timeout = 0.0
        # hypercorn closes a connection after 1,000 requests by default; restate-server keeps
        # one HTTP/2 connection per deployment and its 1,001st attempt then hangs (seen: the
        # saga benchmark stalled at invocation 1,001). One connection serves for ever.
        config.keep_alive_max_requests = 2**62
        config.accesslog = None
        config.errorlog = log
        self._stopping = asyncio.Event()
        await serve(self._paced, config, shutdown_trigger=self._stopping.wait)

    async def _paced(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def send_paced(message: dict[str, Any]) -> None:
            if self.pace and message["type"] == "http.response.body" and message.get("body"):
                await asyncio.sleep(self.pace)
            await send(message)

        await self.app(scope, receive, send_paced if scope["type"] == "http" else send)

    def stop(self, timeout: float = 5.0, at_once: bool = False) -> None:
        """Stop serving now; in-flight handlers are cancelled — ``at_once``, or once their
        connections had ``timeout / 2`` seconds to close on their own."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            return
        stopping = self._stopping
        if stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
        thread.join(0.1 if at_once else timeout / 2)
        if thread.is_alive():  # connections that do not close on their own: cut them off
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
            thread.join(timeout / 2)
        if thread.is_alive():
            raise LabError(f"The service host {self.url} did not stop within {timeout:g} s: a "
                           "ctx.run step is still running in it; let it finish, then stop again.")
        self._thread = None

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Connections cut off by stop() are expected; so is one connection's end in hypercorn
        when restate-server vanished mid-stream (SIGKILLed: hypercorn 0.18's HTTP/2 code then
        fails on a stream it has already closed, e.g. ``KeyError: 15``): Restate retries on a
        new connection. Kept in the log at DEBUG, not printed under a learner's cell. Anything
        else is reported as usual."""
        stopping = self._stopping is not None and self._stopping.is_set()
        if stopping or isinstance(context.get("exception"), asyncio.CancelledError):
            return
        if context.get("message", "").startswith("Unhandled exception in client_connected_cb"):
            log.debug("a connection to %s ended abruptly: %r", self.url, context.get("exception"))
            return
        loop.default_exception_handler(context)

    def restart(self, at_once: bool = False) -> ServiceHost:
        self.stop(at_once=at_once)
        return self.start()

    def __repr__(self) -> str:
        return f"ServiceHost({self.url}, {'serving' if self.running else 'stopped'})"


async def _restart_idle_timer(self: AsyncioSingleTask, task_group: Any, action: Any) -> None:
    """hypercorn 0.18's ``AsyncioSingleTask.restart``, minus its bug: when a connection ends
    while its task group shuts down (every connection, when the host stops with handlers in
    flight), the group refuses the new idle timer and the timer's coroutine was never awaited —
    a RuntimeWarning printed under a learner's cell. Here the refused coroutine is closed."""
    async with self._lock:
        if self._handle is not None:
            self._handle.cancel()
            try:
                await self._handle
            except asyncio.CancelledError:
                pass
        timer = action()
        try:
            self._handle = task_group._task_group.create_task(timer)
        except RuntimeError:  # the task group is shutting down: no timer needed
            timer.close()
            self._handle = None


AsyncioSingleTask.restart = _restart_idle_timer  # type: ignore[method-assign]

