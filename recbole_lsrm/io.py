"""Writing files: atomically, with the umask's permissions, and with clear errors.

Every file the plugin writes (checkpoints, summaries, results tables, reports, plots, atomic
dataset files) goes through :func:`atomic_write`: the content is written to a temporary file
``.<name>.<writer's PID>-<8 random characters>`` (``mkstemp``'s name) in the target folder,
given the permissions a new file gets under the umask (``mkstemp`` would leave it 0600,
unreadable by collaborators), and renamed over the target. A write killed half-way leaves only
that temporary file; the next successful write of the same path removes it once its writer is
gone (a live writer's temporary file is never touched, so two processes may write one path).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from recbole_lsrm.errors import ConfigError, OutputError


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
    """``.<name>.<pid>-<8 characters>``, and the PID-less name of older versions."""
    return re.compile(rf"^\.{re.escape(name)}\.(?:(\d+)-)?[A-Za-z0-9_]{{8}}$")


def process_alive(pid: int) -> bool:
    """Whether a process with this PID runs on this machine (one of another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: Path, older_than: float) -> None:
    """Remove the temporary files of ``path`` that killed writes left beside it: those made
    before ``older_than`` whose writing process is gone (never another live writer's)."""
    pattern = _temporary_pattern(path.name)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        pid = int(match.group(1)) if match.group(1) else None
        if pid is not None and (pid == os.getpid() or process_alive(pid)):
            continue
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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", dir=path.parent)
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


def read_json(path: Path | str, what: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON object the plugin wrote (``what`` says which: "a run summary", ...), checked on
    load: a missing, unreadable, truncated or malformed file, another top-level type, or a
    missing key is one :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} not found ({what})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path} ({what}): {err}") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{path} is not valid JSON ({what}; truncated or edited by hand?): {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a JSON {type(data).__name__}, not the object of {what}")
    missing = [key for key in required if key not in data]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}: it is not {what}")
    return data


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


class FolderLock:
    """A lock on a folder for one process at a time: ``<folder>/<name>`` holds the holder's
    PID, is made with O_EXCL, and is removed on exit; a lock whose process is gone is taken over.

    ``busy(pid)`` is the message when another live process holds it.
    """

    def __init__(self, folder: Path | str, busy: Callable[[int], str], name: str = ".lock") -> None:
        self.path = Path(folder) / name
        self.busy = busy
        self.held = False

    def _holder(self) -> int | None:
        try:
            return int(self.path.read_text(encoding="utf-8").split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def __enter__(self) -> "FolderLock":
        make_dir(self.path.parent)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~umask())
            except FileExistsError:
                holder = self._holder()
                if holder is not None and holder != os.getpid() and process_alive(holder):
                    raise ConfigError(self.busy(holder)) from None
                if holder is None and time.time() - self._mtime() < 5:
                    time.sleep(0.2)  # being written this instant
                    continue
                try:
                    os.remove(self.path)  # its process is gone
                except FileNotFoundError:
                    pass
                continue
            except OSError as err:
                raise OutputError(describe_os_error(err, self.path)) from err
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise ConfigError(self.busy(self._holder() or 0))

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def __exit__(self, *exc: Any) -> None:
        if self.held and self._holder() == os.getpid():
            try:
                os.remove(self.path)
            except OSError:
                pass
        self.held = False


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


def replace_folder(path: Path | str, write: Callable[[Path], None], ours: Callable[[Path], bool]) -> Path:
    """Make the folder ``path`` whole or not at all: ``write(tmp)`` fills a temporary folder beside
    it, which is then renamed into place. ``path`` may be absent, empty, or a folder that ``ours``
    recognises (an earlier output of the same command), which is replaced whole; any other folder
    is refused by name, so a user's own files are never overwritten or mixed with ours. A failure
    or an interruption (Ctrl-C, SIGTERM) leaves ``path`` as it was and no temporary folder.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot write the folder {path}: a file of that name is in the way")
    if path.is_dir() and any(path.iterdir()) and not ours(path):
        names = sorted(p.name for p in path.iterdir())
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise OutputError(f"{path} already holds other files ({shown}): give a new or empty folder "
                          "(an earlier output of this command there is replaced whole)")
    make_dir(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", dir=path.parent))
    old = tmp.with_name(tmp.name + "-old")
    try:
        write(tmp)
        if path.is_dir():
            path.rename(old)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.is_dir() and not path.exists():
            old.rename(path)  # the earlier output back in place
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path
