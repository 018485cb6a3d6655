"""After training: load a run, recommend for users or new histories, export vectors for serving.

    from recbole_lsrm.recommend import load_run, recommend
    run = load_run("saved/LSRM-ml-100k-...")
    top10 = recommend(run, users=["1", "2"], k=10)    # a DataFrame: user, rank, item, score

``python -m recbole_lsrm.recommend RUN_DIR --users=1,2 --k=10 [--out=top10.csv]`` does the
same from the command line, and ``--export DIR`` writes the item table and every user's state.
"""

from recbole_lsrm.recommend.export import export_run
from recbole_lsrm.recommend.loading import TrainedRun, load_run
from recbole_lsrm.recommend.ranking import recommend, user_histories

__all__ = ["TrainedRun", "export_run", "load_run", "recommend", "user_histories"]
