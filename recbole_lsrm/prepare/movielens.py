"""MovieLens ratings -> the RecBole atomic file ``<name>.inter`` (ML-1M, ML-10M, ML-20M).

Raw formats (GroupLens READMEs):
- ML-1M and ML-10M: ``ratings.dat``, lines ``UserID::MovieID::Rating::Timestamp``, no header.
- ML-20M: ``ratings.csv``, header ``userId,movieId,rating,timestamp``.

``--raw`` may be the ratings file itself, the folder holding it, or the downloaded zip
(``ml-1m.zip``, ``ml-10m.zip``, ``ml-20m.zip``); a ``.gz`` file is read as well.

Nothing is filtered or reordered: every user of these releases has at least 20 ratings, and
RecBole orders each user's items by timestamp itself (a stable sort, so rows with equal
timestamps keep the file's order). The written file has the header
``user_id:token	item_id:token	rating:float	timestamp:float``.

Speed: pandas' C parser takes one-character separators only and its Python engine needs
minutes for 10M+ rows, so ``::`` is replaced by the unit-separator byte ``\\x1f`` (which
cannot occur in these files) block by block and each block goes through the C parser.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_lsrm.errors import DatasetError
from recbole_lsrm.prepare.atomic_writer import AtomicTable
from recbole_lsrm.prepare.progress import step
from recbole_lsrm.prepare.raw_files import (
    Block,
    Field,
    RawSource,
    delimited_line_check,
    iter_blocks,
    raise_bad_block,
)

INTER_TYPES = {"user_id": "token", "item_id": "token", "rating": "float", "timestamp": "float"}
_C_SEPARATOR = "\x1f"  # stands in for '::' so that pandas' C parser can split the lines


@dataclass(frozen=True)
class MovieLensFormat:
    """The raw ratings file of one MovieLens release. ``fields`` map to user, item, rating, time."""

    dataset: str
    file_name: str
    separator: str
    fields: tuple[Field, Field, Field, Field]
    has_header: bool

    @property
    def layout(self) -> str:
        return self.separator.join(f.name for f in self.fields)


_DAT_FIELDS = (Field("UserID", "int"), Field("MovieID", "int"), Field("Rating", "number"), Field("Timestamp", "int"))
_CSV_FIELDS = (Field("userId", "int"), Field("movieId", "int"), Field("rating", "number"), Field("timestamp", "int"))

FORMATS: dict[str, MovieLensFormat] = {
    "ml-1m": MovieLensFormat("ml-1m", "ratings.dat", "::", _DAT_FIELDS, has_header=False),
    "ml-10m": MovieLensFormat("ml-10m", "ratings.dat", "::", _DAT_FIELDS, has_header=False),
    "ml-20m": MovieLensFormat("ml-20m", "ratings.csv", ",", _CSV_FIELDS, has_header=True),
}


def resolve_source(raw: Path, fmt: MovieLensFormat) -> RawSource:
    """The ratings file behind ``--raw``: the file, ``<folder>/<file_name>``, or a zip member."""
    raw = Path(raw)
    if not raw.exists():
        raise DatasetError(f"{raw}: file not found (expected {fmt.dataset}'s {fmt.file_name})")
    if raw.is_dir():
        candidate = raw / fmt.file_name
        if not candidate.is_file():
            raise DatasetError(f"{raw}: no {fmt.file_name} in this folder ({fmt.dataset}'s ratings file)")
        return RawSource(candidate)
    if raw.suffix == ".zip":
        try:
            with zipfile.ZipFile(raw) as archive:
                members = [m for m in archive.namelist() if Path(m).name == fmt.file_name]
        except (zipfile.BadZipFile, OSError) as err:
            raise DatasetError(f"{raw}: not a readable zip file: {err}") from err
        if not members:
            raise DatasetError(f"{raw}: the archive has no {fmt.file_name} ({fmt.dataset}'s ratings file)")
        return RawSource(raw, min(members, key=len))
    return RawSource(raw)


def _header_columns(source: RawSource, line: bytes, fmt: MovieLensFormat) -> list[str]:
    """The column names of a CSV header line, checked against the format's fields."""
    text = line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    columns = [c.strip() for c in text.split(fmt.separator)]
    missing = [f.name for f in fmt.fields if f.name not in columns]
    if not missing:
        return columns
    if "::" in text:
        hint = "; this looks like a '::'-separated ratings.dat: convert it as ml-1m or ml-10m"
    elif all(c.replace(".", "", 1).isdigit() for c in columns if c):
        hint = f"; the first line must be the header {fmt.layout}"
    elif len(columns) == 1 and any(s in text for s in ("\t", ";", "|")):
        hint = f"; wrong delimiter? {fmt.file_name} is comma-separated"
    else:
        hint = ""
    raise DatasetError(
        f"{source}, line 1: missing column(s) {', '.join(missing)}; found {', '.join(columns)}{hint}"
    )


def _parse_block(source: RawSource, block: Block, fmt: MovieLensFormat, columns: list[str]) -> pd.DataFrame | None:
    if not block.data.strip():
        return None
    data, separator = block.data, fmt.separator
    if separator == "::":
        data, separator = data.replace(b"::", _C_SEPARATOR.encode()), _C_SEPARATOR
    wanted = [f.name for f in fmt.fields]
    dtypes = {f.name: (np.float64 if f.kind == "number" else np.int64) for f in fmt.fields}
    # The line check used to name a bad line follows the file's own column order.
    known = {f.name: f for f in fmt.fields}
    check = delimited_line_check(fmt.separator, [known.get(c, Field(c, "any")) for c in columns], fmt.layout)
    try:
        frame = pd.read_csv(
            io.BytesIO(data), sep=separator, header=None, names=columns, usecols=wanted,
            dtype=dtypes, engine="c",
        )
    except (ValueError, OverflowError, pd.errors.ParserError) as err:
        raise_bad_block(source, block, check, err)
    if frame.isna().to_numpy().any():  # short lines parse into missing values, not errors
        raise_bad_block(source, block, check, None)
    return frame[wanted]


def read_ratings(source: RawSource, fmt: MovieLensFormat) -> pd.DataFrame:
    """All ratings as a frame with columns user_id, item_id, rating, timestamp (file order)."""
    frames = []
    columns = [f.name for f in fmt.fields]
    for block in iter_blocks(source):
        if fmt.has_header and block.first_line == 1:
            header, _, rest = block.data.partition(b"\n")
            columns = _header_columns(source, header, fmt)
            block = Block(2, rest)
        frame = _parse_block(source, block, fmt, columns)
        if frame is not None:
            frames.append(frame)
    if not frames or sum(len(f) for f in frames) == 0:
        raise DatasetError(f"{source}: no ratings in the file (expected lines {fmt.layout})")
    ratings = pd.concat(frames, ignore_index=True)
    ratings.columns = list(INTER_TYPES)
    return ratings


def convert_movielens(dataset: str, raw: Path) -> AtomicTable:
    """Read a MovieLens release's ratings file into the ``.inter`` table."""
    fmt = FORMATS[dataset]
    source = resolve_source(raw, fmt)
    with step(f"reading {source}"):
        ratings = read_ratings(source, fmt)
    return AtomicTable(ratings, dict(INTER_TYPES))
