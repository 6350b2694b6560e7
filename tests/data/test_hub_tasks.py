"""Text (IMDB) and Image (CIFAR-10) data modules read from local copies of the Hub parquet files."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from lra.data.image import ImageDataModule
from lra.data.layout import DataError
from lra.data.text import TextDataModule
from tests.data.fixtures import (
    cifar_image,
    cifar_rows,
    png_bytes,
    write_cifar_parquet,
    write_imdb_parquet,
)

IMDB_SPLITS = {
    "train": [("a fine film", 1), ("dull", 0), ("naïve but fun", 1)],
    "test": [("great", 1), ("awful acting", 0)],
    "unsupervised": [("no label", -1)],  # present in the Hub repository, never read
}


def test_text_batches_and_val_is_test(tmp_path: Path, data_warnings) -> None:
    write_imdb_parquet(tmp_path / "imdb", IMDB_SPLITS)
    module = TextDataModule(data_dir=tmp_path, batch_size=3, max_length=12)
    assert (module.vocab_size, module.num_classes, module.pad_id, module.paired) == (257, 2, 0, False)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["inputs"].dtype == torch.long and batch["mask"].dtype == torch.bool
    assert batch["inputs"].shape == (3, 12)
    lengths = batch["mask"].sum(dim=1)
    assert sorted(lengths.tolist()) == [4, 11, 12]  # "naïve but fun" is 14 bytes, cut to 12
    assert lengths[batch["label"] == 0].tolist() == [4]
    assert "text/train: 1 of 3 sequences longer than max_length=12 were truncated" in data_warnings.text
    val = next(iter(module.val_dataloader()))
    assert val["label"].tolist() == [1, 0]
    assert val["inputs"][0, :5].tolist() == [byte + 1 for byte in b"great"]
    assert not val["mask"][0, 5:].any()


def test_text_label_out_of_range(tmp_path: Path) -> None:
    write_imdb_parquet(tmp_path / "imdb", {"train": [("ok", 1), ("odd", 7)], "test": [("x", 0)]})
    with pytest.raises(DataError, match="label 7 is out of range") as error:
        TextDataModule(data_dir=tmp_path, batch_size=2, max_length=8).setup("fit")
    assert "train-00000-of-00001.parquet" in str(error.value) and "row 1" in str(error.value)


def test_text_without_local_copy_or_hub_names_command(tmp_path: Path, monkeypatch) -> None:
    def unreachable_hub(*args: object, **options: object) -> None:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", unreachable_hub)
    with pytest.raises(DataError) as error:
        TextDataModule(data_dir=tmp_path, batch_size=2, max_length=8).prepare_data()
    message = str(error.value)
    assert str(tmp_path / "imdb" / "plain_text") in message and "stanfordnlp/imdb" in message
    assert f"python -m lra.prepare text --data-dir {tmp_path}" in message


def test_incomplete_local_copy_is_an_error(tmp_path: Path) -> None:
    write_imdb_parquet(tmp_path / "imdb", {"train": IMDB_SPLITS["train"]})
    with pytest.raises(DataError, match="incomplete copy of stanfordnlp/imdb"):
        TextDataModule(data_dir=tmp_path, batch_size=2, max_length=8).setup("fit")


@pytest.mark.parametrize("hub_metadata", [False, True], ids=["plain-struct", "hub-image-feature"])
def test_image_split_pixels_and_black_pixels(tmp_path: Path, hub_metadata: bool) -> None:
    splits = {"train": cifar_rows(20), "test": cifar_rows(4, first_index=100)}
    write_cifar_parquet(tmp_path / "cifar10", splits, hub_metadata=hub_metadata)
    module = ImageDataModule(data_dir=tmp_path, batch_size=4)
    attributes = (module.vocab_size, module.num_classes, module.pad_id, module.max_length)
    assert attributes == (256, 10, None, 1024)
    module.setup(None)
    assert [len(module.datasets[split]) for split in ("train", "val", "test")] == [18, 2, 4]
    val = next(iter(module.val_dataloader()))
    assert val["label"].tolist() == [8, 9]  # the last 10% of the training rows
    assert val["inputs"].shape == (2, 1024)
    gray = np.asarray(Image.fromarray(cifar_image(18)).convert("L")).reshape(-1)
    assert val["inputs"][0].tolist() == gray.tolist()
    assert val["inputs"][0, 0].item() == 0 and val["mask"].all()


def test_image_corrupt_png_is_skipped_and_counted(tmp_path: Path, data_warnings) -> None:
    rows = cifar_rows(10)
    rows[2] = (b"", 2)
    rows[4] = (rows[4][0][:30], 4)
    write_cifar_parquet(tmp_path / "cifar10", {"train": rows, "test": cifar_rows(2)})
    module = ImageDataModule(data_dir=tmp_path, batch_size=4)
    module.setup("fit")
    assert len(module.datasets["train"]) == 7
    assert "image/train: skipped 2 empty or unreadable images" in data_warnings.text


def test_image_rejects_other_lengths_and_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="set max_length to 1024"):
        ImageDataModule(data_dir=tmp_path, batch_size=4, max_length=4096)
    rows = cifar_rows(10)
    rows[1] = (png_bytes(cifar_image(1)), 10)
    write_cifar_parquet(tmp_path / "cifar10", {"train": rows, "test": cifar_rows(2)})
    with pytest.raises(DataError, match="label 10 is out of range"):
        ImageDataModule(data_dir=tmp_path, batch_size=4).setup("fit")
