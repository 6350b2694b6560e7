"""Text and Image sources: a local copy of the Hub repository when present, else the Hub itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from lra.data.cache import file_signature
from lra.data.layout import (
    HUB_CONFIG,
    HUB_LOCAL_FOLDERS,
    HUB_REPOSITORIES,
    DataError,
    how_to_prepare,
    hub_parquet_files,
)


def hub_source_signature(data_dir: Path, task: str, split: str) -> list[Any]:
    """What the cache key records about the source: the local files, or the Hub repository."""
    local = hub_parquet_files(data_dir, task)
    if local is None:
        return ["hub", HUB_REPOSITORIES[task]]
    return [file_signature(path) for path in local[split]]


def load_hub_split(data_dir: Path, task: str, split: str, cache_dir: Path) -> datasets.Dataset:
    """One split (`train` or `test`) of the task's Hub dataset, read without network when local."""
    local = hub_parquet_files(data_dir, task)
    source = HUB_REPOSITORIES[task] if local is None else str(data_dir / HUB_LOCAL_FOLDERS[task])
    try:
        if local is not None:
            return datasets.load_dataset(
                "parquet",
                data_files={split: [str(path) for path in local[split]]},
                split=split,
                cache_dir=str(cache_dir),
            )
        return datasets.load_dataset(HUB_REPOSITORIES[task], split=split, cache_dir=str(cache_dir))
    except Exception as error:  # the Hub client raises many kinds; each one means "not available"
        expected = data_dir / HUB_LOCAL_FOLDERS[task] / HUB_CONFIG
        raise DataError(
            f"{task}: could not load the {split} split from {source} ({type(error).__name__}: {error}). "
            f"A local copy is expected at {expected}/{split}-*.parquet. {how_to_prepare(task, data_dir)}"
        ) from error


def row_location(data_dir: Path, task: str, split: str, row: int) -> str:
    """Names a row of a Hub split in error messages."""
    local = hub_parquet_files(data_dir, task)
    source = HUB_REPOSITORIES[task] if local is None else ", ".join(str(path) for path in local[split])
    return f"{source} ({split} split), row {row}"
