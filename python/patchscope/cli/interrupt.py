"""Ctrl-C and ``kill`` end a run at once: exit status 130 / 143, one line, no debris.

Python runs a signal handler only in the main thread, between two bytecodes, and the core
works for seconds with the GIL released: a handler would wait for it, and a KeyboardInterrupt
raised while modules are imported prints a traceback. Instead both signals are blocked in
every thread but one, which waits for them (``sigwait``), removes what the run was writing (the
``-o`` file's temporary, the cache's entries in flight) and leaves with ``os._exit``: no code of
the interrupted threads runs after that, so nothing can print a traceback or finish a write.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading

# Imported before the signals are taken, so nothing it need not (typing alone costs 8 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: The exit status of each signal: 128 + its number, what a shell reports for a killed command.
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}

_temporaries: set[Path] = set()
#: Held by the waiting thread from the signal on, never released: a file created under it is
#: registered before the clean-up looks, or not created at all.
_lock = threading.Lock()


def install() -> None:
    """Call first, before any thread starts: threads inherit the blocked signals (the core's
    and Arrow's pools too), so the signals reach the waiting thread alone."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STATUS)
    threading.Thread(target=_wait, name="patchscope-signals", daemon=True).start()


@contextlib.contextmanager
def temporary(path: Path, mode: int) -> Iterator[int]:
    """Creates ``path`` (a new file, its descriptor yielded), removed if a signal ends the run
    while it is being written."""
    with _lock:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        _temporaries.add(path)
    try:
        yield fd
    finally:
        _temporaries.discard(path)


@contextlib.contextmanager
def temporary_dir(path: Path) -> Iterator[None]:
    """Creates the folder ``path``, removed with what it holds if the run fails or a signal
    ends it before the caller has renamed it."""
    with _lock:
        path.mkdir()
        _temporaries.add(path)
    try:
        yield
    finally:
        _temporaries.discard(path)
        shutil.rmtree(path, ignore_errors=True)


def _wait() -> None:
    sig = signal.Signals(signal.sigwait(STATUS))
    _lock.acquire()
    os.write(2, f"patchscope: error: {WORDS[sig]}\n".encode())
    # The one line: whatever the other threads, still running, find broken from here on (the
    # -o file gone from under them, say) is theirs to say to nobody.
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    for path in list(_temporaries):
        with contextlib.suppress(OSError):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    cache = sys.modules.get("patchscope.index.cache")  # not imported: no cache write in flight
    if cache is not None:
        cache.abandon_writes()
    os._exit(STATUS[sig])
