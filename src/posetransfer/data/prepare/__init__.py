"""Turn the user's Market-1501 / DeepFashion downloads into the public layout, and check it.

The layout every other part of posetransfer reads (see docs/datasets.md)::

    ROOT/train/*.jpg   ROOT/test/*.jpg
    ROOT/<annotation train/test CSV>   ROOT/<pairs train/test CSV>   (names in `DATASET_FILES`)

Market-1501 (`prepare_market`): the official archive's ``bounding_box_train``/
``bounding_box_test`` folders, copied byte for byte (128x64 images). DeepFashion In-shop
(`prepare_fashion`): the 256x256 ``img/`` tree, each image of the authors' train/test lists
cropped to 256x176 and saved under its flattened name. The annotation and pairs CSVs are
separate downloads: they are copied into ROOT when found, and the images are checked against
them (`check_layout`).

Work runs on a thread pool, every output is written under a temporary name and renamed, and a
re-run skips outputs already complete and removes the temporary files an interrupted run left.

Modules: `layout` (dataset names, files, sizes), `sources` (a folder or zip read by many
threads), `market`, `fashion`, `check` (checking a root, copying the CSVs), `report`.
"""

from posetransfer.data.pairs import PairsSummary, make_pairs_file
from posetransfer.data.prepare.check import check_layout, copy_dataset_files
from posetransfer.data.prepare.fashion import (
    FASHION_CROP_BOX,
    FASHION_LISTS,
    FASHION_SOURCE_SIZE,
    crop_fashion,
    flatten_fashion_name,
    prepare_fashion,
    read_name_list,
)
from posetransfer.data.prepare.layout import (
    DATASET_FILES,
    DATASETS,
    IMAGE_SIZE,
    REPORT_NAME,
    SPLITS,
    dataset_file_names,
)
from posetransfer.data.prepare.market import MARKET_FOLDERS, prepare_market
from posetransfer.data.prepare.report import PrepareReport, SplitReport

__all__ = [
    "DATASETS",
    "DATASET_FILES",
    "FASHION_CROP_BOX",
    "FASHION_LISTS",
    "FASHION_SOURCE_SIZE",
    "IMAGE_SIZE",
    "MARKET_FOLDERS",
    "REPORT_NAME",
    "SPLITS",
    "PairsSummary",
    "PrepareReport",
    "SplitReport",
    "check_layout",
    "copy_dataset_files",
    "crop_fashion",
    "dataset_file_names",
    "flatten_fashion_name",
    "make_pairs_file",
    "prepare_fashion",
    "prepare_market",
    "read_name_list",
]
