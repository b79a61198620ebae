"""The public layout of each dataset: its splits, file names and image size."""

from __future__ import annotations

from posetransfer.errors import InputError

DATASETS: tuple[str, ...] = ("market", "fashion")
SPLITS: tuple[str, ...] = ("train", "test")

# File names of the public annotation and pairs files (sic "fasion"), by dataset and split.
DATASET_FILES: dict[str, dict[str, dict[str, str]]] = {
    "market": {
        "annotations": {
            "train": "market-annotation-train.csv",
            "test": "market-annotation-test.csv",
        },
        "pairs": {"train": "market-pairs-train.csv", "test": "market-pairs-test.csv"},
    },
    "fashion": {
        "annotations": {
            "train": "fasion-resize-annotation-train.csv",
            "test": "fasion-resize-annotation-test.csv",
        },
        "pairs": {
            "train": "fasion-resize-pairs-train.csv",
            "test": "fasion-resize-pairs-test.csv",
        },
    },
}

# Image size (height, width) in the prepared layout.
IMAGE_SIZE: dict[str, tuple[int, int]] = {"market": (128, 64), "fashion": (256, 176)}

REPORT_NAME = "prepare-report.json"


def check_dataset(dataset: str) -> str:
    """``dataset`` if it is one of `DATASETS`; else InputError listing them."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return dataset


def dataset_file_names(dataset: str) -> list[str]:
    """The four annotation and pairs file names of ``dataset``."""
    files = DATASET_FILES[check_dataset(dataset)]
    return [files[kind][split] for kind in ("annotations", "pairs") for split in SPLITS]
