"""An OS file lock that the OS releases whatever ends its holder: the supervisor's up lock and, on the
embedded broker, the beat lock. POSIX: flock(2) (not inherited past exec: Python's descriptors are
non-inheritable). Windows: msvcrt.locking on one byte far past the start of the file, so the pid written at
its start stays readable to whoever is refused."""

from __future__ import annotations

import os

WINDOWS_LOCK_OFFSET = 1 << 30


def lock_method(windows: bool) -> str:
    return "msvcrt" if windows else "flock"


def try_lock(fd: int, method: str) -> bool:
    """True when this process now holds the lock, False when another does."""
    if method == "flock":
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt

    os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:  # EACCES/EDEADLOCK: held by another process
        return False
    return True
