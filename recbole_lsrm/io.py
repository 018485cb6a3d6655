"""Writing files: atomically, with the umask's permissions, and with clear errors.

Every file the plugin writes (checkpoints, summaries, results tables, reports, plots, atomic
dataset files) goes through :func:`atomic_write`: the content is written to a temporary file
``.<name>.<8 random characters>`` (``mkstemp``'s name) in the target folder, given the permissions a new file gets under the
umask (``mkstemp`` would leave it 0600, unreadable by collaborators), and renamed over the
target. A write killed half-way leaves only that temporary file; the next successful write of
the same path removes it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from recbole_lsrm.errors import OutputError


def umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def describe_os_error(err: OSError, path: Path | str, action: str = "write") -> str:
    """One line naming what could not be done to ``path`` and why; a full disk says so."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        cause = f"the disk is full (no space left on the device holding {Path(path).parent})"
    elif err.errno == errno.EROFS:
        cause = "the filesystem is read-only"
    elif err.errno in (errno.EACCES, errno.EPERM):
        cause = "permission denied"
    else:
        cause = err.strerror or str(err)
    return f"cannot {action} {path}: {cause}"


def _temporary_pattern(name: str) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}$")


def remove_stale_temporaries(path: Path, older_than: float) -> None:
    """Remove the temporary files of ``path`` (``.<name>.<8 random characters>``) that writes
    killed before ``older_than`` left beside it."""
    pattern = _temporary_pattern(path.name)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if pattern.match(entry.name):
            try:
                if entry.stat().st_mtime < older_than:
                    os.remove(entry.path)
            except OSError:
                pass  # gone already, or not ours to remove


def atomic_write(path: Path | str, write: Callable[[str], None]) -> None:
    """Write ``path`` through ``write(tmp_path)`` into a temporary file, then rename it over ``path``.

    Raises :class:`OutputError` (naming the path, and saying so when the disk is full) when the
    folder is missing or not writable; nothing is left behind on any failure.
    """
    path = Path(path)
    started = time.time()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except FileNotFoundError as err:
        raise OutputError(f"cannot write {path}: the folder {path.parent} does not exist") from err
    except NotADirectoryError as err:
        raise OutputError(f"cannot write {path}: {path.parent} is not a folder") from err
    except OSError as err:
        raise OutputError(describe_os_error(err, path)) from err
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):  # a nested write's error is whole
            raise OutputError(describe_os_error(err, path)) from err
        raise
    remove_stale_temporaries(path, older_than=started)


def write_json(data: Any, path: Path | str) -> None:
    """``data`` as indented JSON (values JSON cannot hold as their ``str``), atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.write("\n")

    atomic_write(path, write)


def write_text(text: str, path: Path | str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(path, write)


def make_dir(path: Path | str) -> Path:
    """``mkdir -p`` with a clear error for a path that is a file or cannot be created."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:
        raise OutputError(f"cannot create the folder {path}: a file of that name is in the way") from err
    except NotADirectoryError as err:
        raise OutputError(f"cannot create the folder {path}: a parent is a file, not a folder") from err
    except OSError as err:
        raise OutputError(describe_os_error(err, path, action="create the folder")) from err
    return path
