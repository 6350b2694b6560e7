"""Pathfinder (32x32) and Path-X (128x128): are the two markers joined by one curve? Pixels as tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lra.data.base import LRADataModule, TokenDataset
from lra.data.cache import TokenizedSplit, file_signature, pack_sequences
from lra.data.layout import (
    DEFAULT_CONTOUR_LENGTH,
    DataError,
    find_release_root,
    how_to_prepare,
    pathfinder_folder,
)
from lra.data.tokenizers import (
    IMAGE_DECODE_ERRORS,
    PIXEL_VOCAB_SIZE,
    check_pixel_length,
    decode_pixels,
)

NUM_CLASSES = 2
# The release has no splits: 80/10/10 of all rows, drawn with the module's seed.
TRAIN_FRACTION, VAL_FRACTION = 0.8, 0.1


def metadata_files(folder: Path) -> list[Path]:
    """`metadata/*.npy` in numeric order (0, 1, ..., 10, not 0, 1, 10)."""

    def numeric_first(path: Path) -> tuple[bool, int, str]:
        return (not path.stem.isdigit(), int(path.stem) if path.stem.isdigit() else 0, path.name)

    return sorted((folder / "metadata").glob("*.npy"), key=numeric_first)


def iter_metadata_rows(folder: Path) -> Iterator[tuple[str, Path, int]]:
    """Yield ("file:line", image path, label) for every row of every metadata file.

    The `.npy` files are text: space-separated fields, 0 = `imgs/<b>`, 1 = file name, 3 = label.
    """
    for metadata in metadata_files(folder):
        try:
            lines = metadata.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise DataError(
                f"{metadata}: not a text metadata file (it should list one image per line)"
            ) from None
        for line_number, line in enumerate(lines, start=1):
            where = f"{metadata}:{line_number}"
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4:
                raise DataError(f"{where}: expected at least 4 space-separated fields, found {len(fields)}")
            if fields[3] not in ("0", "1"):
                raise DataError(f"{where}: label {fields[3]!r} is out of range; expected 0 or 1")
            yield where, folder / fields[0] / fields[1], int(fields[3])


def read_pathfinder(folder: Path, resolution: int) -> TokenizedSplit:
    """Decode every listed image; empty, corrupt or missing images are skipped and counted."""
    pixels, labels, rows = [], [], []
    skipped = 0
    for row, (where, image_path, label) in enumerate(iter_metadata_rows(folder)):
        try:
            data = image_path.read_bytes()
            pixels.append(decode_pixels(data, resolution, f"{image_path} (listed at {where})"))
        except (FileNotFoundError, *IMAGE_DECODE_ERRORS):
            skipped += 1
            continue
        labels.append(label)
        rows.append(row)
    return pack_sequences(pixels, labels, rows, dtype=np.uint8, skipped=skipped)


def split_rows(num_rows: int, seed: int) -> dict[str, np.ndarray]:
    """Deterministic 80/10/10 partition of row indices 0..num_rows-1, each part sorted."""
    order = np.random.default_rng(seed).permutation(num_rows)
    train_end = int(num_rows * TRAIN_FRACTION)
    val_end = train_end + int(num_rows * VAL_FRACTION)
    parts = {"train": order[:train_end], "val": order[train_end:val_end], "test": order[val_end:]}
    return {split: np.sort(rows) for split, rows in parts.items()}


class PathfinderDataModule(LRADataModule):
    """Pathfinder from `pathfinder32/<contour folder>/` (downloaded or generated).

    contour_length 6, 9 or 14 picks `curv_baseline`, `curv_contour_length_9` or
    `curv_contour_length_14` (the benchmark's). pad_id is None: black pixels are real tokens.
    """

    tokenizer = "pixels"
    task = "pathfinder"
    resolution: ClassVar[int] = 32
    vocab_size = PIXEL_VOCAB_SIZE
    num_classes = NUM_CLASSES
    pad_id = None

    def __init__(
        self,
        *,
        data_dir: str | Path,
        batch_size: int,
        max_length: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        contour_length: int = DEFAULT_CONTOUR_LENGTH,
    ) -> None:
        pathfinder_folder(self.resolution, contour_length)  # a bad contour_length fails here
        super().__init__(
            data_dir=data_dir,
            batch_size=batch_size,
            max_length=check_pixel_length(self.task, max_length, self.resolution),
            num_workers=num_workers,
            seed=seed,
            cache_dir=cache_dir,
        )
        self.contour_length = contour_length
        self._all_rows: TokenizedSplit | None = None

    def source_folder(self) -> Path:
        root = find_release_root(self.data_dir, self.task, contour_length=self.contour_length)
        folder = root / pathfinder_folder(self.resolution, self.contour_length)
        if not metadata_files(folder):
            hint = how_to_prepare(self.task, self.data_dir, contour_length=self.contour_length)
            raise DataError(
                f"{self.task} data is incomplete: {folder / 'metadata'} holds no *.npy files. {hint}"
            )
        return folder

    def cached_split_name(self, split: str) -> str:
        # One entry for all rows: changing the split seed then needs no re-decoding.
        return "all"

    def preprocessing(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "contour_length": self.contour_length}

    def source_signatures(self, split: str) -> list[list[Any]]:
        return [file_signature(path) for path in metadata_files(self.source_folder())]

    def build_split(self, split: str) -> TokenizedSplit:
        return read_pathfinder(self.source_folder(), self.resolution)

    def make_dataset(self, split: str) -> TokenDataset:
        if self._all_rows is None:
            self._all_rows = self.load_split("all")
        all_rows = self._all_rows
        # Skipped images still count as rows, so the partition does not depend on which were readable.
        rows = split_rows(len(all_rows) + all_rows.skipped, self.seed)[split]
        return TokenDataset(all_rows, np.flatnonzero(np.isin(all_rows.source_rows, rows)))


class PathXDataModule(PathfinderDataModule):
    """Path-X: Pathfinder at 128x128 from `pathfinder128/<contour folder>/`; 16384 tokens."""

    task = "pathx"
    resolution: ClassVar[int] = 128
