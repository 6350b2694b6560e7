"""ListOps data module: tokens, batches, truncation and malformed TSV rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lra.data.layout import LISTOPS_FILES, DataError
from lra.data.listops import ListOpsDataModule
from lra.data.tokenizers import LISTOPS_VOCAB, LISTOPS_VOCAB_SIZE
from tests.data.fixtures import write_listops_release, write_listops_tsv


def make_module(data_dir: Path, **overrides) -> ListOpsDataModule:
    options = {"data_dir": data_dir, "batch_size": 4, "max_length": 50} | overrides
    return ListOpsDataModule(**options)


def test_attributes_are_known_before_setup(listops_dir: Path) -> None:
    module = make_module(listops_dir)
    assert (module.vocab_size, module.num_classes, module.pad_id) == (LISTOPS_VOCAB_SIZE, 10, 0)
    assert module.max_length == 50 and module.paired is False
    assert LISTOPS_VOCAB_SIZE == 16  # pad + 10 digits + [MIN [MAX [MED [SM ]


def test_batch_contract_and_tokens(listops_dir: Path) -> None:
    module = make_module(listops_dir)
    module.setup("fit")
    batch = next(iter(module.val_dataloader()))
    assert set(batch) == {"inputs", "mask", "label"}
    assert batch["inputs"].dtype == torch.long and batch["mask"].dtype == torch.bool
    assert batch["label"].tolist() == [9, 4, 4, 2]
    # `( ( ( [MAX 2 ) 9 ) ] )` without parentheses is `[MAX 2 9 ]`, padded to the longest (5).
    expected = [LISTOPS_VOCAB[token] for token in ("[MAX", "2", "9", "]")]
    assert batch["inputs"].shape == (4, 5)
    assert batch["inputs"][0, :4].tolist() == expected
    assert batch["mask"][0].tolist() == [True, True, True, True, False]
    assert batch["inputs"][0, 4].item() == module.pad_id
    assert batch["mask"].sum(dim=1).tolist() == [4, 4, 5, 5]


def test_truncation_is_reported_once_per_split(listops_dir: Path, data_warnings) -> None:
    module = make_module(listops_dir, max_length=5)
    module.setup("fit")
    messages = [record.getMessage() for record in data_warnings.records]
    assert messages.count("listops/train: 1 of 6 sequences longer than max_length=5 were truncated") == 1
    assert any(message.startswith("listops/val: 1 of 6") for message in messages)
    batch = next(iter(module.train_dataloader()))
    assert batch["inputs"].shape[1] <= 5


def test_same_seed_gives_same_batches(listops_dir: Path) -> None:
    def first_labels(seed: int) -> list[list[int]]:
        module = make_module(listops_dir, batch_size=2, seed=seed)
        module.setup("fit")
        return [batch["label"].tolist() for batch in module.train_dataloader()]

    assert first_labels(3) == first_labels(3)
    assert sorted(sum(first_labels(3), [])) == sorted(sum(first_labels(4), []))


def test_finds_nested_release_root(tmp_path: Path) -> None:
    write_listops_release(tmp_path / "lra_release" / "lra_release")
    module = make_module(tmp_path)
    module.setup("test")
    assert len(module.datasets["test"]) == 6


def test_missing_data_names_path_and_command(tmp_path: Path) -> None:
    module = make_module(tmp_path)
    with pytest.raises(DataError) as error:
        module.prepare_data()
    message = str(error.value)
    assert str(tmp_path / LISTOPS_FILES["train"]) in message
    assert f"python -m lra.prepare listops --data-dir {tmp_path}" in message
    assert "--generate" in message


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        ("( [MAX 2 ) ]\t3\textra", "expected 2 tab-separated columns, found 3"),
        ("( [MAX 2 ) ]\tseven", "label 'seven' is not a number"),
        ("( [MAX 2 ) ]\t12", "label '12' is out of range"),
        ("( [MAX 2 ) [FOO ]\t2", "unknown ListOps token '[FOO'"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, row: str, complaint: str) -> None:
    path = write_listops_tsv(tmp_path / LISTOPS_FILES["train"], [("( [MAX 2 ) ]", 2)])
    path.write_text(path.read_text() + row + "\n")
    for split in ("val", "test"):
        write_listops_tsv(tmp_path / LISTOPS_FILES[split], [("( [MAX 2 ) ]", 2)])
    with pytest.raises(DataError, match=re.escape(complaint)) as error:
        make_module(tmp_path).setup("fit")
    assert f"{path}:3" in str(error.value)


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    for split, relative in LISTOPS_FILES.items():
        write_listops_tsv(tmp_path / relative, [("( [MAX 2 ) ]", 2)])
    path = tmp_path / LISTOPS_FILES["train"]
    path.write_bytes(path.read_bytes() + b"( [MAX \xff ) ]\t2\n")
    with pytest.raises(DataError, match="not valid UTF-8") as error:
        make_module(tmp_path).setup("fit")
    assert f"{path}:3" in str(error.value)


@pytest.mark.parametrize("name", ["batch_size", "max_length"])
def test_bad_sizes_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make_module(tmp_path, **{name: 0})


def test_worker_processes_give_the_same_batches(listops_dir: Path) -> None:
    def all_batches(num_workers: int) -> list[list[int]]:
        module = make_module(listops_dir, batch_size=2, num_workers=num_workers, seed=7)
        module.setup("fit")
        loader = module.train_dataloader()
        assert loader.persistent_workers == (num_workers > 0)
        return [batch["inputs"][:, 0].tolist() + batch["label"].tolist() for batch in loader]

    assert all_batches(1) == all_batches(0)
