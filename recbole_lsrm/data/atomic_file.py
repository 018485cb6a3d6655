"""Loading RecBole atomic files with clear errors for malformed input.

RecBole reads atomic files with pandas' Python engine and lets pandas' errors through
(``could not convert string to float``). :class:`AtomicFileMixin` reads them with the C engine
when the separator allows it, and turns every problem into a :class:`DatasetError` that names
the file, the line and the column.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from recbole.utils import FeatureSource, FeatureType

from recbole_lsrm.errors import DatasetError


def undecodable(filepath: str, encoding: str, err: UnicodeDecodeError) -> DatasetError:
    """A clear error for a file that is not in ``encoding``: its first such line and byte."""
    with open(filepath, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as bad:
                return DatasetError(
                    f"{filepath}, line {number}: byte {raw[bad.start:bad.start + 1]!r} is not {encoding} text; "
                    f"save the file as UTF-8, or set encoding: to the file's encoding (e.g. latin-1)"
                )
    return DatasetError(f"{filepath}: not {encoding} text: {err}")


def read_header(filepath: str, separator: str, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """The ``(field, type)`` pairs of an atomic file's first line."""
    try:
        with open(filepath, "r", encoding=encoding) as f:
            head = f.readline().rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise undecodable(filepath, encoding, err) from err
    except OSError as err:
        raise DatasetError(f"cannot read {filepath}: {err}") from err
    if head.startswith("\ufeff"):
        raise DatasetError(
            f"{filepath}, line 1: the file starts with a UTF-8 byte-order mark (BOM), which RecBole would read as "
            "part of the first column's name: save it without one (python -m recbole_lsrm.prepare writes none)"
        )
    if not head:
        raise DatasetError(f"{filepath}, line 1: empty file; expected a header such as 'user_id:token{separator}item_id:token'")
    columns = []
    for column in head.split(separator):
        field, sep, ftype = column.partition(":")
        if not sep or not field:
            raise DatasetError(
                f"{filepath}, line 1: header column {column!r} is not 'name:type' "
                f"(is the separator a tab? RecBole atomic files are tab-separated)"
            )
        try:
            FeatureType(ftype)
        except ValueError as err:
            kinds = ", ".join(t.value for t in FeatureType)
            hint = ""
            if any(mark in ftype for mark in (",", ";", " ", "|")):
                hint = "; is the separator a tab? RecBole atomic files are tab-separated"
            raise DatasetError(
                f"{filepath}, line 1: column {field!r} has unknown type {ftype!r} (one of {kinds}){hint}"
            ) from err
        columns.append((field, ftype))
    return columns


def _first_bad_number(filepath: str, separator: str, column: str, encoding: str) -> tuple[int, str] | None:
    raw = pd.read_csv(filepath, sep=separator, usecols=[column], dtype=str, encoding=encoding, keep_default_na=False)
    values = raw[column]
    bad = pd.to_numeric(values.replace("", np.nan), errors="coerce").isna() & (values != "")
    if not bad.any():
        return None
    row = int(np.argmax(bad.to_numpy()))
    return row + 2, values.iloc[row]  # 1-based, after the header line


class AtomicFileMixin:
    """Drop-in replacement for ``Dataset._load_feat`` with validation and a faster reader."""

    def _load_feat(self, filepath, source):
        separator = self.config["field_separator"]
        encoding = self.config["encoding"] or "utf-8"
        header = read_header(filepath, separator, encoding)
        if any(ftype.endswith("seq") for _, ftype in header) or len(separator) != 1:
            return super()._load_feat(filepath, source)  # RecBole's own reader handles sequences

        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None
        columns, usecols, dtype = [], [], {}
        for field, ftype_name in header:
            if load_col is not None and field not in load_col:
                continue
            if unload_col is not None and field in unload_col:
                continue
            ftype = FeatureType(ftype_name)
            self.field2source[field] = source
            self.field2type[field] = ftype
            self.field2seqlen[field] = 1
            if ftype == FeatureType.FLOAT:
                self.field2bucketnum[field] = 2
            columns.append(field)
            usecols.append(f"{field}:{ftype_name}")
            dtype[usecols[-1]] = np.float64 if ftype == FeatureType.FLOAT else str
        if not columns:
            self.logger.warning(f"No columns has been loaded from [{source}]")
            return None
        try:
            df = pd.read_csv(
                filepath, sep=separator, usecols=usecols, dtype=dtype, encoding=encoding, engine="c"
            )
        except ValueError as err:
            for column, kind in dtype.items():
                if kind is np.float64:
                    found = _first_bad_number(filepath, separator, column, encoding)
                    if found is not None:
                        line, value = found
                        raise DatasetError(
                            f"{filepath}, line {line}: column {column.split(':')[0]!r} must be numeric, got {value!r}"
                        ) from err
            raise DatasetError(f"{filepath}: cannot parse: {err}") from err
        except pd.errors.ParserError as err:
            raise DatasetError(f"{filepath}: malformed atomic file: {err}") from err
        except UnicodeDecodeError as err:
            raise undecodable(filepath, encoding, err) from err
        df.columns = columns
        self._check_complete(filepath, df, source)
        return df

    def _check_complete(self, filepath: str, df: pd.DataFrame, source) -> None:
        """An interaction file has a value in every column of every row; the id columns of
        the other files too. pandas reads a short row or ``nan`` as a missing value, which
        RecBole would train on without a word."""
        if df.empty:
            raise DatasetError(f"{filepath}: no rows after the header line")
        ids = {self.config["USER_ID_FIELD"], self.config["ITEM_ID_FIELD"], self.config["TIME_FIELD"]}
        required = list(df.columns) if source == FeatureSource.INTERACTION else [c for c in df.columns if c in ids]
        for column in required:
            missing = df[column].isna().to_numpy()
            if missing.any():
                row = int(np.argmax(missing))
                raise DatasetError(
                    f"{filepath}, line {row + 2}: column {column!r} has no value "
                    f"(a row with fewer fields than the header, or 'nan'); {int(missing.sum()):,} such row(s)"
                )


def check_atomic_files(dataset_path: str, dataset: str, required: list[str], separator: str, known: list[str],
                       reasons: dict[str, str] | None = None) -> str:
    """Check ``<dataset_path>/<dataset>.inter`` exists and names the ``required`` fields, typed as
    a sequential model needs them: ``required`` is (user id, item id, time), the ids ``token``
    and the time ``float`` (the order of each user's items).

    Returns the file's path. ``known`` lists the datasets the plugin has property files for,
    so a missing dataset gets either "unknown dataset" or "files missing, here is how". Columns
    required beyond the first three are named with their ``reasons`` where missing.
    """
    inter = os.path.join(dataset_path, f"{dataset}.inter")
    if not os.path.isfile(inter):
        if dataset in known:
            raise DatasetError(
                f"dataset '{dataset}': atomic file not found at {inter}. "
                f"Convert the raw data into a RecBole atomic file there (tab-separated, header "
                f"'user_id:token\titem_id:token\trating:float\ttimestamp:float'); docs/datasets.md "
                f"says how for each dataset. Nothing is downloaded."
            )
        raise DatasetError(
            f"unknown dataset '{dataset}': no atomic file at {inter} and no property file "
            f"properties/dataset/{dataset}.yaml. Known datasets: {', '.join(sorted(known))}; "
            f"or put {dataset}.inter under {dataset_path} (or set --data_path)."
        )
    header = dict(read_header(inter, separator))
    fields = list(header)
    missing = [f for f in required if f not in fields]
    if missing:
        why = [reasons[f] for f in missing if reasons and f in reasons]
        raise DatasetError(
            f"{inter}, line 1: missing column(s) {', '.join(missing)}; found {', '.join(fields)}. "
            + (" ".join(why) if why else "Sequential models order each user's items by the timestamp column.")
        )
    wanted = dict(zip(required, ("token", "token", "float")))
    for field, kind in wanted.items():
        if header[field] != kind:
            why = ("a sequential model orders each user's items by it, and a token is ordered by its place in "
                   "the file" if kind == "float" else "ids are names, not numbers")
            raise DatasetError(
                f"{inter}, line 1: column {field!r} is typed {header[field]!r}, it must be {field}:{kind} ({why})"
            )
    return inter
