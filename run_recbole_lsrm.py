"""Train and test a sequential recommender (LSRM by default) on a RecBole dataset.

    python run_recbole_lsrm.py                                  # LSRM on ml-100k
    python run_recbole_lsrm.py --model=LSRM --dataset=ml-20m --scale=l24
    python run_recbole_lsrm.py --model=SASRec --dataset=ml-1m   # a RecBole baseline
"""

import sys

from recbole_lsrm.cli import main

if __name__ == "__main__":
    sys.exit(main())
