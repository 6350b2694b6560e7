"""Shared base of the LRA data modules: cached splits, the batch contract and the data loaders."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, ClassVar

import lightning
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lra.data.cache import TokenCache, TokenizedSplit
from lra.data.layout import DataError
from lra.data.sampler import ResumableShuffleSampler
from lra.data.tokenizers import TOKENIZER_VERSIONS

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# Which splits each Lightning stage needs; None (and anything unknown) loads all of them.
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}

__all__ = ["DataError", "LRADataModule", "TokenDataset", "collate_batch", "SPLITS"]


class TokenDataset(Dataset):
    """Examples of a TokenizedSplit (optionally a subset of them) as (sequences, label) pairs."""

    def __init__(self, split: TokenizedSplit, indices: np.ndarray | None = None) -> None:
        self.split = split
        self.indices = indices

    def __len__(self) -> int:
        return len(self.split) if self.indices is None else len(self.indices)

    def __getitem__(self, item: int) -> tuple[list[np.ndarray], int]:
        example = int(item if self.indices is None else self.indices[item])
        per_example = self.split.sequences_per_example
        first = example * per_example
        sequences = [self.split.sequence(first + k) for k in range(per_example)]
        return sequences, int(self.split.labels[example])


def collate_batch(
    items: list[tuple[list[np.ndarray], int]], *, pad_id: int | None, paired: bool
) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch (for pairs: the longest of both documents).

    Returns `inputs` (B, N) or (B, 2, N) int64, `mask` of the same shape with True on real
    tokens, and `label` (B,) int64. pad_id None means fixed-length pixels that are never padded.
    """
    per_example = len(items[0][0])
    longest = max(len(sequence) for sequences, _ in items for sequence in sequences)
    inputs = np.full((len(items), per_example, longest), 0 if pad_id is None else pad_id, dtype=np.int64)
    mask = np.zeros((len(items), per_example, longest), dtype=bool)
    for row, (sequences, _) in enumerate(items):
        for column, sequence in enumerate(sequences):
            if pad_id is None and len(sequence) != longest:
                raise ValueError(f"fixed-length sequences differ in length: {len(sequence)} vs {longest}")
            inputs[row, column, : len(sequence)] = sequence
            mask[row, column, : len(sequence)] = True
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    if not paired:
        inputs, mask = inputs[:, 0], mask[:, 0]
    return {"inputs": torch.from_numpy(inputs), "mask": torch.from_numpy(mask), "label": labels}


class LRADataModule(lightning.LightningDataModule):
    """One LRA task: finds its files, tokenises them once into the cache, serves padded batches.

    Subclasses set `task`, `vocab_size`, `num_classes`, `pad_id` (None for pixels, which are
    never padding) and implement `cache_key` and `build_split`; the model is built from these
    attributes before `setup` runs.
    """

    task: ClassVar[str]
    tokenizer: ClassVar[str]  # a key of TOKENIZER_VERSIONS
    paired: ClassVar[bool] = False
    vocab_size: int
    num_classes: int
    pad_id: int | None

    def __init__(
        self,
        *,
        data_dir: str | Path,
        batch_size: int,
        max_length: int,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        minimums = {
            "batch_size": (batch_size, 1),
            "max_length": (max_length, 1),
            "num_workers": (num_workers, 0),
        }
        for name, (value, minimum) in minimums.items():
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"{self.task}: {name} must be an integer >= {minimum}, got {value!r}")
        self.data_dir = Path(data_dir).expanduser()
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_workers = num_workers
        self.seed = seed
        cache_root = Path(cache_dir).expanduser() if cache_dir is not None else self.data_dir / ".cache"
        self.cache = TokenCache(cache_root)
        self.datasets: dict[str, TokenDataset] = {}
        self.train_sampler: ResumableShuffleSampler | None = None
        self._restored_sampler_state: dict[str, Any] | None = None

    # ---- what each task provides -------------------------------------------------------------
    def cache_key(self, split: str) -> dict[str, Any]:
        """Everything that shaped the tokenised split (raises DataError when the source is missing)."""
        return {
            "task": self.task,
            "split": split,
            **self.preprocessing(),
            "tokenizer": TOKENIZER_VERSIONS[self.tokenizer],
            "sources": self.source_signatures(split),
        }

    def preprocessing(self) -> dict[str, Any]:
        """The options that change the tokens (part of the cache key)."""
        return {"max_length": self.max_length}

    def source_signatures(self, split: str) -> Any:
        """Sizes and modification times of the files a split is read from."""
        raise NotImplementedError

    def build_split(self, split: str) -> TokenizedSplit:
        """Read and tokenise one split from its source files."""
        raise NotImplementedError

    def cached_split_name(self, split: str) -> str:
        """The cache entry a split is served from (Pathfinder caches all rows under one entry)."""
        return split

    def make_dataset(self, split: str) -> TokenDataset:
        return TokenDataset(self.load_split(split))

    # ---- Lightning hooks --------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Tokenise every split into the cache (run once, on one process)."""
        for name in dict.fromkeys(self.cached_split_name(split) for split in SPLITS):
            key = self.cache_key(name)
            if not self.cache.contains(key):
                self.cache.save(key, self.build_split(name))

    def setup(self, stage: str | None = None) -> None:
        for split in STAGE_SPLITS.get(stage or "", SPLITS):
            if split not in self.datasets:
                self.datasets[split] = self.make_dataset(split)

    def load_split(self, name: str) -> TokenizedSplit:
        """The cached split (built on a miss), with its truncation and skip counts reported once."""
        tokenized = self.cache.get_or_build(self.cache_key(name), functools.partial(self.build_split, name))
        where = f"{self.task}/{name}"
        if tokenized.truncated:
            total = len(tokenized.offsets) - 1
            logger.warning(
                "%s: %d of %d sequences longer than max_length=%d were truncated",
                where,
                tokenized.truncated,
                total,
                self.max_length,
            )
        if tokenized.skipped:
            logger.warning("%s: skipped %d empty or unreadable images", where, tokenized.skipped)
        if len(tokenized) == 0:
            raise DataError(
                f"{where}: no usable examples in {self.data_dir}; the source files are empty. "
                f"Re-run `python -m lra.prepare {self.task} --data-dir {self.data_dir}`."
            )
        return tokenized

    def train_dataloader(self) -> DataLoader:
        # The order follows the run's seed (lightning.seed_everything), so seeds differ in data order
        # as well as initialisation while `self.seed` keeps the split itself fixed across runs.
        seed = torch.initial_seed()
        dataset = self._dataset("train")
        trainer = self.trainer
        sampler = ResumableShuffleSampler(
            dataset,
            seed=seed,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
        if self._restored_sampler_state is not None:
            sampler.load_state_dict(self._restored_sampler_state)
            self._restored_sampler_state = None
        self.train_sampler = sampler
        # The generator only seeds worker processes; without one the loader would draw from the
        # global generator, and a resumed run's dropout would no longer match the uninterrupted one.
        return self._loader(dataset, sampler=sampler, generator=torch.Generator().manual_seed(seed))

    def val_dataloader(self) -> DataLoader:
        # A generator here too, so validating leaves the global generator, and so training, alone.
        return self._loader(self._dataset("val"), sampler=None, generator=torch.Generator().manual_seed(0))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("test"), sampler=None, generator=torch.Generator().manual_seed(0))

    # ---- resuming: the train order's place is saved in every checkpoint -----------------------
    def state_dict(self) -> dict[str, Any]:
        trainer = self.trainer
        if self.train_sampler is None or trainer is None:
            return {}
        # Batches training has used this epoch (the loader may have fetched more ahead of it).
        used_batches = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        return {"train_sampler": self.train_sampler.state_dict(used_batches * self.batch_size)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores the datamodule before it asks for the train loader.
        self._restored_sampler_state = state_dict.get("train_sampler")

    def _dataset(self, split: str) -> TokenDataset:
        if split not in self.datasets:
            self.datasets[split] = self.make_dataset(split)
        return self.datasets[split]

    def _loader(
        self,
        dataset: TokenDataset,
        *,
        sampler: ResumableShuffleSampler | None,
        generator: torch.Generator | None,
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=functools.partial(collate_batch, pad_id=self.pad_id, paired=self.paired),
        )
