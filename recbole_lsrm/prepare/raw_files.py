"""Raw files read as blocks of whole lines, with line numbers for error messages.

The converters parse each block with a vectorised reader (pandas' C engine, pyarrow's JSON
reader): there is no Python loop per interaction on the normal path. When a block fails to
parse, or parses into missing values, it is read again line by line in Python (only then) to
name the first bad line: ``ratings.dat, line 1204: Timestamp must be an integer, got '97x'``.

Plain files, ``.gz`` files and members of ``.zip`` archives (the MovieLens downloads) are read
the same way. A truncated or corrupt gzip/zip file is a :class:`DatasetError`, never a partial
result.
"""

from __future__ import annotations

import gzip
import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, NoReturn, Sequence

from recbole_lsrm.errors import DatasetError
from recbole_lsrm.prepare.progress import byte_bar

# Large enough that pandas/pyarrow run at full speed, small enough to keep memory flat.
BLOCK_SIZE = 64 * 1024 * 1024

LineCheck = Callable[[str], "str | None"]


@dataclass(frozen=True)
class RawSource:
    """A raw input: a file on disk, or one member of a zip archive."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return Path(self.member).name if self.member else self.path.name

    def size(self) -> int | None:
        """Uncompressed size in bytes where it is known without reading (for the progress bar)."""
        if self.member:
            with zipfile.ZipFile(self.path) as archive:
                return archive.getinfo(self.member).file_size
        return None if self.path.suffix == ".gz" else self.path.stat().st_size

    def open(self) -> BinaryIO:
        if not self.path.exists():
            raise DatasetError(f"{self.path}: file not found")
        if self.path.is_dir():
            raise DatasetError(f"{self.path}: is a folder, expected a file")
        try:
            if self.member:
                with zipfile.ZipFile(self.path) as archive:
                    # The member stream keeps the archive's file open until it is closed itself.
                    return archive.open(self.member)
            if self.path.suffix == ".gz":
                return gzip.open(self.path, "rb")
            return open(self.path, "rb")
        except (OSError, zipfile.BadZipFile, KeyError) as err:
            raise DatasetError(f"{self}: cannot open: {err}") from err


@dataclass(frozen=True)
class Block:
    """Whole lines of a raw file; ``first_line`` is the 1-based number of the first one."""

    first_line: int
    data: bytes

    @property
    def last_line(self) -> int:
        return self.first_line + max(self.data.count(b"\n") - (1 if self.data.endswith(b"\n") else 0), 0)


def _read(stream: BinaryIO, size: int, source: RawSource) -> bytes:
    try:
        return stream.read(size)
    except EOFError as err:
        # gzip raises EOFError when the stream stops before its end marker: an incomplete download.
        raise DatasetError(f"{source}: the compressed file is truncated ({err}); download it again") from err
    except (gzip.BadGzipFile, zipfile.BadZipFile, zlib.error) as err:
        raise DatasetError(f"{source}: corrupt compressed file: {err}") from err
    except OSError as err:
        raise DatasetError(f"{source}: cannot read: {err}") from err


def iter_blocks(source: RawSource, block_size: int | None = None) -> Iterator[Block]:
    """Yield the file as consecutive blocks of whole lines (the last one may lack its newline).

    ``block_size`` (bytes read at a time) defaults to :data:`BLOCK_SIZE`.
    """
    block_size = block_size or BLOCK_SIZE
    stream = source.open()
    with stream, byte_bar(f"reading {source.name}", source.size()) as bar:
        pending = b""
        line = 1
        while True:
            chunk = _read(stream, block_size, source)
            if not chunk:
                break
            bar.update(len(chunk))
            data = pending + chunk if pending else chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # a line longer than the block: keep reading
                pending = data
                continue
            block, pending = data[:cut], data[cut:]
            yield Block(line, block)
            line += block.count(b"\n")
        if pending:
            yield Block(line, pending)


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def first_bad_line(block: Block, check: LineCheck) -> tuple[int, str] | None:
    """The first non-blank line of ``block`` that ``check`` finds a problem in, and the problem."""
    for offset, raw in enumerate(block.data.split(b"\n")):
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if not text.strip():
            continue
        problem = check(text)
        if problem is not None:
            return block.first_line + offset, problem
    return None


def raise_bad_block(source: RawSource, block: Block, check: LineCheck, cause: Exception | None) -> NoReturn:
    """Raise a DatasetError naming the first bad line of a block a vectorised reader rejected."""
    found = first_bad_line(block, check)
    if found is not None:
        line, problem = found
        raise DatasetError(f"{source}, line {line}: {problem}") from cause
    detail = f": {cause}" if cause is not None else ""
    raise DatasetError(f"{source}, lines {block.first_line}-{block.last_line}: cannot parse{detail}") from cause


@dataclass(frozen=True)
class Field:
    """A column of a raw delimited file. ``kind``: 'int', 'number' or 'id' (a non-empty string)."""

    name: str
    kind: str


_INT = re.compile(r"\s*[+-]?\d+\s*")
_SEPARATORS = ("::", "\t", ",", ";", "|")


def delimited_line_check(separator: str, fields: Sequence[Field], layout: str) -> LineCheck:
    """A line check for ``separator``-delimited lines with ``fields`` (``layout`` names them)."""

    def check(text: str) -> str | None:
        parts = text.split(separator)
        if len(parts) != len(fields):
            problem = (
                f"expected {len(fields)} fields separated by {separator!r} ({layout}), "
                f"found {len(parts)}: {shorten(text)!r}"
            )
            others = [s for s in _SEPARATORS if s != separator and s in text and separator not in s]
            if len(parts) == 1 and others:
                problem += f"; wrong delimiter? the line holds {others[0]!r}"
            return problem
        for field, value in zip(fields, parts):
            problem = check_value(field, value)
            if problem is not None:
                return problem
        return None

    return check


def check_value(field: Field, value: object) -> str | None:
    """Why ``value`` is not a valid ``field``, or None."""
    if field.kind == "int":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and _INT.fullmatch(value))
        ):
            return f"{field.name} must be an integer, got {value!r}"
    elif field.kind == "number":
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return f"{field.name} must be a number, got {value!r}"
        if not math.isfinite(number):
            return f"{field.name} must be a finite number, got {value!r}"
    elif field.kind == "id":
        if not isinstance(value, str):
            return f"{field.name} must be a string, got {value!r}"
        if not value.strip():
            return f"{field.name} is empty"
        if any(c in value for c in "\t\r\n"):
            return f"{field.name} {value!r} contains a tab or line break (atomic files are tab-separated)"
    return None
