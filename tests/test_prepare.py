"""The dataset converters (``python -m recbole_lsrm.prepare``) on real data, and on bad input.

Real data: ML-1M and the Amazon 2014 Beauty + Sports files from the shared folder beside the
repository (``../shared/datasets``; licensing keeps them out of the repository), written back
into their raw download formats here; ml-latest-small is committed as a fixture in ML-20M's
raw schema (``tests/fixtures/ml-latest-small``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recbole_lsrm.errors import ConfigError, DatasetError
from recbole_lsrm.prepare import prepare
from recbole_lsrm.prepare.__main__ import main
from recbole_lsrm.prepare.kcore import k_core
from recbole_lsrm.prepare.synthetic import ZIPF_OFFSET

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
ML_LATEST_SMALL = ROOT / "tests" / "fixtures" / "ml-latest-small" / "ratings.csv"

ML1M_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
AMAZON_HEADER = "user_id:token\titem_id:token\ttimestamp:float\tdomain:token"


def shared_file(dataset: str, name: str) -> Path:
    path = SHARED / dataset / name
    if not path.is_file():
        pytest.skip(f"shared dataset file {path} is absent (CI clones ../shared beside the repository)")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_atomic(path: Path) -> pd.DataFrame:
    """An atomic file with its header checked; columns named by field, ids kept as strings."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def report_row(out: str, label: str) -> list[str]:
    """The figures of the statistics row that starts with ``label``."""
    rows = [line.strip()[len(label):].split() for line in out.splitlines() if line.strip().startswith(label)]
    assert rows, f"no row {label!r} in:\n{out}"
    return rows[0]


def written_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- MovieLens ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml1m_ratings_dat(tmp_path_factory) -> Path:
    """ML-1M's original ratings.dat, rebuilt from the shared atomic file (never committed)."""
    atomic = lzma.decompress(shared_file("ml-1m", "ml-1m.inter.xz").read_bytes())
    path = tmp_path_factory.mktemp("ml-1m-raw") / "ratings.dat"
    path.write_bytes(atomic.split(b"\n", 1)[1].replace(b"\t", b"::"))
    # The shared README's checksum of the rebuilt file: this is the original ratings.dat.
    assert sha256(path) == "506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f"
    return path


def test_ml1m_from_ratings_dat(ml1m_ratings_dat, tmp_path, capsys):
    assert main(["ml-1m", "--raw", str(ml1m_ratings_dat), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    inter = tmp_path / "ml-1m" / "ml-1m.inter"
    # Byte-identical to the shared atomic file: no row dropped, changed or reordered.
    assert sha256(inter) == "e943abb91013a54c385828fdf5ab4ce49e957ca3a772adb30cde2a7d5539b389"
    frame = read_atomic(inter)
    assert inter.read_text().splitlines()[0] == ML1M_HEADER
    assert (len(frame), frame.user_id.nunique(), frame.item_id.nunique()) == (1_000_209, 6_040, 3_706)
    assert report_row(out, "ml-1m") == ["6,040", "3,706", "1,000,209", "165.60"]
    assert report_row(out, "ML-1M as released (GroupLens)") == ["6,040", "3,706", "1,000,209", "165.60"]


def test_ml20m_converter_on_ml_latest_small(tmp_path, capsys):
    code = main(["ml-20m", "--raw", str(ML_LATEST_SMALL), "--out", str(tmp_path), "--name", "ml-latest-small"])
    assert code == 0
    out = capsys.readouterr().out
    frame = read_atomic(tmp_path / "ml-latest-small" / "ml-latest-small.inter")
    assert (len(frame), frame.user_id.nunique(), frame.item_id.nunique()) == (100_836, 610, 9_724)
    assert report_row(out, "ml-latest-small") == ["610", "9,724", "100,836", "165.30"]
    assert "Table II" not in out  # a renamed conversion is not compared with ML-20M's numbers
    raw = pd.read_csv(ML_LATEST_SMALL)
    assert (frame.user_id.astype(int).to_numpy() == raw.userId.to_numpy()).all()
    assert (frame.item_id.astype(int).to_numpy() == raw.movieId.to_numpy()).all()
    assert np.array_equal(frame.rating.astype(float).to_numpy(), raw.rating.to_numpy())
    assert (frame.timestamp.astype(np.int64).to_numpy() == raw.timestamp.to_numpy()).all()


def test_ml20m_reports_the_release_and_table_ii(tmp_path, capsys):
    assert main(["ml-20m", "--raw", str(ML_LATEST_SMALL), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert report_row(out, "ML-20M as released (GroupLens)")[:3] == ["138,493", "26,744", "20,000,263"]
    assert report_row(out, "paper Table II (after its preprocessing)")[:3] == ["138,493", "26,427", "18,476,840"]
    assert (tmp_path / "ml-20m" / "ml-20m.inter").is_file()


def test_folder_zip_and_gzip_inputs_read_the_same(tmp_path):
    archive = tmp_path / "ml-20m.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(ML_LATEST_SMALL, "ml-20m/ratings.csv")
        z.writestr("ml-20m/README.txt", "not read")
    gz = tmp_path / "ratings.csv.gz"
    gz.write_bytes(gzip.compress(ML_LATEST_SMALL.read_bytes(), compresslevel=1))
    results = [
        prepare("ml-20m", raw, tmp_path / f"out{i}").files[0].read_bytes()
        for i, raw in enumerate([ML_LATEST_SMALL, ML_LATEST_SMALL.parent, archive, gz])
    ]
    assert all(r == results[0] for r in results[1:])


def test_lines_split_across_blocks(tmp_path, monkeypatch):
    """Reading in blocks of a few bytes gives the same file, and the right line numbers."""
    whole = prepare("ml-20m", ML_LATEST_SMALL, tmp_path / "a").files[0].read_bytes()
    lines = ML_LATEST_SMALL.read_text().splitlines()[:2000]
    small = tmp_path / "small.csv"
    small.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr("recbole_lsrm.prepare.raw_files.BLOCK_SIZE", 97)
    in_blocks = prepare("ml-20m", small, tmp_path / "b").files[0].read_bytes()
    assert in_blocks.splitlines() == whole.splitlines()[:2000]
    lines[1500] = lines[1500].replace(",", ";", 1)
    small.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"small.csv, line 1501: expected 4 fields separated by ','"):
        prepare("ml-20m", small, tmp_path / "c")


@pytest.mark.slow
def test_converted_data_trains_through_the_pipeline(tmp_path):
    from recbole_lsrm.pipeline import run

    out_dir = tmp_path / "data"
    prepare("ml-20m", ML_LATEST_SMALL, out_dir, name="ml-latest-small")
    summary = run(
        "LSRM",
        "ml-latest-small",
        options={
            "data_path": str(out_dir), "checkpoint_dir": str(tmp_path / "saved"), "epochs": 1,
            "n_layers": 1, "d_model": 16, "n_heads": 2, "show_progress": False, "state": "WARNING",
        },
    )
    assert summary["test"] and all(math.isfinite(v) for v in summary["test"].values())
    assert math.isfinite(summary["test"]["celoss"])


# --- Amazon ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amazon_source() -> pd.DataFrame:
    """The shared Amazon 2014 Beauty + Sports interactions (rows grouped by domain, then user)."""
    data = lzma.decompress(shared_file("amazon2014-beauty-sports", "amazon2014-beauty-sports.inter.xz").read_bytes())
    frame = pd.read_csv(io.BytesIO(data), sep="\t", dtype=str)
    frame.columns = ["user", "item", "timestamp", "domain"]
    return frame


@pytest.fixture(scope="module")
def amazon_raw(amazon_source, tmp_path_factory) -> Path:
    """The two categories in Amazon-2018's download forms: JSON-lines reviews and a ratings CSV."""
    folder = tmp_path_factory.mktemp("amazon-raw")
    beauty = amazon_source[amazon_source.domain == "Beauty"]
    # Review lines with the fields the converter ignores, as in the real files.
    json_lines = (
        '{"overall": 5.0, "verified": true, "reviewerID": "' + beauty.user + '", "asin": "' + beauty.item
        + '", "reviewText": "Nice.\\tReally.", "style": {"Size:": " 2"}, "unixReviewTime": ' + beauty.timestamp + "}"
    )
    (folder / "Beauty.json.gz").write_bytes(gzip.compress(("\n".join(json_lines) + "\n").encode(), compresslevel=1))
    sports = amazon_source[amazon_source.domain == "Sports_and_Outdoors"]
    sports.assign(rating="4.0")[["item", "user", "rating", "timestamp"]].to_csv(
        folder / "Sports_and_Outdoors.csv", header=False, index=False
    )
    (folder / "README.txt").write_text("not a category file")
    return folder


@pytest.mark.slow
def test_amazon_mix_merges_domains_by_user(amazon_raw, amazon_source, tmp_path, capsys):
    assert main(["amazon-mix", "--raw", str(amazon_raw), "--k", "5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    inter_path = tmp_path / "amazon-mix" / "amazon-mix.inter"
    assert inter_path.read_text().splitlines()[0] == AMAZON_HEADER
    inter = read_atomic(inter_path)
    item = read_atomic(tmp_path / "amazon-mix" / "amazon-mix.item")

    # The input is 5-core per domain already, so 5-core of the mix keeps everything (README counts).
    per_domain = inter.groupby("domain").agg(users=("user_id", "nunique"), items=("item_id", "nunique"), n=("item_id", "size"))
    assert per_domain.loc["Beauty"].tolist() == [22_363, 12_101, 198_502]
    assert per_domain.loc["Sports_and_Outdoors"].tolist() == [35_598, 18_357, 296_337]
    assert (inter.groupby("user_id").domain.nunique() == 2).sum() == 1_625
    assert report_row(out, "Beauty") == ["22,363", "12,101", "198,502"]
    assert "users active in several domains: 1,625 (1 domain: 54,711, 2 domains: 1,625)" in out

    # Each user's rows are one block in chronological order; same-day ties keep the input
    # order (Beauty's file before Sports', then line order).
    source = amazon_source.assign(order=np.arange(len(amazon_source)), t=amazon_source.timestamp.astype(np.int64))
    source = source.assign(order=source.order + np.where(source.domain == "Beauty", 0, len(source)))
    expected = source.sort_values(["user", "t", "order"])
    assert inter.user_id.tolist() == expected.user.tolist()
    assert inter.item_id.tolist() == expected.item.tolist()
    users = inter.user_id.to_numpy()
    assert (users[1:] >= users[:-1]).all()
    t = inter.timestamp.astype(np.int64).to_numpy()
    assert (t[1:][users[1:] == users[:-1]] >= t[:-1][users[1:] == users[:-1]]).all()
    same_day_cross_domain = inter.groupby(["user_id", "timestamp"]).domain.nunique().gt(1).sum()
    assert same_day_cross_domain > 0  # the tie rule was exercised

    # The .item file gives each item its domain.
    assert item.item_id.is_unique and set(item.item_id) == set(inter.item_id)
    domain_of = dict(zip(amazon_source.item, amazon_source.domain))
    assert all(domain_of[i] == d for i, d in zip(item.item_id, item.domain))


def _naive_k_core(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    while True:
        users, items = frame.user.map(frame.user.value_counts()), frame.item.map(frame.item.value_counts())
        kept = frame[(users >= k) & (items >= k)]
        if len(kept) == len(frame):
            return kept
        frame = kept


def test_amazon_k_core_is_iterated_until_stable(amazon_raw, amazon_source, tmp_path):
    prepared = prepare("amazon-mix", amazon_raw, tmp_path, k=20)
    inter = read_atomic(prepared.files[0])
    assert inter.user_id.value_counts().min() >= 20 and inter.item_id.value_counts().min() >= 20
    expected = _naive_k_core(amazon_source, 20)
    assert 0 < len(inter) == len(expected) < len(amazon_source)
    assert set(zip(inter.user_id, inter.item_id)) == set(zip(expected.user, expected.item))


def test_k_core_needs_several_passes():
    # u0 has 2 items; i2 is only held by u1, whose removal makes i1 fall under k=2.
    users = np.array([0, 0, 1, 1, 2, 2, 3])
    items = np.array([0, 1, 0, 2, 0, 1, 1])
    mask, passes = k_core(users, items, 2)
    assert mask.tolist() == [True, True, False, False, True, True, False] and passes > 1


def test_amazon_subset_keeps_items_of_kept_users(amazon_raw, tmp_path, capsys):
    assert main(["amazon-mix", "--raw", str(amazon_raw), "--k", "5", "--fraction=0.1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    inter = read_atomic(tmp_path / "amazon-mix-10" / "amazon-mix-10.inter")
    item = read_atomic(tmp_path / "amazon-mix-10" / "amazon-mix-10.item")
    assert inter.user_id.nunique() == round(0.1 * 56_336)
    assert set(item.item_id) == set(inter.item_id)
    assert f"{len(inter):,} interactions" in out


# --- Data-size subsets ----------------------------------------------------------------


def test_fraction_samples_users_with_whole_sequences(tmp_path, capsys):
    assert main(["ml-20m", "--raw", str(ML_LATEST_SMALL), "--name", "mls", "--fraction=0.1", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    subset = read_atomic(tmp_path / "a" / "mls-10" / "mls-10.inter")
    full = read_atomic(prepare("ml-20m", ML_LATEST_SMALL, tmp_path / "full", name="mls").files[0])
    assert subset.user_id.nunique() == 61
    kept = full[full.user_id.isin(set(subset.user_id))]
    assert subset.equals(kept.reset_index(drop=True))  # every kept user's sequence, whole and in order
    assert f"subset mls-10: 10% of the users (seed 2020) with their whole sequences: {len(subset):,} interactions" in out

    again = prepare("ml-20m", ML_LATEST_SMALL, tmp_path / "b", name="mls", fraction=0.1)
    assert again.files[0].read_bytes() == (tmp_path / "a" / "mls-10" / "mls-10.inter").read_bytes()
    other = read_atomic(prepare("ml-20m", ML_LATEST_SMALL, tmp_path / "c", name="mls", fraction=0.1, seed=7).files[0])
    assert set(other.user_id) != set(subset.user_id)
    half = prepare("ml-20m", ML_LATEST_SMALL, tmp_path / "d", name="mls", fraction=0.5)
    assert half.name == "mls-50" and half.shape.users == 305


# --- Synthetic data -------------------------------------------------------------------


def test_synthetic_has_ml20m_shape_and_learnable_structure(tmp_path, capsys):
    assert main(["synthetic", "--like", "ml-20m", "--scale=0.005", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "synthetic-ml-20m-0.005" / "synthetic-ml-20m-0.005.inter"
    frame = pd.read_csv(path, sep="\t")
    frame.columns = ["user", "item", "t"]
    lengths = frame.groupby("user").size()
    assert frame.user.nunique() == round(138_493 * 0.005) and len(frame) == round(20_000_263 * 0.005)
    assert 0.95 * round(26_744 * 0.005) <= frame.item.nunique() <= round(26_744 * 0.005)
    assert abs(lengths.mean() - 20_000_263 / 138_493) < 1
    assert lengths.min() >= 20 and lengths.max() > 10 * lengths.median()  # long-tailed users
    assert "target: ml-20m shape x 0.005" in out

    counts = np.sort(frame.item.value_counts().to_numpy())[::-1]
    zipf = (np.arange(len(counts)) + ZIPF_OFFSET) ** -1.0
    assert np.corrcoef(np.log(counts), np.log(zipf))[0, 1] > 0.95

    users, items, times = frame.user.to_numpy(), frame.item.to_numpy(), frame.t.to_numpy()
    same = users[1:] == users[:-1]
    assert (times[1:][same] > times[:-1][same]).all()

    def top_follower_accuracy(items: np.ndarray) -> float:
        """How often "the most frequent next item after the previous one" is right."""
        pairs = pd.DataFrame({"prev": items[:-1][same], "next": items[1:][same]}).value_counts()
        return pairs.groupby(level=0).max().sum() / same.sum()

    rng = np.random.default_rng(0)
    shuffled = np.concatenate([rng.permutation(g) for g in np.split(items, np.flatnonzero(~same) + 1)])
    assert top_follower_accuracy(items) > 4 * top_follower_accuracy(shuffled)

    again = prepare("synthetic", out=tmp_path / "again", scale=0.005)
    assert again.files[0].read_bytes() == path.read_bytes()


# --- Bad input ------------------------------------------------------------------------


def _fails(capsys, out: Path, *argv: str) -> str:
    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    message = [line for line in err.splitlines() if not line.startswith("[prepare]")]
    assert len(message) == 1 and message[0].startswith("error: "), err
    assert "Traceback" not in err
    assert written_files(out) == [] and not out.exists(), "a failed conversion must not write anything"
    return message[0]


ML1M_LINES = ["1::1193::5::978300760", "1::661::3::978302109", "1::914::3::978301968", "2::1357::5::978298709"]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "lines, message",
    [
        (ML1M_LINES[:3] + ["2::1357::5"], "ratings.dat, line 4: expected 4 fields separated by '::' "
                                           "(UserID::MovieID::Rating::Timestamp), found 3: '2::1357::5'"),
        ([line.replace("::", ",") for line in ML1M_LINES], "ratings.dat, line 1: expected 4 fields separated by "
                                                          "'::' (UserID::MovieID::Rating::Timestamp), found 1: "
                                                          "'1,1193,5,978300760'; wrong delimiter? the line holds ','"),
        (ML1M_LINES[:2] + ["x12::914::3::978301968"], "ratings.dat, line 3: UserID must be an integer, got 'x12'"),
        (ML1M_LINES[:3] + ["2::1357::5::noon"], "ratings.dat, line 4: Timestamp must be an integer, got 'noon'"),
        (ML1M_LINES[:1] + ["1::661::good::978302109"], "ratings.dat, line 2: Rating must be a number, got 'good'"),
        ([], "ratings.dat: no ratings in the file (expected lines UserID::MovieID::Rating::Timestamp)"),
    ],
    ids=["truncated", "wrong-delimiter", "non-numeric-id", "non-numeric-timestamp", "non-numeric-rating", "empty"],
)
def test_bad_ratings_dat(capsys, tmp_path, lines, message):
    raw = _write(tmp_path / "ratings.dat", lines) if lines else tmp_path / "ratings.dat"
    raw.touch()
    assert _fails(capsys, tmp_path / "out", "ml-1m", "--raw", str(raw)) == f"error: {tmp_path}/{message}"


@pytest.mark.parametrize(
    "lines, message",
    [
        (["userId,movieId,rating", "1,1,4.0"], "ratings.csv, line 1: missing column(s) timestamp; found userId, movieId, rating"),
        (["1::1193::5::978300760"], "line 1: missing column(s) userId, movieId, rating, timestamp; found "
                                    "1::1193::5::978300760; this looks like a '::'-separated ratings.dat"),
        (["userId,movieId,rating,timestamp", "1,1,4.0,964982703", "1,3,4.0,yesterday"],
         "ratings.csv, line 3: timestamp must be an integer, got 'yesterday'"),
        (["userId,movieId,rating,timestamp", "1,1,4.0,964982703", "1,3,4.0"],
         "ratings.csv, line 3: expected 4 fields separated by ','"),
    ],
    ids=["missing-column", "dat-given-as-csv", "non-numeric-timestamp", "truncated"],
)
def test_bad_ratings_csv(capsys, tmp_path, lines, message):
    raw = _write(tmp_path / "ratings.csv", lines)
    assert message in _fails(capsys, tmp_path / "out", "ml-20m", "--raw", str(raw))


def test_missing_raw_file(capsys, tmp_path):
    err = _fails(capsys, tmp_path / "out", "ml-1m", "--raw", str(tmp_path / "nope" / "ratings.dat"))
    assert err == f"error: {tmp_path / 'nope' / 'ratings.dat'}: file not found (expected ml-1m's ratings.dat)"
    err = _fails(capsys, tmp_path / "out", "ml-20m", "--raw", str(tmp_path))
    assert f"{tmp_path}: no ratings.csv in this folder" in err


REVIEW = '{{"reviewerID": "{u}", "asin": "{i}", "unixReviewTime": {t}}}'


def _amazon_folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _reviews(n_users: int, n_items: int) -> list[str]:
    return [REVIEW.format(u=f"U{u}", i=f"I{i}", t=1_000 + i) for u in range(n_users) for i in range(n_items)]


def test_bad_amazon_json(capsys, tmp_path):
    lines = _reviews(3, 3)
    cases = {
        "truncated-line": (lines[:5] + [lines[5][:30]], "Toys.json, line 6: not valid JSON"),
        "missing-field": (lines[:1] + ['{"reviewerID": "U9", "asin": "I1"}'],
                          "Toys.json, line 2: missing field 'unixReviewTime'"),
        "text-timestamp": (lines[:2] + [REVIEW.format(u="U9", i="I1", t='"May 5"')],
                           "Toys.json, line 3: unixReviewTime must be an integer, got 'May 5'"),
        "empty-id": (lines[:3] + [REVIEW.format(u="", i="I1", t=5)], "Toys.json, line 4: reviewerID is empty"),
    }
    for case, (case_lines, message) in cases.items():
        folder = _amazon_folder(tmp_path / case, {"Toys.json": ("\n".join(case_lines) + "\n").encode()})
        err = _fails(capsys, tmp_path / case / "out", "amazon-mix", "--raw", str(folder), "--k", "1")
        assert f"error: {folder / message}" in err, (case, err)


def test_truncated_gzip(capsys, tmp_path):
    data = gzip.compress(("\n".join(_reviews(50, 50)) + "\n").encode())
    folder = _amazon_folder(tmp_path, {"Toys.json.gz": data[: len(data) // 2]})
    err = _fails(capsys, tmp_path / "out", "amazon-mix", "--raw", str(folder))
    assert f"{folder / 'Toys.json.gz'}: the compressed file is truncated" in err


def test_bad_amazon_csv_and_folders(capsys, tmp_path):
    folder = _amazon_folder(tmp_path / "a", {"Toys.csv": b"I1,U1,5.0,100\nI2,U1,4.0,yesterday\n"})
    err = _fails(capsys, tmp_path / "a" / "out", "amazon-mix", "--raw", str(folder))
    assert err == f"error: {folder / 'Toys.csv'}, line 2: timestamp must be an integer, got 'yesterday'"
    folder = _amazon_folder(tmp_path / "b", {"Toys.csv": b"I1\tU1\t5.0\t100\n"})
    err = _fails(capsys, tmp_path / "b" / "out", "amazon-mix", "--raw", str(folder))
    assert "line 1: expected 4 fields separated by ',' (item,user,rating,timestamp)" in err and "wrong delimiter" in err
    folder = _amazon_folder(tmp_path / "c", {"notes.txt": b"hello"})
    assert "no category files" in _fails(capsys, tmp_path / "c" / "out", "amazon-mix", "--raw", str(folder))
    folder = _amazon_folder(tmp_path / "d", {"Toys.csv": b"I1,U1,5.0,100\n", "Toys.json": b'{"x": 1}\n'})
    assert "category 'Toys' is given by more than one file" in _fails(
        capsys, tmp_path / "d" / "out", "amazon-mix", "--raw", str(folder))
    assert "folder not found" in _fails(capsys, tmp_path / "out", "amazon-mix", "--raw", str(tmp_path / "none"))


def test_empty_after_k_core(capsys, tmp_path):
    folder = _amazon_folder(tmp_path, {"Toys.json": ("\n".join(_reviews(10, 10)) + "\n").encode()})
    err = _fails(capsys, tmp_path / "out", "amazon-mix", "--raw", str(folder), "--k", "11")
    assert "no interactions left after 11-core filtering (before it: 10 users, 10 items, 100 interactions); lower --k" in err
    assert prepare("amazon-mix", folder, tmp_path / "ok", k=10).shape.interactions == 100


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ml-30m", "--raw", "x"], "error: unknown dataset 'ml-30m': choose one of ml-1m, ml-10m, ml-20m, amazon-mix, synthetic"),
        (["ml-1m"], "error: ml-1m needs --raw"),
        (["ml-1m", "--raw", "x", "--k", "5"], "error: --k applies to amazon-mix only"),
        (["ml-1m", "--raw", "x", "--fraction=1.5"], "error: --fraction must be a number in (0, 1], got 1.5"),
        (["ml-1m", "--raw", "x", "--fraction=half"], "error: argument --fraction: invalid float value: 'half'"),
        (["synthetic", "--like", "netflix"], "error: unknown --like='netflix'"),
        (["synthetic", "--scale=0"], "error: --scale must be a number in (0, 1], got 0.0"),
        (["amazon-mix", "--raw", "x", "--k", "0"], "error: --k must be a positive integer, got 0"),
        (["ml-1m", "--raw", "x", "--name", "../elsewhere"], "error: --name='../elsewhere' is not a dataset name"),
    ],
)
def test_bad_options(capsys, tmp_path, argv, message):
    assert _fails(capsys, tmp_path / "out", *argv).startswith(message)


@pytest.mark.slow
def test_cli_exit_status_and_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "recbole_lsrm.prepare", "ml-30m", "--raw", "x", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown dataset 'ml-30m'") and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_failed_write_leaves_the_old_files(tmp_path, monkeypatch):
    """Files are renamed into place only when all are complete: a crash keeps the old dataset."""
    folder = _amazon_folder(tmp_path, {"Toys.json": ("\n".join(_reviews(5, 5)) + "\n").encode()})
    first = prepare("amazon-mix", folder, tmp_path / "out", k=1)
    before = {p: p.read_bytes() for p in first.files}
    from recbole_lsrm.prepare import atomic_writer

    real = atomic_writer._format_into

    def crash_on_item(table, path):
        if "domain" in table.frame and "timestamp" not in table.frame:
            raise OSError("disk full")
        real(table, path)

    monkeypatch.setattr(atomic_writer, "_format_into", crash_on_item)
    with pytest.raises(OSError, match="disk full"):
        prepare("amazon-mix", folder, tmp_path / "out", k=2)
    assert {p: p.read_bytes() for p in first.files} == before
    assert sorted(p.name for p in (tmp_path / "out" / "amazon-mix").iterdir()) == ["amazon-mix.inter", "amazon-mix.item"]
    with pytest.raises(OSError, match="disk full"):
        prepare("amazon-mix", folder, tmp_path / "new" / "deeper", k=2)
    assert not (tmp_path / "new").exists()  # folders the failed write made are gone again


def test_config_error_is_the_plugin_error():
    with pytest.raises(ConfigError, match="unknown dataset"):
        prepare("ml-30m", "x")


# --- ML-1M side information -------------------------------------------------------------------
SHARED_ML1M = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-1m"


def _ml1m_raw(folder: Path, movies: bytes, users: bytes | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("1::1::5::978300760\n1::2::3::978302109\n2::2::4::978301968\n")
    (folder / "movies.dat").write_bytes(movies)
    if users is not None:
        (folder / "users.dat").write_bytes(users)
    return folder


def test_ml1m_side_information_is_written_beside_the_ratings(tmp_path):
    from recbole_lsrm.prepare.convert import prepare

    movies = ("1::Toy Story (1995)::Animation|Children's|Comedy\n"
              "2::Misérables, Les (1935)::Drama\n"
              "1001::Associate, The (L'Associe)(1982)::Comedy\n").encode("latin-1")
    users = b"1::F::1::10::48067\n2::M::56::16::70072\n"
    raw = _ml1m_raw(tmp_path / "raw", movies, users)
    prepared = prepare("ml-1m", raw, tmp_path / "out")
    folder = tmp_path / "out" / "ml-1m"
    assert (folder / "ml-1m.item").read_text(encoding="utf-8").splitlines() == [
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq",
        "1\tToy Story\t1995\tAnimation Children's Comedy",
        "2\tMisérables, Les\t1935\tDrama",
        "1001\tAssociate, The (L'Associe)\t1982\tComedy",
    ]
    assert (folder / "ml-1m.user").read_text().splitlines() == [
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
        "1\t1\tF\t10\t48067", "2\t56\tM\t16\t70072",
    ]
    assert any("side information: 3 rows in .item, 2 rows in .user" in line for line in prepared.report)


def test_a_malformed_movies_file_is_named_by_line(tmp_path):
    from recbole_lsrm.prepare.convert import prepare

    raw = _ml1m_raw(tmp_path / "raw", b"1::Toy Story (1995)::Comedy\n2::No Year::Drama\n", None)
    with pytest.raises(DatasetError, match=r"movies.dat, line 2: title 'No Year' does not end in its year"):
        prepare("ml-1m", raw, tmp_path / "out")
    assert not (tmp_path / "out" / "ml-1m").exists()


@pytest.mark.skipif(not (SHARED_ML1M / "raw" / "movies.dat").is_file(), reason="../shared/datasets/ml-1m is absent")
def test_ml1m_side_information_equals_the_shared_atomic_files_byte_for_byte(tmp_path):
    import lzma

    from recbole_lsrm.prepare.convert import prepare

    raw = _ml1m_raw(tmp_path / "raw", (SHARED_ML1M / "raw" / "movies.dat").read_bytes(),
                    (SHARED_ML1M / "raw" / "users.dat").read_bytes())
    prepare("ml-1m", raw, tmp_path / "out")
    for kind in ("item", "user"):
        written = (tmp_path / "out" / "ml-1m" / f"ml-1m.{kind}").read_bytes()
        assert written == lzma.decompress((SHARED_ML1M / f"ml-1m.{kind}.xz").read_bytes()), kind
