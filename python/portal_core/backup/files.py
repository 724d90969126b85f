"""Private files, written so that a crash leaves the old content or the new, never a part.

A write goes to a temporary file in the same directory, created mode 0600 whatever the
umask, fsynced, renamed over the target, and then the directory is fsynced.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

__all__ = ["FILE_NAME", "fsync_directory", "remove_private", "write_private"]

# What may name a file of the device's (a key slot, a client id): a conservative alphabet,
# no path separators, no leading dot.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def fsync_directory(directory: Path) -> None:
    """Makes a rename or an unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Replaces ``path`` with ``data``, atomically and durably, mode 0600.

    Raises:
        OSError: the write failed; ``path`` is as it was and no temporary file is left.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def remove_private(path: Path) -> None:
    """Removes ``path`` durably; no error if it is already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_directory(path.parent)
