"""ML-1M's side information: ``movies.dat`` and ``users.dat`` -> ``<name>.item`` and ``<name>.user``.

Raw formats (the ML-1M README), ``::``-separated, no header:
- ``movies.dat``: ``MovieID::Title (YYYY)::Genre|Genre|...``, Latin-1;
- ``users.dat``: ``UserID::Gender::Age::Occupation::Zip-code``.

They are found beside ``ratings.dat`` (the ``--raw`` folder, the folder of the ratings file, or
the same zip). Written as RecBole atomic files in the layout RecBole uses for its own ml-1m:

- ``.item``: ``item_id:token  movie_title:token_seq  release_year:token  genre:token_seq``, the
  title without its trailing ``(YYYY)`` (decoded from Latin-1), the year, the genres joined by
  spaces;
- ``.user``: ``user_id:token  age:token  gender:token  occupation:token  zip_code:token``, values
  as in the file (age and occupation are codes).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from recbole_lsrm.errors import DatasetError
from recbole_lsrm.prepare.atomic_writer import AtomicTable
from recbole_lsrm.prepare.raw_files import RawSource

ITEM_TYPES = {"item_id": "token", "movie_title": "token_seq", "release_year": "token", "genre": "token_seq"}
USER_TYPES = {"user_id": "token", "age": "token", "gender": "token", "occupation": "token", "zip_code": "token"}
# "Title (YYYY)", and once in ML-1M "Title(YYYY)" without the space (MovieID 1001).
_TITLE = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")


def side_sources(ratings: RawSource) -> dict[str, RawSource]:
    """``movies.dat`` and ``users.dat`` where they are found beside the ratings file."""
    found = {}
    for name in ("movies.dat", "users.dat"):
        if ratings.member is not None:
            member = str(Path(ratings.member).with_name(name))
            source = RawSource(ratings.path, member)
            try:
                source.size()
            except KeyError:
                continue
            found[name] = source
        elif (ratings.path.parent / name).is_file():
            found[name] = RawSource(ratings.path.parent / name)
    return found


def _lines(source: RawSource, encoding: str) -> list[tuple[int, list[str]]]:
    with source.open() as f:
        data = f.read()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        raise DatasetError(f"{source}: not {encoding} text ({err})") from None
    return [(number, line.split("::")) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def _bad(source: RawSource, number: int, layout: str, line: list[str]) -> DatasetError:
    return DatasetError(f"{source}, line {number}: expected {layout}, got {'::'.join(line)!r}")


def read_movies(source: RawSource) -> AtomicTable:
    """``movies.dat`` (Latin-1) as the ``.item`` table, in file order."""
    layout = "MovieID::Title (YYYY)::Genres"
    rows = []
    for number, fields in _lines(source, "latin-1"):
        if len(fields) != 3 or not fields[0].isdigit():
            raise _bad(source, number, layout, fields)
        match = _TITLE.match(fields[1])
        if match is None:
            raise DatasetError(f"{source}, line {number}: title {fields[1]!r} does not end in its year (YYYY)")
        rows.append((fields[0], match["title"], match["year"], fields[2].replace("|", " ")))
    if not rows:
        raise DatasetError(f"{source}: no movies in the file (expected lines {layout})")
    return AtomicTable(pd.DataFrame(rows, columns=list(ITEM_TYPES)), dict(ITEM_TYPES))


def read_users(source: RawSource) -> AtomicTable:
    """``users.dat`` as the ``.user`` table, in file order."""
    layout = "UserID::Gender::Age::Occupation::Zip-code"
    rows = []
    for number, fields in _lines(source, "latin-1"):
        if len(fields) != 5 or not fields[0].isdigit() or fields[1] not in ("M", "F"):
            raise _bad(source, number, layout, fields)
        user, gender, age, occupation, zip_code = fields
        rows.append((user, age, gender, occupation, zip_code))
    if not rows:
        raise DatasetError(f"{source}: no users in the file (expected lines {layout})")
    return AtomicTable(pd.DataFrame(rows, columns=list(USER_TYPES)), dict(USER_TYPES))


def read_side_information(ratings: RawSource) -> dict[str, AtomicTable]:
    """The ``item`` and ``user`` tables found beside the ratings (none, one or both)."""
    sources = side_sources(ratings)
    tables = {}
    if "movies.dat" in sources:
        tables["item"] = read_movies(sources["movies.dat"])
    if "users.dat" in sources:
        tables["user"] = read_users(sources["users.dat"])
    return tables
