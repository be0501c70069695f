"""What a request only notes, written out in the background: metrics and request log lines.

Counting a request into prometheus-client's shared files, or rendering and writing its log
line, in the middle of a request costs many times what it costs done for many at once (a
request's own work has just filled the CPU's caches). So the request path appends a small
tuple to a queue (``collections.deque``: appends and pops are safe between threads), and a
thread of the process writes out every queue registered here every ``INTERVAL`` seconds; a
scrape, a worker leaving (``ops.gunicorn_conf.worker_exit``) and tests call ``flush_all``
to have it done at once. Each process starts its own thread with its first note: a thread
does not cross a fork. Under gunicorn the product's worker (``ops.worker``) writes them out
itself instead, between requests (``flush_if_due``): a thread would take the interpreter
from the request being answered for as long as it writes.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable

INTERVAL = 0.5

# Weak references: an app that is gone (tests make many) stops being flushed.
_flushers: list[Callable[[], Callable[[], None] | None]] = []
_lock = threading.Lock()
_running = False
# One flush at a time in a process: the thread's last one may meet the worker loop's first.
_flushing = threading.Lock()
# Whether this process's worker writes the notes out itself (``run_in_worker_loop``), and
# when it is next due to.
_in_worker_loop = False
_next_flush = 0.0


def register(flush: Callable[[], None]) -> None:
    """Have ``flush`` (a function, or a method of an object held elsewhere) run by the thread
    and by ``flush_all``."""
    if hasattr(flush, "__self__"):
        _flushers.append(weakref.WeakMethod(flush))  # type: ignore[arg-type]
    else:
        _flushers.append(lambda: flush)


def ensure_running() -> None:
    """Start this process's thread, once (cheap to call for every note)."""
    global _running
    if _running or _in_worker_loop:
        return
    with _lock:
        if _running:
            return
        _running = True
    threading.Thread(target=_run, name="modelport-flusher", daemon=True).start()


def flush_all() -> None:
    """Write out everything noted so far, now."""
    with _flushing:
        for reference in list(_flushers):
            flush = reference()
            if flush is None:
                _flushers.remove(reference)
            else:
                flush()


def run_in_worker_loop() -> None:
    """This process's worker writes the notes out itself, calling ``flush_if_due`` between
    requests at least every ``INTERVAL`` (``ops.worker``): no thread is started."""
    global _in_worker_loop, _next_flush  # noqa: PLW0603 - one switch per process, set at its start
    _in_worker_loop = True
    _next_flush = time.monotonic() + INTERVAL


def flush_if_due() -> None:
    """Write out everything noted when ``INTERVAL`` has passed since the last time."""
    global _next_flush  # noqa: PLW0603 - the worker loop's own clock
    now = time.monotonic()
    if now >= _next_flush:
        _next_flush = now + INTERVAL
        flush_all()


def _run() -> None:
    while True:
        time.sleep(INTERVAL)
        if _in_worker_loop:
            # A note made while the worker started (before its loop) started this thread:
            # the loop writes them out from now on.
            return
        flush_all()


def _forked() -> None:
    global _lock, _flushing, _running, _in_worker_loop
    _lock = threading.Lock()
    _flushing = threading.Lock()
    _running = False
    _in_worker_loop = False


os.register_at_fork(after_in_child=_forked)
