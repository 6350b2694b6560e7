"""Bad input of every kind ends in a message naming the file, line or key, or in a counted skip.

Covered elsewhere: malformed ListOps/Retrieval rows, out-of-range labels and invalid UTF-8 in TSV
files (test_listops.py, test_retrieval.py), bad Pathfinder metadata rows and empty or corrupt
images (test_pathfinder.py), CIFAR-10 labels and PNGs (test_hub_tasks.py), corrupt cache entries
(test_cache.py), truncated downloads and archives (test_download.py).
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from lra.config import ConfigError, validate
from lra.data.layout import LISTOPS_FILES, RETRIEVAL_FILES, DataError
from lra.data.listops import ListOpsDataModule
from lra.data.pathfinder import PathfinderDataModule
from lra.data.retrieval import RetrievalDataModule
from lra.data.text import TextDataModule
from tests.data.fixtures import (
    write_imdb_parquet,
    write_listops_release,
    write_parquet,
    write_pathfinder_release,
    write_retrieval_release,
)
from tests.lra.conftest import compose_train

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("task", ["listops", "retrieval"])
def test_random_bytes_in_a_tsv_name_the_file_and_line(tmp_path: Path, task: str, seed: int) -> None:
    if task == "listops":
        write_listops_release(tmp_path)
        path, module = tmp_path / LISTOPS_FILES["train"], ListOpsDataModule
    else:
        write_retrieval_release(tmp_path)
        path, module = tmp_path / RETRIEVAL_FILES["train"], RetrievalDataModule
    path.write_bytes(random.Random(seed).randbytes(4096))
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:\d+: "):
        module(data_dir=tmp_path, batch_size=2, max_length=64).setup("fit")


def test_listops_row_with_a_missing_column(tmp_path: Path) -> None:
    write_listops_release(tmp_path)
    path = tmp_path / LISTOPS_FILES["val"]
    path.write_text(path.read_text() + "( [MAX 2 3 ) ]\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:8: expected 2 tab-separated columns, found 1")):
        ListOpsDataModule(data_dir=tmp_path, batch_size=2, max_length=64).setup("fit")


def test_truncated_and_empty_pngs_are_skipped_and_counted(tmp_path: Path, data_warnings) -> None:
    # The release itself holds an empty PNG (curv_baseline/imgs/0/sample_172.png).
    write_pathfinder_release(tmp_path, num_images=20, empty=(0, 5), corrupt=(11,))
    module = PathfinderDataModule(data_dir=tmp_path, batch_size=4)
    module.setup(None)
    assert sum(len(module.datasets[split]) for split in ("train", "val", "test")) == 17
    assert "pathfinder/all: skipped 3 empty or unreadable images" in data_warnings.text


@pytest.mark.parametrize(
    "columns",
    [
        {"review": pa.array(["good"]), "label": pa.array([1])},
        {"text": pa.array(["good"]), "sentiment": pa.array([1])},
    ],
    ids=["no-text", "no-label"],
)
def test_parquet_with_the_wrong_columns_names_the_file_and_columns(tmp_path: Path, columns) -> None:
    write_imdb_parquet(tmp_path / "imdb", {"test": [("fine", 1)]})
    path = write_parquet(tmp_path / "imdb" / "plain_text" / "train-00000-of-00001.parquet", columns)
    with pytest.raises(DataError) as error:
        TextDataModule(data_dir=tmp_path, batch_size=2, max_length=64).setup("fit")
    message = str(error.value)
    assert str(path) in message and "text" in message and "label" in message


def invalid_utf8_strings(data: bytes, ends: list[int]) -> pa.Array:
    """A string column holding bytes that are not UTF-8 (pyarrow only checks when asked to)."""
    offsets = pa.array([0, *ends], pa.int32())
    return pa.Array.from_buffers(pa.string(), len(ends), [None, offsets.buffers()[1], pa.py_buffer(data)])


@pytest.mark.parametrize(
    ("texts", "complaint"),
    [
        (invalid_utf8_strings(b"goodcaf\xe9 \xff", [4, 10]), "Invalid UTF8 sequence at string index 1"),
        (pa.array([b"good", b"caf\xe9 \xff"], pa.binary()), "column 'text' holds Value('binary')"),
    ],
    ids=["string-column", "binary-column"],
)
def test_invalid_utf8_in_the_text_column_names_the_file_and_row(tmp_path: Path, texts, complaint) -> None:
    write_imdb_parquet(tmp_path / "imdb", {"test": [("fine", 1)]})
    path = write_parquet(
        tmp_path / "imdb" / "plain_text" / "train-00000-of-00001.parquet",
        {"text": texts, "label": pa.array([1, 0])},
    )
    with pytest.raises(DataError) as error:
        TextDataModule(data_dir=tmp_path, batch_size=2, max_length=64).setup("fit")
    assert str(path) in str(error.value) and complaint in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_steps=abc"], "trainer.max_steps must be an integer >= 1, got 'abc'"),
        (["model.dropout=high"], "model.dropout must be in [0, 1), got 'high'"),
        (
            ["attention=luna", "attention.num_projections=1.5"],
            "attention.num_projections must be of type int",
        ),
        (
            ["attention=performer", "attention.num_features=many"],
            "attention.num_features must be of type int",
        ),
        (["attention=luna", "attention.per_head=3"], "attention.per_head must be of type bool"),
        (["resume=sometimes"], "resume must be one of"),
        (["nonfinite_loss=ignore"], "nonfinite_loss must be one of"),
        (["checkpoint_every_steps=0.5"], "checkpoint_every_steps must be an integer"),
    ],
)
def test_config_values_of_the_wrong_type_name_the_key(tmp_path: Path, overrides, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_train([*overrides, f"data_dir={tmp_path}"]))


def test_a_wrong_type_on_the_command_line_exits_2_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lra.train",
            "attention=luna",
            "attention.num_projections=1.5",
            f"data_dir={tmp_path}",
            f"run_dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "attention.num_projections must be of type int, got 1.5" in result.stderr
    assert "Traceback" not in result.stderr
