"""Dataset converters: raw downloads -> RecBole atomic files in ``dataset/<name>/``.

``python -m recbole_lsrm.prepare NAME ...`` (see :mod:`recbole_lsrm.prepare.__main__`):

- ``ml-1m``, ``ml-10m``, ``ml-20m``: MovieLens ratings (:mod:`.movielens`);
- ``amazon-mix``: the Amazon-2018 categories mixed by user and k-core filtered, as in the
  paper (:mod:`.amazon`, :mod:`.kcore`);
- ``synthetic``: generated data with a real dataset's shape (:mod:`.synthetic`);
- ``--fraction``: a users' subset for the data-scaling study (:mod:`.subsets`).

Each prints its statistics next to the published ones (:mod:`.stats`) and writes its files
atomically (:mod:`.atomic_writer`).
"""

from recbole_lsrm.prepare.convert import DATASETS, Prepared, prepare

__all__ = ["DATASETS", "Prepared", "prepare"]
