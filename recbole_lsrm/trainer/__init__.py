"""Training: the plugin's Trainer subclass, its optimizers and checkpoints."""

from recbole_lsrm.trainer.lsrm_trainer import LSRMTrainer

__all__ = ["LSRMTrainer"]
