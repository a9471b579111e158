"""The advisory lock that makes one process the server of an SQLite store file.

A serving store releases every lease when it opens, which is only right if no other process is
forwarding from the same file. `flock` on a side file enforces that, and the kernel drops the
lock when its holder dies, even by SIGKILL, so a crash never leaves a stale lock behind. The
holder's pid is written into the file for the error message of the one that is turned away.
"""

from __future__ import annotations

import fcntl
import os

from mfo_client.delivery._errors import StoreError

__all__ = ["ServeLock"]


class ServeLock:
    """An exclusive, non-blocking `flock` held from `acquire` to `release`."""

    def __init__(self, path: str, store: str) -> None:
        self.path = path
        self._store = store
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"the event store {self._store} is already used by another mfo serve "
                f"(pid {holder}); one process serves a store file at a time. Stop that "
                "process, or give this one its own store path. Admin commands (mfo dlq ...) "
                "can run alongside."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        # The file stays: deleting it would let a newcomer lock a fresh inode while a waiter
        # still holds the old one.
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
