"""Amazon-2018 per-category reviews -> one mixed-domain dataset, ``amazon-mix`` (paper III-C).

The paper mixes the interactions of all 29 Amazon-2018 domains by user, sorts each user's
records by time into one sequence, and keeps the 30-core of users and items. Input: a folder
with one file per category (the category name is the file name without its extensions,
``Beauty.json.gz`` -> ``Beauty``), in either of the forms the Amazon-2018 site offers:

- reviews, JSON lines (``.json.gz`` or ``.json``): ``reviewerID``, ``asin`` and
  ``unixReviewTime`` are read, other fields are ignored;
- ratings only, CSV without a header (``.csv`` or ``.csv.gz``): ``item,user,rating,timestamp``.

Steps:
1. Read every file (sorted by file name), in blocks, with pyarrow's JSON reader or pandas'
   C parser; user and item ids stay dictionary codes, so memory is a few bytes per review.
2. Drop exact duplicate reviews (same user, item and time; the 2018 dump repeats some),
   keeping the first. An item listed in several category files belongs to the first of them
   (by file name), and its interactions carry that domain.
3. k-core filtering of users and items (``--k``, default 30 as in the paper), repeated
   until stable (:mod:`recbole_lsrm.prepare.kcore`).
4. Order by user, then time. Reviews have day resolution, so many share a timestamp; those
   keep the input order (files sorted by name, then line order) through a stable sort, so the
   result is the same on every run and machine. RecBole's own sort by user and time is
   stable too, so it keeps this order.

Output: ``amazon-mix.inter`` (``user_id:token	item_id:token	timestamp:float	domain:token``)
and ``amazon-mix.item`` (``item_id:token	domain:token``, each item's domain).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
from pandas.api.types import union_categoricals

from recbole_lsrm.errors import DatasetError
from recbole_lsrm.prepare.atomic_writer import AtomicTable
from recbole_lsrm.prepare.kcore import k_core
from recbole_lsrm.prepare.progress import log, step
from recbole_lsrm.prepare.raw_files import (
    Block,
    Field,
    RawSource,
    check_value,
    delimited_line_check,
    iter_blocks,
    raise_bad_block,
    shorten,
)

DEFAULT_K = 30  # paper III-C: "30-core filtering for both users and items"

INTER_TYPES = {"user_id": "token", "item_id": "token", "timestamp": "float", "domain": "token"}
ITEM_TYPES = {"item_id": "token", "domain": "token"}

# Longest first, so that 'Beauty.json.gz' is 'Beauty' and not 'Beauty.json'.
_SUFFIXES = {".json.gz": "json", ".jsonl.gz": "json", ".json": "json", ".jsonl": "json", ".csv.gz": "csv", ".csv": "csv"}

_JSON_FIELDS = (Field("reviewerID", "id"), Field("asin", "id"), Field("unixReviewTime", "int"))
_JSON_SCHEMA = pa.schema([("reviewerID", pa.string()), ("asin", pa.string()), ("unixReviewTime", pa.int64())])
_JSON_PARSE = pa_json.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="ignore")
_JSON_READ = pa_json.ReadOptions(block_size=8 * 1024 * 1024)  # long reviews must fit in one block

_CSV_FIELDS = (Field("item", "id"), Field("user", "id"), Field("rating", "number"), Field("timestamp", "int"))
_CSV_LAYOUT = "item,user,rating,timestamp"
_BAD_ID = r"^\s*$|[\t\r\n]"  # empty, or would break the tab-separated atomic file


@dataclass(frozen=True)
class CategoryFile:
    """One downloaded category: its domain name, path and form ('json' or 'csv')."""

    domain: str
    path: Path
    form: str


@dataclass
class _Reviews:
    """The reviews of one block: ids as categoricals, Unix timestamps as int64."""

    users: pd.Categorical
    items: pd.Categorical
    timestamps: np.ndarray


def find_category_files(raw_dir: Path) -> list[CategoryFile]:
    """The category files in ``raw_dir``, sorted by file name (this order breaks time ties)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.exists():
        raise DatasetError(f"{raw_dir}: folder not found (expected one review file per Amazon category)")
    if not raw_dir.is_dir():
        raise DatasetError(f"{raw_dir}: expected a folder with one review file per Amazon category, got a file")
    found: list[CategoryFile] = []
    skipped = []
    for path in sorted(p for p in raw_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
        suffix = next((s for s in _SUFFIXES if path.name.endswith(s) and len(path.name) > len(s)), None)
        if suffix is None:
            skipped.append(path.name)
            continue
        found.append(CategoryFile(path.name[: -len(suffix)], path, _SUFFIXES[suffix]))
    if skipped:
        log(f"ignoring files that are not category files: {', '.join(skipped)}")
    if not found:
        raise DatasetError(
            f"{raw_dir}: no category files; expected <Category>.json.gz or .json (reviews) "
            f"or <Category>.csv or .csv.gz ({_CSV_LAYOUT})"
        )
    domains = [c.domain for c in found]
    repeated = sorted({d for d in domains if domains.count(d) > 1})
    if repeated:
        files = ", ".join(c.path.name for c in found if c.domain in repeated)
        raise DatasetError(f"{raw_dir}: category {repeated[0]!r} is given by more than one file ({files}); keep one")
    return found


def _check_json_line(text: str) -> str | None:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return f"not valid JSON ({err.msg} at column {err.colno}; is the file truncated?): {shorten(text)!r}"
    if not isinstance(record, dict):
        return f"expected one JSON object per line, got {shorten(text)!r}"
    for field in _JSON_FIELDS:
        if field.name not in record:
            return f"missing field {field.name!r} (a review needs reviewerID, asin and unixReviewTime)"
        problem = check_value(field, record[field.name])
        if problem is not None:
            return problem
    return None


def _has_bad_ids(values: pd.Categorical) -> bool:
    return bool(values.isna().any() or values.categories.astype(str).str.contains(_BAD_ID, regex=True).any())


def _parse_json_block(source: RawSource, block: Block) -> _Reviews | None:
    if not block.data.strip():
        return None
    try:
        table = pa_json.read_json(pa.BufferReader(block.data), read_options=_JSON_READ, parse_options=_JSON_PARSE)
    except pa.ArrowInvalid as err:
        raise_bad_block(source, block, _check_json_line, err)
    if any(table.column(name).null_count for name in _JSON_SCHEMA.names):
        raise_bad_block(source, block, _check_json_line, None)  # a missing field
    users, items = (
        pd.Categorical(table.column(name).combine_chunks().dictionary_encode().to_pandas())
        for name in ("reviewerID", "asin")
    )
    if _has_bad_ids(users) or _has_bad_ids(items):
        raise_bad_block(source, block, _check_json_line, None)
    return _Reviews(users, items, table.column("unixReviewTime").to_numpy())


_CSV_CHECK = delimited_line_check(",", _CSV_FIELDS, _CSV_LAYOUT)


def _parse_csv_block(source: RawSource, block: Block) -> _Reviews | None:
    if not block.data.strip():
        return None
    try:
        frame = pd.read_csv(
            io.BytesIO(block.data), sep=",", header=None, names=[f.name for f in _CSV_FIELDS],
            dtype={"item": "category", "user": "category", "rating": np.float64, "timestamp": np.int64},
            # Only an empty field is missing: 'NA' or 'null' could be a real id.
            keep_default_na=False, na_values=[""], engine="c",
        )
    except (ValueError, OverflowError, pd.errors.ParserError) as err:
        raise_bad_block(source, block, _CSV_CHECK, err)
    if frame["rating"].isna().any():
        raise_bad_block(source, block, _CSV_CHECK, None)
    users, items = frame["user"].array, frame["item"].array
    if _has_bad_ids(users) or _has_bad_ids(items):
        raise_bad_block(source, block, _CSV_CHECK, None)
    return _Reviews(users, items, frame["timestamp"].to_numpy())


def read_category(category: CategoryFile) -> list[_Reviews]:
    """The reviews of one category file, block by block, in line order."""
    source = RawSource(category.path)
    parse = _parse_json_block if category.form == "json" else _parse_csv_block
    blocks = [r for r in (parse(source, b) for b in iter_blocks(source)) if r is not None]
    if not blocks:
        raise DatasetError(f"{source}: no reviews in the file")
    return blocks


@dataclass
class MixedReviews:
    """All categories' reviews in input order: id codes, timestamps and domain codes."""

    users: pd.Categorical
    items: pd.Categorical
    timestamps: np.ndarray
    domains: np.ndarray  # index into ``domain_names``
    domain_names: list[str]


def read_categories(categories: list[CategoryFile]) -> MixedReviews:
    blocks: list[_Reviews] = []
    domains = []
    for index, category in enumerate(categories):
        with step(f"reading {category.path.name} (domain {category.domain})"):
            read = read_category(category)
        blocks += read
        domains.append(np.full(sum(len(b.timestamps) for b in read), index, dtype=np.int16))
    with step("merging the categories"):
        # Re-codes every block's ids into one shared dictionary, in C.
        users = union_categoricals([b.users for b in blocks])
        items = union_categoricals([b.items for b in blocks])
    return MixedReviews(
        users, items, np.concatenate([b.timestamps for b in blocks]), np.concatenate(domains),
        [c.domain for c in categories],
    )


def _item_domains(item_codes: np.ndarray, domains: np.ndarray, n_items: int) -> tuple[np.ndarray, int]:
    """Each item's domain (its first file) and how many items occur in more than one file."""
    first = pd.Series(item_codes).drop_duplicates(keep="first").index.to_numpy()
    item_domain = np.zeros(n_items, dtype=domains.dtype)
    item_domain[item_codes[first]] = domains[first]
    shared = np.unique(item_codes[domains != item_domain[item_codes]])
    return item_domain, len(shared)


def _ranks(categories: pd.Index) -> np.ndarray:
    """The position of each category in sorted order: rows are grouped by user id, sorted."""
    ranks = np.empty(len(categories), dtype=np.int64)
    ranks[np.argsort(categories.to_numpy(), kind="stable")] = np.arange(len(categories))
    return ranks


def mix_domains(reviews: MixedReviews, k: int) -> tuple[AtomicTable, AtomicTable]:
    """Deduplicate, k-core filter and order the reviews; the .inter and .item tables."""
    users, items = reviews.users.codes.astype(np.int64), reviews.items.codes.astype(np.int64)
    timestamps, domains = reviews.timestamps, reviews.domains
    n_raw = len(timestamps)

    with step("dropping duplicate reviews"):
        duplicate = pd.DataFrame({"u": users, "i": items, "t": timestamps}).duplicated(keep="first").to_numpy()
    if duplicate.any():
        log(f"dropped {int(duplicate.sum()):,} duplicate reviews (same user, item and time)")
    item_domain, shared = _item_domains(items, domains, len(reviews.items.categories))
    if shared:
        log(f"{shared:,} items appear in several category files; each belongs to the first (by file name)")

    kept = np.flatnonzero(~duplicate)
    with step(f"{k}-core filtering of {len(kept):,} interactions"):
        mask, passes = k_core(users[kept], items[kept], k)
    before = (len(np.unique(users[kept])), len(np.unique(items[kept])), len(kept))
    kept = kept[mask]
    if len(kept) == 0:
        raise DatasetError(
            f"no interactions left after {k}-core filtering (before it: {before[0]:,} users, "
            f"{before[1]:,} items, {before[2]:,} interactions); lower --k"
        )
    log(
        f"{k}-core after {passes} pass(es): {len(kept):,} of {n_raw:,} reviews kept "
        f"({before[0]:,} -> {len(np.unique(users[kept])):,} users, {before[1]:,} -> "
        f"{len(np.unique(items[kept])):,} items)"
    )

    with step("ordering each user's reviews by time"):
        user_rank = _ranks(reviews.users.categories)[users[kept]]
        # lexsort: last key first; the row index makes the tie order explicit (input order).
        kept = kept[np.lexsort((kept, timestamps[kept], user_rank))]

    domain_names = pd.Index(reviews.domain_names)
    inter = pd.DataFrame(
        {
            "user_id": pd.Categorical.from_codes(users[kept], categories=reviews.users.categories),
            "item_id": pd.Categorical.from_codes(items[kept], categories=reviews.items.categories),
            "timestamp": timestamps[kept],
            "domain": pd.Categorical.from_codes(item_domain[items[kept]], categories=domain_names),
        }
    )
    item_codes = np.unique(items[kept])
    item_codes = item_codes[np.argsort(reviews.items.categories.to_numpy()[item_codes], kind="stable")]
    item = pd.DataFrame(
        {
            "item_id": pd.Categorical.from_codes(item_codes, categories=reviews.items.categories),
            "domain": pd.Categorical.from_codes(item_domain[item_codes], categories=domain_names),
        }
    )
    return AtomicTable(inter, dict(INTER_TYPES)), AtomicTable(item, dict(ITEM_TYPES))


def convert_amazon_mix(raw_dir: Path, k: int = DEFAULT_K) -> tuple[AtomicTable, AtomicTable]:
    """Read the category files in ``raw_dir`` and build the amazon-mix ``.inter`` and ``.item`` tables."""
    categories = find_category_files(raw_dir)
    log(f"{len(categories)} categories: {', '.join(c.domain for c in categories)}")
    return mix_domains(read_categories(categories), k)
