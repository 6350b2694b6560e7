"""Pathfinder and Path-X data modules: pixels as tokens, the 80/10/10 split, broken images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lra.data.layout import DataError
from lra.data.pathfinder import PathfinderDataModule, PathXDataModule, split_rows
from tests.data.fixtures import pathfinder_image, png_bytes, write_pathfinder_release


def make_module(data_dir: Path, seed: int = 0) -> PathfinderDataModule:
    return PathfinderDataModule(data_dir=data_dir, batch_size=4, seed=seed)


def test_attributes_and_pixel_length_check(tmp_path: Path) -> None:
    module = make_module(tmp_path)
    assert (module.vocab_size, module.num_classes, module.pad_id, module.max_length) == (256, 2, None, 1024)
    assert PathXDataModule(data_dir=tmp_path, batch_size=1).max_length == 16384
    with pytest.raises(ValueError, match="max_length=1000"):
        PathfinderDataModule(data_dir=tmp_path, batch_size=4, max_length=1000)
    with pytest.raises(ValueError, match="contour_length=7"):
        PathfinderDataModule(data_dir=tmp_path, batch_size=4, contour_length=7)


def test_black_pixels_are_real_tokens(pathfinder_dir: Path) -> None:
    module = make_module(pathfinder_dir)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["inputs"].shape == (4, 1024) and batch["inputs"].dtype == torch.long
    assert batch["mask"].dtype == torch.bool and batch["mask"].all()
    assert (batch["inputs"][:, 0] == 0).all()  # every fixture image starts with a black pixel


def test_pixels_and_labels_match_the_files(pathfinder_dir: Path) -> None:
    module = make_module(pathfinder_dir)
    module.setup("test")
    dataset = module.datasets["test"]
    for position in range(len(dataset)):
        (pixels,), label = dataset[position]
        index = int(dataset.split.source_rows[dataset.indices[position]])
        assert np.array_equal(pixels, pathfinder_image(index, 32).reshape(-1))
        assert label == index % 2


def test_split_is_80_10_10_and_deterministic(pathfinder_dir: Path) -> None:
    parts = split_rows(200, seed=5)
    assert [len(parts[name]) for name in ("train", "val", "test")] == [160, 20, 20]
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(200))
    assert all(np.array_equal(parts[name], split_rows(200, seed=5)[name]) for name in parts)
    assert not np.array_equal(parts["val"], split_rows(200, seed=6)["val"])

    first, second = make_module(pathfinder_dir, seed=1), make_module(pathfinder_dir, seed=1)
    first.setup(None)
    second.setup(None)
    for split in ("train", "val", "test"):
        assert np.array_equal(first.datasets[split].indices, second.datasets[split].indices)


def test_broken_images_are_skipped_with_one_warning(pathfinder_dir: Path, data_warnings) -> None:
    module = make_module(pathfinder_dir)
    module.setup(None)
    sizes = [len(module.datasets[split]) for split in ("train", "val", "test")]
    assert sum(sizes) == 18  # 20 rows, one empty and one corrupt image
    warnings = [record.getMessage() for record in data_warnings.records]
    assert warnings == ["pathfinder/all: skipped 2 empty or unreadable images"]
    kept = set(module.datasets["train"].split.source_rows.tolist())
    assert 3 not in kept and 7 not in kept


def test_contour_length_picks_its_folder(tmp_path: Path) -> None:
    write_pathfinder_release(tmp_path, contour_length=6, num_images=10)
    module = PathfinderDataModule(data_dir=tmp_path, batch_size=2, contour_length=6)
    module.setup("fit")
    assert len(module.datasets["train"]) == 8
    with pytest.raises(DataError, match="curv_contour_length_14"):
        make_module(tmp_path).setup("fit")


def test_pathx_reads_128_pixel_images(tmp_path: Path) -> None:
    write_pathfinder_release(tmp_path / "lra_release", resolution=128, num_images=10)
    module = PathXDataModule(data_dir=tmp_path, batch_size=2)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["inputs"].shape == (2, 16384) and batch["mask"].all()


def test_wrong_image_size_is_an_error(tmp_path: Path) -> None:
    folder = write_pathfinder_release(tmp_path, num_images=4)
    image = folder / "imgs" / "0" / "sample_1.png"
    image.write_bytes(png_bytes(np.zeros((16, 16), dtype=np.uint8)))
    with pytest.raises(DataError, match="16x16, expected 32x32") as error:
        make_module(tmp_path).setup("fit")
    assert str(image) in str(error.value)


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        ("imgs/0 sample_0.png 0", "expected at least 4 space-separated fields, found 3"),
        ("imgs/0 sample_0.png 0 2", "label '2' is out of range"),
    ],
)
def test_bad_metadata_rows_name_file_and_line(tmp_path: Path, row: str, complaint: str) -> None:
    folder = write_pathfinder_release(tmp_path, num_images=4)
    metadata = folder / "metadata" / "0.npy"
    metadata.write_text(metadata.read_text() + row + "\n")
    with pytest.raises(DataError, match=complaint) as error:
        make_module(tmp_path).setup("fit")
    assert f"{metadata}:5" in str(error.value)


def test_missing_data_names_both_commands(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        PathXDataModule(data_dir=tmp_path, batch_size=2).prepare_data()
    message = str(error.value)
    assert str(tmp_path / "pathfinder128" / "curv_contour_length_14" / "metadata") in message
    assert f"python -m lra.prepare pathx --data-dir {tmp_path} --generate" in message
