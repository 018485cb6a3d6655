"""Errors the plugin raises for bad input: each names the problem and how to fix it."""


class LSRMError(Exception):
    """Base class: the command line prints these as one clear message and exits non-zero."""


class ConfigError(LSRMError, ValueError):
    """An unknown option, an impossible setting, or a malformed config file."""


class DatasetError(LSRMError, ValueError):
    """Missing or malformed dataset files."""


class CheckpointError(LSRMError, ValueError):
    """A checkpoint that cannot be read or does not belong to this run."""


class OutputError(LSRMError, OSError):
    """An output that cannot be written: a missing or read-only folder, a full disk."""


class TrainingDiverged(LSRMError, ArithmeticError):
    """The training loss became NaN or infinite."""
