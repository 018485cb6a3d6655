"""``python -m recbole_lsrm --model=LSRM --dataset=ml-100k``: the same as run_recbole_lsrm.py,
for installs without the source tree."""

import sys

from recbole_lsrm.cli import main

sys.exit(main())
