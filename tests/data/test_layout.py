"""Release-root search, missing-data messages and the batch collation contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lra.data.base import collate_batch
from lra.data.layout import (
    DataError,
    find_release_root,
    locate_task_data,
    pathfinder_folder,
)
from tests.data.fixtures import write_listops_release


@pytest.mark.parametrize("nesting", [".", "lra_release", "lra_release/lra_release"])
def test_release_root_is_found_at_every_nesting(tmp_path: Path, nesting: str) -> None:
    write_listops_release(tmp_path / nesting)
    assert find_release_root(tmp_path, "listops") == tmp_path / nesting
    assert locate_task_data("listops", tmp_path) == tmp_path / nesting / "listops-1000"


def test_flat_layout_wins_over_nested(tmp_path: Path) -> None:
    write_listops_release(tmp_path)
    write_listops_release(tmp_path / "lra_release" / "lra_release")
    assert find_release_root(tmp_path, "listops") == tmp_path


def test_partial_release_is_not_a_root(tmp_path: Path) -> None:
    write_listops_release(tmp_path)
    (tmp_path / "listops-1000" / "basic_test.tsv").unlink()
    with pytest.raises(DataError) as error:
        find_release_root(tmp_path, "listops")
    message = str(error.value)
    assert str(tmp_path / "lra_release" / "lra_release") in message  # says where it looked
    assert f"`python -m lra.prepare listops --data-dir {tmp_path}`" in message
    assert f"`python -m lra.prepare listops --data-dir {tmp_path} --generate`" in message


def test_pathfinder_folders_and_hint() -> None:
    assert pathfinder_folder(32, 6) == "pathfinder32/curv_baseline"
    assert pathfinder_folder(128, 14) == "pathfinder128/curv_contour_length_14"
    with pytest.raises(ValueError, match="contour_length=5"):
        pathfinder_folder(32, 5)


def test_missing_pathfinder_hint_keeps_the_contour_length(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--contour-length 9"):
        find_release_root(tmp_path, "pathfinder", contour_length=9)


def test_missing_hub_copy_names_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        locate_task_data("image", tmp_path)
    assert str(tmp_path / "cifar10" / "plain_text") in str(error.value)
    assert f"python -m lra.prepare image --data-dir {tmp_path}" in str(error.value)


def test_collate_pads_to_the_longest_and_masks_padding() -> None:
    items = [([np.array([5, 6, 7], dtype=np.uint8)], 1), ([np.array([8], dtype=np.uint8)], 0)]
    batch = collate_batch(items, pad_id=0, paired=False)
    assert batch["inputs"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["label"].dtype == torch.long and batch["label"].tolist() == [1, 0]


def test_collate_pairs_share_the_longest_of_both_documents() -> None:
    items = [([np.array([1, 2]), np.array([3])], 1), ([np.array([4]), np.array([5, 6, 7, 8])], 0)]
    batch = collate_batch(items, pad_id=0, paired=True)
    assert batch["inputs"].shape == (2, 2, 4) and batch["mask"].shape == (2, 2, 4)
    assert batch["mask"].sum(dim=2).tolist() == [[2, 1], [1, 4]]


def test_collate_of_pixels_never_masks_zeros() -> None:
    items = [([np.zeros(4, dtype=np.uint8)], 0), ([np.array([0, 9, 0, 0], dtype=np.uint8)], 1)]
    batch = collate_batch(items, pad_id=None, paired=False)
    assert batch["mask"].all() and batch["inputs"][1].tolist() == [0, 9, 0, 0]
    with pytest.raises(ValueError, match="fixed-length"):
        collate_batch([([np.zeros(4)], 0), ([np.zeros(3)], 0)], pad_id=None, paired=False)
