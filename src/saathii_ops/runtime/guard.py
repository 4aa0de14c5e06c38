"""Stopping a run: at its deadline, or on SIGINT / SIGTERM (SPEC §9, issue 10 items 10, 11).

A run is told to stop in one of two ways, and both end the same way: the
statement in progress is cancelled on the server (psycopg2's `cancel()`,
SQLite's `interrupt()`), and every later statement of the run's thread raises
`RunStopped` before it is sent. The runner then rolls back, records the run as
failed when it can, and reports one line.

Signals: a Python signal handler runs only when the main thread is back in
Python, not while it waits inside libpq for a statement. So the C-level handler's
wakeup byte (`signal.set_wakeup_fd`) is read by a watcher thread, which cancels
the statement at once; the Python handler only marks the stop.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from saathii_ops.errors import ExitCode

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How often the watcher cancels again while a stopped run is still in a statement
# (a cancel that reached the server before the statement did is lost).
RECANCEL_SECONDS = 0.5


class RunStopped(Exception):
    """The run was told to stop; raised instead of sending its next statement."""


@dataclass(frozen=True)
class Stop:
    reason: str  # for the audit row and the operator's line
    signal: int | None = None  # the signal that stopped the run, if any

    @property
    def exit_code(self) -> ExitCode | None:
        """128 + the signal's number, as a shell reports a process killed by it."""
        if self.signal is None:
            return None
        return ExitCode.INTERRUPTED if self.signal == signal.SIGINT else ExitCode.TERMINATED


class RunGuard:
    """While entered: the run's statements (those of the entering thread) are cancelled
    at `deadline_seconds` from now or on SIGINT/SIGTERM."""

    def __init__(self, engine: Engine, deadline_seconds: float, deadline_reason: str) -> None:
        self._engine = engine
        self._deadline = time.monotonic() + deadline_seconds
        self._deadline_reason = deadline_reason
        self._thread = threading.get_ident()
        self._lock = threading.RLock()  # the Python signal handler may run while it is held
        self._current: Any = None  # the DBAPI connection of the statement in progress
        self._armed = True
        self._done = threading.Event()
        self.stop: Stop | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._previous_wakeup_fd: int | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> RunGuard:
        _listen(self._engine)
        _guards[self._thread] = self
        if threading.current_thread() is threading.main_thread():
            self._install_signal_handlers()
        self._watcher = threading.Thread(target=self._watch, name="run-guard", daemon=True)
        self._watcher.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._wakeup is not None:  # wake the watcher now, not at its next timeout
            with contextlib.suppress(OSError):
                self._wakeup[1].send(b"\0")
        if self._watcher is not None:
            self._watcher.join()
        _guards.pop(self._thread, None)
        self._restore_signal_handlers()

    def disarm(self) -> None:
        """From here on (the run's bookkeeping, work after its commit) nothing is cancelled;
        those statements carry short timeouts of their own. A signal is still noted."""
        with self._lock:
            self._armed = False

    def request_stop(self, reason: str, signum: int | None = None) -> None:
        with self._lock:
            if self.stop is None:
                self.stop = Stop(reason, signum)
            current = self._current if self._armed else None
        if current is not None:
            _cancel(current)

    # --- the run's statements -----------------------------------------------------

    def _before(self, conn: Connection) -> None:
        with self._lock:
            if not self._armed:
                return
            if self.stop is not None:
                raise RunStopped(self.stop.reason)
            self._current = conn.connection.dbapi_connection

    def _after(self) -> None:
        with self._lock:
            self._current = None

    # --- the deadline and the signals -----------------------------------------------

    def _watch(self) -> None:
        reader = self._wakeup[0] if self._wakeup else None
        while not self._done.is_set():
            if self.stop is None:
                wait = max(0.0, min(self._deadline - time.monotonic(), RECANCEL_SECONDS))
            else:
                wait = RECANCEL_SECONDS
            if reader is not None:
                reader.settimeout(wait)
                try:
                    data = reader.recv(16)
                except (TimeoutError, BlockingIOError, OSError):
                    data = b""
                for signum in data:
                    if signum in SIGNALS:
                        self.request_stop(_signal_reason(signum), signum)
            else:
                self._done.wait(wait)
            if self._done.is_set():
                return
            if self.stop is None and time.monotonic() >= self._deadline:
                self.request_stop(self._deadline_reason)
            elif self.stop is not None:
                self.request_stop(self.stop.reason, self.stop.signal)  # cancel again

    def _install_signal_handlers(self) -> None:
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._wakeup = (reader, writer)
        for signum in SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
        self._previous_wakeup_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def _restore_signal_handlers(self) -> None:
        if self._wakeup is None:
            return
        signal.set_wakeup_fd(
            self._previous_wakeup_fd if self._previous_wakeup_fd is not None else -1
        )
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        for end in self._wakeup:
            end.close()
        self._wakeup = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(_signal_reason(signum), signum)


# The guard of each thread running a job (tests and benchmarks run several at once).
_guards: dict[int, RunGuard] = {}
_listened: weakref.WeakSet[Engine] = weakref.WeakSet()


def _listen(engine: Engine) -> None:
    """Once per engine: its statements go past the guard of the thread sending them."""
    if engine in _listened:
        return
    _listened.add(engine)

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Connection, *args: Any) -> None:
        guard = _guards.get(threading.get_ident())
        if guard is not None:
            guard._before(conn)

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Connection, *args: Any) -> None:
        guard = _guards.get(threading.get_ident())
        if guard is not None:
            guard._after()

    @event.listens_for(engine, "handle_error")
    def _error(context: Any) -> None:
        guard = _guards.get(threading.get_ident())
        if guard is not None:
            guard._after()


def _signal_reason(signum: int) -> str:
    return f"interrupted by {signal.Signals(signum).name}"


def _cancel(dbapi_connection: Any) -> None:
    """Cancel the statement in progress on this connection, from any thread."""
    try:
        if hasattr(dbapi_connection, "cancel"):  # psycopg2
            dbapi_connection.cancel()
        else:  # sqlite3
            dbapi_connection.interrupt()
    except Exception as exc:  # the connection may be gone already; the run ends anyway
        log.debug("cancelling the run's statement: %s", exc)
