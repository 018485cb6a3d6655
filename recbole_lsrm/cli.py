"""Command line: RecBole's ``--key=value`` conventions, parsed safely (YAML literals, no eval)."""

from __future__ import annotations

import sys
from typing import Any

from recbole_lsrm.commands import DONE, run_command
from recbole_lsrm.config import parse_value
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.pipeline import run

USAGE = """\
usage: python run_recbole_lsrm.py [--model=LSRM] [--dataset=ml-100k] [--scale=l2|l4|l8|l12|l24|l48]
                                  [--recipe=plugin|reference] [--config_files="a.yaml b.yaml"]
                                  [--checkpoint=PATH] [--tasks=all] [--KEY=VALUE ...]

Trains and tests a sequential recommender with RecBole's pipeline. --model is one of the
plugin's models (LSRM, HSTU, Llama, FMLPRec, RecentItems) or a RecBole sequential model (SASRec,
GRU4Rec, Caser, BERT4Rec, ...), or RecBole's rankers DIN and DIEN with --objective=ranking.
Any RecBole or plugin config key can be set as --KEY=VALUE (VALUE is read as YAML:
--epochs=5, --layer_dropout=[0.3,0.1], --eval_args="{split: {LS: valid_and_test}, ...}").
--recipe=reference trains HSTU the way its reference code does (properties/recipe/HSTU/
reference.yaml; each of its keys can still be given); plugin (the default) is LSRM's recipe.
--checkpoint=PATH continues a run from its checkpoint.pth (or only tests it if it finished).
--tasks=longtail,coldstart,crossdomain,robustness,trajectory (or all) runs the challenge
tasks after the test and writes tasks.json and a PNG per task into the run folder.
Several GPUs (LSRM, HSTU): torchrun --nproc_per_node=K run_recbole_lsrm.py ... (train_batch_size
is the global batch). Large catalogues and speed: --ce_chunk_size, --sampled_softmax=N,
--eval_item_chunk, --compile=true, --windows_on_device (see properties/overall.yaml).
"""

# Options whose value is kept as the raw string.
_STRING_OPTIONS = ("model", "dataset", "config_files", "checkpoint", "scale", "recipe")


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``["--epochs=3", "--model=LSRM"]`` -> ``{"epochs": 3, "model": "LSRM"}``."""
    parsed: dict[str, Any] = {}
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg or arg.startswith("--="):
            raise ConfigError(f"cannot read argument {arg!r}: options are written --key=value (see --help)")
        key, value = arg[2:].split("=", 1)
        typed = value if key in _STRING_OPTIONS else parse_value(value)
        if key in parsed and parsed[key] != typed:
            raise ConfigError(f"--{key} is given twice with different values")
        parsed[key] = typed
    return parsed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        return 0

    def train_and_test() -> int:
        options = parse_args(argv)
        config_files = options.pop("config_files", None)
        run(
            model=options.pop("model", None),
            dataset=options.pop("dataset", None),
            config_files=config_files.split() if config_files else None,
            checkpoint_path=options.pop("checkpoint", None),
            options=options,
        )
        return DONE

    return run_command(train_and_test)
