"""Synthetic datasets with the shape of a real one, for scale tests without the real data.

``synthetic-ml-20m`` has ML-20M's 138,493 users, 26,744 items and 20,000,263 interactions;
``--scale=0.01`` scales all three (the average sequence length stays). The data has:

- Zipf item popularity: the item of popularity rank r = 0, 1, ... has weight
  (r + ZIPF_OFFSET) ** -ZIPF_EXPONENT (Zipf-Mandelbrot: the offset flattens the head so the
  most popular item gets about 0.3% of ML-20M-sized data, as Pulp Fiction's 67,310 ratings
  do, instead of pure Zipf's 9%);
- long-tailed user lengths: the release's minimum (20 ratings) plus a log-normal part, capped
  at MAX_LENGTH_FACTOR times the average (ML-20M: median about 68, longest 9,254);
- sequential structure a model can learn. Items are grouped into latent topics, and within
  a topic into a fixed cyclic order (a "series"). A user stays in a topic and drifts to another
  one (drawn by topic popularity) with probability TOPIC_SWITCH_PROBABILITY at each fresh pick;
  a fresh pick is an item of the current topic drawn by popularity. With probability
  SUCCESSOR_PROBABILITY the next item is instead the successor, in its series, of the
  previous one. So the next item depends on the recent items: their topic, and the last one.
  Items may repeat within a user, as re-purchases do in Amazon data;
- timestamps strictly increasing within each user (so there are no ties to break).

Everything is drawn with numpy for all users at once: the Markov structure is expressed with
"index of the last event at or before each position" (``np.maximum.accumulate``), not with a
loop over positions. The full ML-20M shape takes well under a minute on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recbole_lsrm.config import DEFAULT_SEED
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.prepare.atomic_writer import AtomicTable
from recbole_lsrm.prepare.progress import step
from recbole_lsrm.prepare.stats import REFERENCES, Shape

ZIPF_EXPONENT = 1.0
ZIPF_OFFSET = 50.0
LENGTH_SIGMA = 1.4  # log-normal spread of user lengths above the minimum (ML-20M's median)
MAX_LENGTH_FACTOR = 64  # the longest user has at most 64x the average length
SUCCESSOR_PROBABILITY = 0.3
TOPIC_SWITCH_PROBABILITY = 0.1
ITEMS_PER_TOPIC_ROOT = 0.6  # topics = 0.6 * sqrt(items): ML-20M shape -> 98 topics of ~273 items
FIRST_TIMESTAMP, LAST_START = 789_652_009, 1_400_000_000  # ML-20M's time range (Unix seconds)
MEDIAN_GAP_SECONDS, GAP_SIGMA = 600.0, 2.5  # bursts of ratings, and pauses of days

INTER_TYPES = {"user_id": "token", "item_id": "token", "timestamp": "float"}


@dataclass(frozen=True)
class Profile:
    """The shape a synthetic dataset copies, and its shortest user sequence."""

    shape: Shape
    min_length: int


PROFILES: dict[str, Profile] = {
    "ml-1m": Profile(REFERENCES["ml-1m"][0].shape, 20),
    "ml-10m": Profile(REFERENCES["ml-10m"][0].shape, 20),
    "ml-20m": Profile(REFERENCES["ml-20m"][0].shape, 20),
    "amazon-mix": Profile(REFERENCES["amazon-mix"][0].shape, 30),  # 30-core
}


def check_scale(scale: float) -> float:
    if not (isinstance(scale, (int, float)) and 0 < scale <= 1):
        raise ConfigError(f"--scale must be a number in (0, 1], got {scale!r}")
    return float(scale)


def synthetic_name(like: str, scale: float = 1.0) -> str:
    """``synthetic-ml-20m``, or ``synthetic-ml-20m-0.01`` at ``scale=0.01``."""
    return f"synthetic-{like}" if check_scale(scale) == 1.0 else f"synthetic-{like}-{scale:g}"


def scaled_profile(like: str, scale: float) -> Profile:
    if like not in PROFILES:
        raise ConfigError(f"unknown --like={like!r}: choose one of {', '.join(PROFILES)}")
    base = PROFILES[like]
    users = max(1, round(base.shape.users * check_scale(scale)))
    items = max(2, round(base.shape.items * scale))
    interactions = max(users * 2, round(base.shape.interactions * scale))
    return Profile(Shape(users, items, interactions), min(base.min_length, interactions // users))


def user_lengths(rng: np.random.Generator, profile: Profile) -> np.ndarray:
    """Long-tailed sequence lengths, at least ``min_length``, summing to the interactions exactly."""
    users, total = profile.shape.users, profile.shape.interactions
    extra_total = total - users * profile.min_length
    extra = rng.lognormal(0.0, LENGTH_SIGMA, users)
    cap = MAX_LENGTH_FACTOR * total / users
    extra = np.minimum(extra / extra.sum() * extra_total, cap)
    extra *= extra_total / extra.sum()
    whole = np.floor(extra).astype(np.int64)
    # Hand out what the flooring lost to the users with the largest remainders.
    missing = int(extra_total - whole.sum())
    if missing > 0:
        whole[np.argpartition(whole - extra, missing - 1)[:missing]] += 1
    return whole + profile.min_length


@dataclass(frozen=True)
class _Catalogue:
    """Items laid out topic by topic; position p holds item ``items[p]``."""

    items: np.ndarray  # (I,) popularity rank of the item at each position
    cumulative: np.ndarray  # (I + 1,) popularity weight before each position
    topic_start: np.ndarray  # (K + 1,) first position of each topic
    topic_of: np.ndarray  # (I,) topic of each position


def _catalogue(rng: np.random.Generator, n_items: int) -> _Catalogue:
    n_topics = int(min(n_items, max(1, round(ITEMS_PER_TOPIC_ROOT * np.sqrt(n_items)))))
    topics = rng.permutation(np.arange(n_items) % n_topics)  # every topic gets items
    order = np.lexsort((rng.random(n_items), topics))  # by topic, a random series order inside
    weights = (order + ZIPF_OFFSET) ** -ZIPF_EXPONENT  # ``order`` holds popularity ranks
    topic_of = topics[order]
    return _Catalogue(
        items=order,
        cumulative=np.concatenate([[0.0], np.cumsum(weights)]),
        topic_start=np.searchsorted(topic_of, np.arange(n_topics + 1)),
        topic_of=topic_of,
    )


def _last_true(mask: np.ndarray) -> np.ndarray:
    """For each position, the index of the last True at or before it (position 0 is True)."""
    return np.maximum.accumulate(np.where(mask, np.arange(len(mask)), 0))


def _draw_in_topics(rng: np.random.Generator, cat: _Catalogue, topics: np.ndarray) -> np.ndarray:
    """A position in each given topic, drawn by item popularity."""
    low, high = cat.cumulative[cat.topic_start[topics]], cat.cumulative[cat.topic_start[topics + 1]]
    positions = np.searchsorted(cat.cumulative, low + rng.random(len(topics)) * (high - low), side="right") - 1
    return np.clip(positions, cat.topic_start[topics], cat.topic_start[topics + 1] - 1)


def _draw_topics(rng: np.random.Generator, cat: _Catalogue, n: int) -> np.ndarray:
    """Topics drawn by their total popularity, so item popularity stays Zipf overall."""
    mass = cat.cumulative[cat.topic_start]
    topics = np.searchsorted(mass, rng.random(n) * mass[-1], side="right") - 1
    return np.clip(topics, 0, len(cat.topic_start) - 2)


def item_sequences(rng: np.random.Generator, cat: _Catalogue, lengths: np.ndarray) -> np.ndarray:
    """Concatenated item sequences (popularity ranks) of users with ``lengths``."""
    n = int(lengths.sum())
    first = np.zeros(n, dtype=bool)
    first[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = True

    fresh = first | (rng.random(n, dtype=np.float32) >= SUCCESSOR_PROBABILITY)
    switch = first | (fresh & (rng.random(n, dtype=np.float32) < TOPIC_SWITCH_PROBABILITY))
    # A user's topic is the one drawn at their last switch (the first position always switches).
    topic = np.zeros(n, dtype=np.int32)
    topic[switch] = _draw_topics(rng, cat, int(switch.sum()))
    topic = topic[_last_true(switch)]

    position = np.zeros(n, dtype=np.int64)
    position[fresh] = _draw_in_topics(rng, cat, topic[fresh])
    del topic
    # Between fresh picks, each item is the series successor of the one before it.
    anchor = _last_true(fresh)
    steps = np.arange(n) - anchor
    anchor_position = position[anchor]
    del anchor
    anchor_topic = cat.topic_of[anchor_position]
    start, size = cat.topic_start[anchor_topic], np.diff(cat.topic_start)[anchor_topic]
    position = start + (anchor_position - start + steps) % size
    return cat.items[position]


def timestamps(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """Unix seconds, strictly increasing within each user."""
    n = int(lengths.sum())
    gaps = 1 + np.floor(rng.lognormal(np.log(MEDIAN_GAP_SECONDS), GAP_SIGMA, n)).astype(np.int64)
    gaps = np.minimum(gaps, 30 * 86_400)
    elapsed = np.cumsum(gaps)
    user_offset = np.concatenate([[0], elapsed[np.cumsum(lengths)[:-1] - 1]])  # elapsed before each user
    starts = rng.integers(FIRST_TIMESTAMP, LAST_START, len(lengths))
    return np.repeat(starts - user_offset, lengths) + elapsed


def generate_synthetic(like: str = "ml-20m", scale: float = 1.0, seed: int = DEFAULT_SEED) -> AtomicTable:
    """A synthetic ``.inter`` table shaped like ``like`` at ``scale`` (see the module docstring)."""
    profile = scaled_profile(like, scale)
    rng = np.random.default_rng(seed)
    shape = profile.shape
    with step(f"generating {shape.users:,} users, {shape.items:,} items, {shape.interactions:,} interactions"):
        lengths = user_lengths(rng, profile)
        ranks = item_sequences(rng, _catalogue(rng, shape.items), lengths)
        item_ids = rng.permutation(shape.items).astype(np.int32) + 1  # ids unrelated to popularity
        frame = pd.DataFrame(
            {
                "user_id": np.repeat(np.arange(1, shape.users + 1, dtype=np.int32), lengths),
                "item_id": item_ids[ranks],
                "timestamp": timestamps(rng, lengths),
            }
        )
    return AtomicTable(frame, dict(INTER_TYPES))
