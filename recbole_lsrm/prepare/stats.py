"""Dataset statistics, printed next to the published numbers they should match.

References:
- "as released": the counts of the raw MovieLens files (GroupLens READMEs; every user of
  ML-1M/10M/20M has at least 20 ratings, so no filtering applies).
- "paper Table II": *Scaling Law of Large Sequential Recommendation Models*, statistics after
  the authors' preprocessing. For ML-20M they are 26,427 items and 18,476,840 interactions,
  fewer than the released file's 26,744 and 20,000,263; the paper does not say which rows it
  dropped, so the converter keeps the released data whole and prints both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Shape:
    """Users, items and interactions of a dataset."""

    users: int
    items: int
    interactions: int

    @property
    def average_length(self) -> float:
        """Average sequence length: interactions per user."""
        return self.interactions / self.users if self.users else 0.0


@dataclass(frozen=True)
class Reference:
    label: str
    shape: Shape


REFERENCES: dict[str, tuple[Reference, ...]] = {
    "ml-1m": (Reference("ML-1M as released (GroupLens)", Shape(6_040, 3_706, 1_000_209)),),
    "ml-10m": (Reference("ML-10M as released (GroupLens)", Shape(69_878, 10_677, 10_000_054)),),
    "ml-20m": (
        Reference("ML-20M as released (GroupLens)", Shape(138_493, 26_744, 20_000_263)),
        Reference("paper Table II (after its preprocessing)", Shape(138_493, 26_427, 18_476_840)),
    ),
    "amazon-mix": (
        Reference("paper Table II (29 domains, 30-core)", Shape(367_710, 240_320, 21_787_957)),
    ),
}


def shape_of(frame: pd.DataFrame, user: str = "user_id", item: str = "item_id") -> Shape:
    return Shape(int(frame[user].nunique()), int(frame[item].nunique()), len(frame))


def format_shapes(rows: list[tuple[str, Shape]]) -> str:
    """An aligned table: label, users, items, interactions, average sequence length."""
    width = max(len("dataset"), *(len(label) for label, _ in rows))
    lines = [f"{'dataset':<{width}}  {'users':>9}  {'items':>9}  {'interactions':>12}  {'avg. length':>11}"]
    for label, shape in rows:
        lines.append(
            f"{label:<{width}}  {shape.users:>9,}  {shape.items:>9,}  {shape.interactions:>12,}"
            f"  {shape.average_length:>11.2f}"
        )
    return "\n".join(lines)


def dataset_report(name: str, shape: Shape, references: tuple[Reference, ...] = ()) -> str:
    """The statistics line of a written dataset, with the published numbers below it."""
    return format_shapes([(name, shape)] + [(f"  {ref.label}", ref.shape) for ref in references])


def domain_statistics(frame: pd.DataFrame) -> pd.DataFrame:
    """Users, items and interactions per domain, plus an ``all`` row."""
    grouped = frame.groupby("domain", observed=True, sort=True)
    table = pd.DataFrame(
        {
            "users": grouped["user_id"].nunique(),
            "items": grouped["item_id"].nunique(),
            "interactions": grouped.size(),
        }
    )
    table.loc["all"] = [frame["user_id"].nunique(), frame["item_id"].nunique(), len(frame)]
    return table.astype(np.int64)


def users_by_domain_count(frame: pd.DataFrame) -> pd.Series:
    """How many users are active in exactly 1, 2, 3, ... domains."""
    per_user = frame.groupby("user_id", observed=True)["domain"].nunique()
    return per_user.value_counts().sort_index()


def domain_report(frame: pd.DataFrame) -> str:
    """Per-domain statistics and the users active in several domains (paper V-D's setting)."""
    table = domain_statistics(frame)
    width = max(len("domain"), *(len(str(d)) for d in table.index))
    lines = [f"{'domain':<{width}}  {'users':>9}  {'items':>9}  {'interactions':>12}"]
    for domain, row in table.iterrows():
        lines.append(f"{str(domain):<{width}}  {row['users']:>9,}  {row['items']:>9,}  {row['interactions']:>12,}")
    counts = users_by_domain_count(frame)
    several = int(counts[counts.index >= 2].sum())
    spread = ", ".join(f"{n} domain{'s' if n > 1 else ''}: {c:,}" for n, c in counts.items())
    lines.append(f"users active in several domains: {several:,} ({spread})")
    return "\n".join(lines)
