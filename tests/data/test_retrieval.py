"""Retrieval data module: paired byte documents, shared padding, malformed rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lra.data.layout import RETRIEVAL_FILES, DataError
from lra.data.retrieval import RetrievalDataModule
from tests.data.fixtures import write_retrieval_release, write_retrieval_tsv


def make_module(data_dir: Path, max_length: int = 64) -> RetrievalDataModule:
    return RetrievalDataModule(data_dir=data_dir, batch_size=3, max_length=max_length)


def test_attributes(retrieval_dir: Path) -> None:
    module = make_module(retrieval_dir)
    assert (module.vocab_size, module.num_classes, module.pad_id, module.paired) == (257, 2, 0, True)


def test_pairs_share_one_padding_length(retrieval_dir: Path) -> None:
    module = make_module(retrieval_dir)
    module.setup("fit")
    batch = next(iter(module.val_dataloader()))
    # Rows 0-2: "abstract " * (i + 1) is 9, 18, 27 bytes; "é" * (3i + 1) is 2, 8, 14 bytes.
    assert batch["inputs"].shape == (3, 2, 27) and batch["mask"].shape == (3, 2, 27)
    assert batch["inputs"].dtype == torch.long and batch["mask"].dtype == torch.bool
    assert batch["mask"].sum(dim=2).tolist() == [[9, 2], [18, 8], [27, 14]]
    assert batch["label"].tolist() == [0, 1, 0]
    assert batch["inputs"][0, 0, :9].tolist() == [byte + 1 for byte in b"abstract "]
    assert batch["inputs"][0, 1, :2].tolist() == [byte + 1 for byte in "é".encode()]
    assert (batch["inputs"][~batch["mask"]] == 0).all()


def test_each_document_is_truncated_and_counted(retrieval_dir: Path, data_warnings) -> None:
    module = make_module(retrieval_dir, max_length=10)
    module.setup("test")
    batch = next(iter(module.test_dataloader()))
    assert batch["inputs"].shape[-1] == 10
    # First documents are 9, 18, ..., 54 bytes (5 over 10); second ones 2, 8, ..., 32 (4 over 10).
    expected = "retrieval/test: 9 of 12 sequences longer than max_length=10 were truncated"
    assert expected in data_warnings.text


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        (b"1.0\ta\tb\tonly four", "expected 5 tab-separated columns, found 4"),
        (b"yes\ta\tb\tx\ty", "label 'yes' is not a number"),
        (b"2.0\ta\tb\tx\ty", "label '2.0' is out of range"),
        (b"0.5\ta\tb\tx\ty", "label '0.5' is out of range"),
        (b"1.0\ta\tb\t\xc3\x28\ty", "is not valid UTF-8"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, line: bytes, complaint: str) -> None:
    write_retrieval_release(tmp_path, rows_per_split=2)
    path = tmp_path / RETRIEVAL_FILES["val"]
    path.write_bytes(path.read_bytes() + line + b"\n")
    with pytest.raises(DataError) as error:
        make_module(tmp_path).setup("validate")
    assert complaint in str(error.value)
    assert f"{path}:3" in str(error.value)


def test_missing_data_names_command(tmp_path: Path) -> None:
    write_retrieval_tsv(tmp_path / RETRIEVAL_FILES["train"], [("1.0", "a", "b")])
    with pytest.raises(DataError) as error:
        make_module(tmp_path).setup("fit")
    assert str(tmp_path / RETRIEVAL_FILES["train"]) in str(error.value)
    assert f"python -m lra.prepare retrieval --data-dir {tmp_path}" in str(error.value)
    assert "--generate" not in str(error.value)
