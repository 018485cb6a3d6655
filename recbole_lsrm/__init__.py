"""recbole_lsrm: large sequential recommendation models (LSRM) as a RecBole plugin.

Importing the package registers the plugin's metrics (CELoss, Coverage) with RecBole.
"""

from recbole_lsrm import compat

compat.numpy_aliases()
compat.quiet_recbole_warnings()

from recbole_lsrm.evaluation import register_metrics  # noqa: E402
from recbole_lsrm.model import LSRM  # noqa: E402
from recbole_lsrm.trainer import LSRMTrainer  # noqa: E402

register_metrics()

__version__ = "0.1.0"
__all__ = ["LSRM", "LSRMTrainer", "register_metrics"]
