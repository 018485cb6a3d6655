"""Datasets and dataloaders: RecBole's interfaces, the plugin's loading and windowing."""

from __future__ import annotations

from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import ModelType

from recbole_lsrm.config import PROPERTIES_DIR, uses_windows
from recbole_lsrm.data.atomic_file import check_atomic_files
from recbole_lsrm.data.fields import target_list_field
from recbole_lsrm.data.labelled_loader import LabelledTrainDataLoader
from recbole_lsrm.data.window_loader import WindowBatches
from recbole_lsrm.data.windowed_dataset import ValidatedSequentialDataset, WindowedSequentialDataset
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.options import setting

__all__ = [
    "WindowBatches",
    "WindowedSequentialDataset",
    "ValidatedSequentialDataset",
    "check_distributed",
    "create_dataset",
    "prepare_dataloaders",
    "target_list_field",
    "uses_windows",
]


def known_datasets() -> list[str]:
    return sorted({p.stem for p in (PROPERTIES_DIR / "dataset").glob("*.yaml")} | {"ml-100k"})


def create_dataset(config, model_class: type):
    """Check the atomic files, then load them into the dataset class the model needs."""
    if config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        raise ConfigError(f"{config['model']} is not a sequential recommender; this plugin runs sequential models")
    # Labels come from a threshold on a column (threshold: {rating: 4}) or from a label column.
    threshold = config["threshold"] if isinstance(config["threshold"], dict) else {}
    labels = list(threshold) or ([config["LABEL_FIELD"]] if config["objective"] == "ranking" else [])
    check_atomic_files(
        config["data_path"],
        config["dataset"],
        required=[config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["TIME_FIELD"], *labels],
        separator=config["field_separator"],
        known=known_datasets(),
        reasons={field: (f"threshold: {threshold} makes the labels from {field!r}." if threshold else
                         f"objective: ranking reads each interaction's label from {field!r} (or set threshold: "
                         "{rating: 4} to make labels from a rating).") for field in labels},
    )
    inter_columns = (config["load_col"] or {}).get("inter")
    if inter_columns is not None and config["TIME_FIELD"] not in inter_columns:
        raise ConfigError(
            f"load_col inter {inter_columns} leaves out {config['TIME_FIELD']!r}: sequential models order "
            "each user's items by it (add it to load_col)"
        )
    if (config["time_order"] or "recbole") != "recbole" and not uses_windows(model_class):
        raise ConfigError(
            f"time_order: {config['time_order']} orders the all-position models' data (LSRM, HSTU); "
            f"{config['model']} reads RecBole's dataset, which orders by its float32 time"
        )
    dataset_class = WindowedSequentialDataset if uses_windows(model_class) else ValidatedSequentialDataset
    return dataset_class(config)


def check_labels(config, data) -> None:
    """A ranker learns to score label-1 interactions above its negatives: refuse data where no
    label is 1 before training (there would be no best model to test)."""
    if config["objective"] != "ranking":
        return
    label = config["LABEL_FIELD"]
    if label not in data.inter_feat:
        return
    positives = int((data.inter_feat[label] > 0).sum())
    made = (f"threshold: {config['threshold']} makes no label 1" if config["threshold"]
            else f"no '{label}' is 1")
    if positives == 0:
        raise ConfigError(f"objective: ranking, but {made} in {config['dataset']} ({len(data.inter_feat):,} "
                          "interactions): there is nothing to rank above the negatives; lower the threshold")


def check_distributed(config, model_class: type) -> None:
    """Several processes (torchrun) train the all-position models only."""
    group = config["process_group"]
    if group is not None and group.enabled and not uses_windows(model_class):
        raise ConfigError(
            f"torchrun trains the plugin's all-position models (LSRM, HSTU); "
            f"{config['model']} runs in one process"
        )


def prepare_dataloaders(config, dataset, model_class: type):
    """Split and wrap in dataloaders (never loads pickled dataloaders from disk).

    All-position models train from :class:`WindowBatches` (on the GPU when the windows fit,
    split between torchrun's processes); RecBole's models from RecBole's loaders, in one process
    (its rankers under ``objective: ranking`` keep the real labels beside their sampled negatives:
    :class:`~recbole_lsrm.data.labelled_loader.LabelledTrainDataLoader`).
    """
    group = config["process_group"]
    if uses_windows(model_class) and set(config["eval_args"]["mode"].values()) != {"full"}:
        raise ConfigError("all-position training evaluates with full ranking: set eval_args mode: full")
    built = dataset.build()
    if uses_windows(model_class):
        train = WindowBatches(config, built[0], config["device"], group)
        # split {LS: test_only} holds out no validation item: training keeps its last weights.
        valid = FullSortEvalDataLoader(config, built[1], None, shuffle=False) if len(built[1]) else None
        test = FullSortEvalDataLoader(config, built[2], None, shuffle=False)
        return train, valid, test
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    train_loader = (LabelledTrainDataLoader if setting(config, "objective") == "ranking"
                    else get_dataloader(config, "train"))
    train = train_loader(config, built[0], train_sampler, shuffle=config["shuffle"])
    valid = get_dataloader(config, "valid")(config, built[1], valid_sampler, shuffle=False)
    test = get_dataloader(config, "test")(config, built[2], test_sampler, shuffle=False)
    return train, valid, test
