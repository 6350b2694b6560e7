"""The token cache: served without reading sources, rebuilt on changed parameters or corruption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lra.data.listops
import lra.data.pathfinder
from lra.data.cache import TokenCache, pack_sequences
from lra.data.listops import ListOpsDataModule
from lra.data.pathfinder import PathfinderDataModule


def cached_entries(data_dir: Path, prefix: str) -> list[Path]:
    return sorted((data_dir / ".cache").glob(prefix + "*"))


def refuse_to_read(*args: object) -> None:
    raise AssertionError("the source files were read although the cache holds the split")


def test_second_setup_is_served_from_cache(listops_dir: Path, monkeypatch) -> None:
    first = ListOpsDataModule(data_dir=listops_dir, batch_size=2, max_length=50)
    first.prepare_data()
    first.setup("fit")
    monkeypatch.setattr(lra.data.listops, "read_listops_tsv", refuse_to_read)
    second = ListOpsDataModule(data_dir=listops_dir, batch_size=2, max_length=50)
    second.prepare_data()
    second.setup(None)
    assert len(second.datasets["train"]) == 6
    first_batch, second_batch = next(iter(first.val_dataloader())), next(iter(second.val_dataloader()))
    assert all((first_batch[name] == second_batch[name]).all() for name in first_batch)


def test_pathfinder_cache_survives_a_new_split_seed(pathfinder_dir: Path, monkeypatch) -> None:
    PathfinderDataModule(data_dir=pathfinder_dir, batch_size=2, seed=0).setup("fit")
    monkeypatch.setattr(lra.data.pathfinder, "read_pathfinder", refuse_to_read)
    module = PathfinderDataModule(data_dir=pathfinder_dir, batch_size=2, seed=1)
    module.setup("fit")
    assert len(module.datasets["train"]) + len(module.datasets["val"]) <= 18


def test_changed_max_length_builds_a_new_entry(listops_dir: Path) -> None:
    ListOpsDataModule(data_dir=listops_dir, batch_size=2, max_length=50).setup("test")
    ListOpsDataModule(data_dir=listops_dir, batch_size=2, max_length=4).setup("test")
    assert len(cached_entries(listops_dir, "listops-test-")) == 2


def test_changed_source_file_builds_a_new_entry(listops_dir: Path) -> None:
    ListOpsDataModule(data_dir=listops_dir, batch_size=2, max_length=50).setup("test")
    source = listops_dir / "listops-1000" / "basic_test.tsv"
    source.write_text(source.read_text() + "( ( [MAX 1 ) ] )\t1\n")
    module = ListOpsDataModule(data_dir=listops_dir, batch_size=2, max_length=50)
    module.setup("test")
    assert len(module.datasets["test"]) == 7


def test_custom_cache_dir(listops_dir: Path, tmp_path: Path) -> None:
    module = ListOpsDataModule(data_dir=listops_dir, batch_size=2, max_length=50, cache_dir=tmp_path / "c")
    module.setup("test")
    assert len(list((tmp_path / "c").glob("listops-test-*"))) == 1
    assert not (listops_dir / ".cache").exists()


@pytest.mark.parametrize("damage", ["truncate-tokens", "flip-byte", "drop-meta", "garble-meta"])
def test_corrupt_entry_is_rebuilt_with_a_warning(listops_dir: Path, damage: str, data_warnings) -> None:
    ListOpsDataModule(data_dir=listops_dir, batch_size=2, max_length=50).setup("test")
    (entry,) = cached_entries(listops_dir, "listops-test-")
    tokens = entry / "tokens.npy"
    if damage == "truncate-tokens":
        tokens.write_bytes(tokens.read_bytes()[:-3])
    elif damage == "flip-byte":
        data = bytearray(tokens.read_bytes())
        data[-1] ^= 0xFF
        tokens.write_bytes(bytes(data))
    elif damage == "drop-meta":
        (entry / "meta.json").unlink()
    else:
        (entry / "meta.json").write_text("{not json")
    module = ListOpsDataModule(data_dir=listops_dir, batch_size=2, max_length=50)
    module.setup("test")
    assert len(module.datasets["test"]) == 6
    assert "is unusable" in data_warnings.text and "rebuilding" in data_warnings.text
    assert TokenCache(listops_dir / ".cache").load(module.cache_key("test")) is not None


def test_save_is_atomic_and_round_trips(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    split = pack_sequences(
        [np.array([1, 2, 3]), np.array([], dtype=np.int64), np.array([4])],
        [1, 0, 1],
        [0, 1, 2],
        dtype=np.int16,
        truncated=2,
    )
    key = {"task": "demo", "split": "train", "max_length": 3}
    folder = cache.save(key, split)
    assert [path.name for path in tmp_path.iterdir()] == [folder.name]  # no temporary left behind
    loaded = cache.load(key)
    assert loaded is not None and loaded.truncated == 2 and loaded.tokens.dtype == np.int16
    assert [loaded.sequence(i).tolist() for i in range(3)] == [[1, 2, 3], [], [4]]
    assert cache.load(key | {"max_length": 4}) is None
