"""Text and Image sources: a local copy of the Hub repository when present, else the Hub itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

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


# The columns each task reads.
HUB_COLUMNS = {"text": ("text", "label"), "image": ("img", "label")}


def _column_complaint(dataset: datasets.Dataset, task: str) -> str | None:
    """What is wrong with the columns of a loaded split, or None."""
    expected = HUB_COLUMNS[task]
    missing = [name for name in expected if name not in dataset.features]
    if missing:
        return (
            f"has columns {sorted(dataset.features)}; expected {sorted(expected)} "
            f"({', '.join(missing)} missing)"
        )
    text = dataset.features.get("text")
    if task == "text" and not (isinstance(text, datasets.Value) and text.dtype in ("string", "large_string")):
        return f"column 'text' holds {text}, expected UTF-8 strings"
    try:
        # Arrow does not check that strings are valid UTF-8 until asked; iterating would fail later
        # with a bare UnicodeDecodeError that names neither file nor row.
        dataset.data.table.validate(full=True)
    except pa.ArrowInvalid as error:
        return f"is malformed: {error}"
    return None


def load_hub_split(data_dir: Path, task: str, split: str, cache_dir: Path) -> datasets.Dataset:
    """One split (`train` or `test`) of the task's Hub dataset, read without network when local."""
    local = hub_parquet_files(data_dir, task)
    source = HUB_REPOSITORIES[task] if local is None else str(data_dir / HUB_LOCAL_FOLDERS[task])
    try:
        if local is not None:
            dataset = datasets.load_dataset(
                "parquet",
                data_files={split: [str(path) for path in local[split]]},
                split=split,
                cache_dir=str(cache_dir),
            )
        else:
            dataset = datasets.load_dataset(HUB_REPOSITORIES[task], split=split, cache_dir=str(cache_dir))
    except Exception as error:  # the Hub client raises many kinds; each one means "not available"
        expected = data_dir / HUB_LOCAL_FOLDERS[task] / HUB_CONFIG
        raise DataError(
            f"{task}: could not load the {split} split from {source} ({type(error).__name__}: {error}). "
            f"A local copy is expected at {expected}/{split}-*.parquet. {how_to_prepare(task, data_dir)}"
        ) from error
    complaint = _column_complaint(dataset, task)
    if complaint is not None:
        files = source if local is None else ", ".join(str(path) for path in local[split])
        raise DataError(f"{task}: the {split} split in {files} {complaint}. {how_to_prepare(task, data_dir)}")
    return dataset


def row_location(data_dir: Path, task: str, split: str, row: int) -> str:
    """Names a row of a Hub split in error messages."""
    local = hub_parquet_files(data_dir, task)
    source = HUB_REPOSITORIES[task] if local is None else ", ".join(str(path) for path in local[split])
    return f"{source} ({split} split), row {row}"
