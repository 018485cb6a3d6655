"""One conversion: raw files (or the generator) -> tables -> optional subset -> atomic files.

:func:`prepare` is what ``python -m recbole_lsrm.prepare`` runs. Every input is read and
checked before anything is written, and the files are written atomically
(:mod:`recbole_lsrm.prepare.atomic_writer`), so a bad input leaves no output behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recbole_lsrm.config import check_dataset_name
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.prepare.amazon import DEFAULT_K, convert_amazon_mix
from recbole_lsrm.prepare.atomic_writer import AtomicTable, write_dataset
from recbole_lsrm.prepare.movielens import FORMATS, convert_movielens, resolve_source
from recbole_lsrm.prepare.movielens_side import read_side_information
from recbole_lsrm.prepare.stats import REFERENCES, Reference, Shape, dataset_report, domain_report, shape_of
from recbole_lsrm.prepare.subsets import DEFAULT_SEED, check_fraction, sample_users, subset_name
from recbole_lsrm.prepare.synthetic import PROFILES, check_scale, generate_synthetic, scaled_profile, synthetic_name

DATASETS: dict[str, str] = {
    "ml-1m": "MovieLens-1M ratings.dat (UserID::MovieID::Rating::Timestamp)",
    "ml-10m": "MovieLens-10M ratings.dat (UserID::MovieID::Rating::Timestamp)",
    "ml-20m": "MovieLens-20M ratings.csv (userId,movieId,rating,timestamp)",
    "amazon-mix": "Amazon-2018 categories mixed by user, k-core filtered (a folder of category files)",
    "synthetic": "a generated dataset with the shape of --like (ml-20m by default)",
}


def default_out_dir() -> Path:
    """``dataset/`` in the working directory, where ``--dataset=NAME`` looks by default
    (RecBole's ``data_path: dataset/``)."""
    return Path.cwd() / "dataset"


@dataclass
class Prepared:
    """What a conversion wrote: the dataset name, its files, statistics and the report text."""

    name: str
    files: list[Path]
    shape: Shape
    report: list[str] = field(default_factory=list)


def _check_options(
    dataset: str, raw: Path | None, name: str | None, k: int | None, like: str | None, scale: float | None
) -> None:
    if name is not None:
        check_dataset_name(name, "--name")
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    if dataset == "synthetic":
        if raw is not None:
            raise ConfigError("synthetic data is generated: --raw does not apply (use --like and --scale)")
    else:
        if raw is None:
            raise ConfigError(f"{dataset} needs --raw: {DATASETS[dataset]}")
        if like is not None or scale is not None:
            raise ConfigError("--like and --scale apply to synthetic data only")
    if k is not None:
        if dataset != "amazon-mix":
            raise ConfigError(
                "--k applies to amazon-mix only (every MovieLens user has 20+ ratings already)"
            )
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"--k must be a positive integer, got {k!r}")


def prepare(
    dataset: str,
    raw: str | Path | None = None,
    out: str | Path | None = None,
    *,
    name: str | None = None,
    fraction: float = 1.0,
    seed: int = DEFAULT_SEED,
    k: int | None = None,
    like: str | None = None,
    scale: float | None = None,
) -> Prepared:
    """Convert (or generate) ``dataset`` into ``<out>/<name>/<name>.inter`` (and ``.item``).

    ``name`` defaults to the dataset's name (``synthetic-<like>[-<scale>]`` for synthetic
    data); with ``fraction`` < 1, ``-<percent>`` is appended and only that share of the users
    is written (:mod:`recbole_lsrm.prepare.subsets`). ``seed`` draws the subset's users and
    the synthetic data.
    """
    raw_path = Path(raw) if raw is not None else None
    _check_options(dataset, raw_path, name, k, like, scale)
    check_fraction(fraction)
    if dataset == "synthetic":
        like, scale = like or "ml-20m", check_scale(1.0 if scale is None else scale)
        if like not in PROFILES:
            raise ConfigError(f"unknown --like={like!r}: choose one of {', '.join(PROFILES)}")
    base_name = name or (synthetic_name(like, scale) if dataset == "synthetic" else dataset)
    full_name = subset_name(base_name, fraction)
    out_dir = Path(out) if out is not None else default_out_dir()

    item: AtomicTable | None = None
    side: dict[str, AtomicTable] = {}
    if dataset in FORMATS:
        inter = convert_movielens(dataset, raw_path)
        if dataset == "ml-1m":  # movies.dat and users.dat beside ratings.dat: .item and .user
            side = read_side_information(resolve_source(raw_path, FORMATS[dataset]))
    elif dataset == "amazon-mix":
        inter, item = convert_amazon_mix(raw_path, DEFAULT_K if k is None else k)
    else:
        inter = generate_synthetic(like, scale, seed)

    if name:  # a renamed conversion (ml-latest-small read as ml-20m) has no published numbers
        references: tuple[Reference, ...] = ()
    elif dataset == "synthetic":
        references = (Reference(f"target: {like} shape x {scale:g}", scaled_profile(like, scale).shape),)
    else:
        references = REFERENCES.get(dataset, ())

    report = []
    full_shape = shape_of(inter.frame)
    if fraction < 1.0:
        report.append(dataset_report(base_name, full_shape, references))
        keep = sample_users(inter.frame["user_id"], fraction, seed)
        inter = AtomicTable(inter.frame[keep].reset_index(drop=True), inter.types)
        if item is not None:
            present = item.frame["item_id"].isin(inter.frame["item_id"].unique())
            item = AtomicTable(item.frame[present.to_numpy()].reset_index(drop=True), item.types)
        for kind, column in (("item", "item_id"), ("user", "user_id")):
            if kind in side:
                table = side[kind]
                kept = table.frame[column].isin(inter.frame[column].astype(str).unique()).to_numpy()
                side[kind] = AtomicTable(table.frame[kept].reset_index(drop=True), table.types)
    shape = shape_of(inter.frame)

    tables = {"inter": inter} if item is None else {"inter": inter, "item": item}
    tables.update(side)
    files = write_dataset(out_dir / full_name, full_name, tables)

    if fraction < 1.0:
        report.append(
            f"subset {full_name}: {fraction * 100:.6g}% of the users (seed {seed}) with their whole "
            f"sequences: {shape.interactions:,} interactions ({shape.interactions / full_shape.interactions:.1%} "
            f"of {full_shape.interactions:,})"
        )
        report.append(dataset_report(full_name, shape))
    else:
        report.append(dataset_report(full_name, shape, references))
    if "domain" in inter.frame:
        report.append(domain_report(inter.frame))
    if side:
        report.append("side information: " + ", ".join(f"{len(t):,} rows in .{kind}" for kind, t in side.items()))
    elif dataset == "ml-1m":
        report.append("no movies.dat or users.dat beside the ratings: .inter only (no side information)")
    report.append("wrote " + ", ".join(str(f) for f in files))
    return Prepared(full_name, files, shape, report)
