"""One way to end: SIGINT and SIGTERM set a flag that searching loops check between cases.

Raising from a signal handler is unreliable here: the handler runs wherever the main thread is,
and inside unicorn's ctypes hook callbacks (or hypothesis's gc callback) the KeyboardInterrupt is
printed as "Exception ignored" and lost. So the handler records the signal; code that runs cases
calls :func:`check` between them, which raises :class:`Interrupted` (a ``KeyboardInterrupt``)
from ordinary Python code. Outside a :func:`deferred` section the handler also raises at once, so
short commands stop without polling. Worker processes ignore both signals and instead watch an
flag the parent sets (:func:`attach_worker`), so only the parent decides how a run ends.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130


class Interrupted(KeyboardInterrupt):
    """Raised from Python code (never from a callback) once SIGINT or SIGTERM was received."""


_received: list[int] = []  # signal numbers, in arrival order
_deferred = [False]  # a stack: is the innermost section deferred?
_worker_stop: list[Any] = []  # in a worker process: the parent's stop flag and the parent's pid


def _handler(signum: int, frame: object) -> None:
    _received.append(signum)
    if not _deferred[-1]:
        raise Interrupted


def requested() -> bool:
    """A signal arrived (in the parent), or the parent asked this worker to stop, or died."""
    if _received:
        return True
    if not _worker_stop:
        return False
    return bool(_worker_stop[0].value) or os.getppid() != _worker_stop[1]


def check() -> None:
    """Raise :class:`Interrupted` if a stop was requested; call it between cases."""
    if requested():
        raise Interrupted


def signal_name() -> str | None:
    return signal.Signals(_received[0]).name if _received else None


@contextmanager
def handling() -> Iterator[None]:
    """SIGINT and SIGTERM set the flag (and raise outside :func:`deferred`); restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    _received.clear()
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def deferred() -> Iterator[None]:
    """Inside, a signal only sets the flag: the code polls :func:`requested` / :func:`check`."""
    _deferred.append(True)
    try:
        yield
    finally:
        _deferred.pop()


@contextmanager
def immediate() -> Iterator[None]:
    """Inside, a signal raises :class:`Interrupted` at once (and on entry, if one came before)."""
    _deferred.append(False)
    try:
        check()
        yield
    finally:
        _deferred.pop()


def attach_worker(stop_flag: Any) -> None:
    """In a worker process: ignore SIGINT/SIGTERM; :func:`requested` follows the parent's flag (a
    shared ``multiprocessing`` value, non-zero to stop) and turns true if the parent is gone, so
    that no orphan keeps writing files."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    _worker_stop[:] = [stop_flag, os.getppid()]


def ignore_in_child() -> None:
    """``preexec_fn`` of a child process: ignore both signals (the parent stops it)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
