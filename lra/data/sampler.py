"""A shuffling sampler whose place in the data order (epoch, position) survives a checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import Dataset, DistributedSampler


class ResumableShuffleSampler(DistributedSampler):
    """Each epoch a fresh permutation drawn from (seed, epoch); a restored state resumes mid-epoch.

    The permutation depends only on the seed and the epoch number, never on how many epochs this
    process has iterated, so a resumed run draws the same orders as an uninterrupted one. With
    several processes each takes every `num_replicas`-th example of the order, as
    DistributedSampler does (being one, Lightning leaves it in place instead of wrapping it).
    `load_state_dict` makes the next iteration start `position` examples into this process's
    share of the epoch; later epochs start at 0 again.
    """

    def __init__(self, dataset: Dataset, *, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self._start = 0

    def order(self, epoch: int) -> np.ndarray:
        """This process's share of one epoch's permutation, padded so every process gets as many."""
        # A two-word seed: seed 0 epoch 1 and seed 1 epoch 0 give unrelated orders.
        permutation = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        padded = np.resize(permutation, self.total_size)  # repeats the start, as DistributedSampler pads
        return padded[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        start, self._start = self._start, 0
        yield from self.order(self.epoch)[start:].tolist()

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of each epoch; a restored position holds for its epoch only."""
        if epoch != self.epoch:
            self._start = 0
        self.epoch = epoch

    def state_dict(self, consumed: int) -> dict[str, Any]:
        """The place after `consumed` examples of this epoch. The caller says how many, because the
        loader fetches ahead of training and only the trainer knows how many batches were used."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": consumed,
            "num_examples": len(self.dataset),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["seed"] != self.seed or state["num_examples"] != len(self.dataset):
            raise ValueError(
                f"the checkpoint's data order (seed {state['seed']}, {state['num_examples']} examples) does "
                f"not match this run's (seed {self.seed}, {len(self.dataset)} examples); resume with the "
                "same seed and data"
            )
        self.epoch, self._start = int(state["epoch"]), int(state["position"])
        if self._start >= self.num_samples:  # saved after the epoch's last batch
            self.epoch, self._start = self.epoch + 1, 0
