"""Image (CIFAR-10): classify a 32x32 image from its 1024 grayscale intensities, one pixel a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lra.data.base import LRADataModule
from lra.data.cache import TokenizedSplit, pack_sequences
from lra.data.hub import hub_source_signature, load_hub_split, row_location
from lra.data.layout import DataError
from lra.data.tokenizers import (
    IMAGE_DECODE_ERRORS,
    PIXEL_VOCAB_SIZE,
    check_pixel_length,
    decode_pixels,
)

NUM_CLASSES = 10
RESOLUTION = 32
# The original pipeline takes tfds `train[:90%]` for training and the last 10% for validation.
TRAIN_FRACTION = 0.9


class ImageDataModule(LRADataModule):
    """CIFAR-10 from `uoft-cs/cifar10` (local `data_dir/cifar10/plain_text/*.parquet` or the Hub).

    Train/validation are the first 45k / last 5k training images; test is the 10k test images.
    pad_id is None: a black pixel is token 0 and is always a real position.
    """

    tokenizer = "pixels"
    task = "image"
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
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            batch_size=batch_size,
            max_length=check_pixel_length(self.task, max_length, RESOLUTION),
            num_workers=num_workers,
            seed=seed,
            cache_dir=cache_dir,
        )

    def preprocessing(self) -> dict[str, Any]:
        return {"resolution": RESOLUTION, "train_fraction": TRAIN_FRACTION}

    def source_signatures(self, split: str) -> Any:
        return hub_source_signature(self.data_dir, self.task, "test" if split == "test" else "train")

    def build_split(self, split: str) -> TokenizedSplit:
        source_split = "test" if split == "test" else "train"
        dataset = load_hub_split(self.data_dir, self.task, source_split, self.cache.root / "huggingface")
        first, stop = 0, len(dataset)
        if split != "test":
            boundary = round(len(dataset) * TRAIN_FRACTION)
            first, stop = (0, boundary) if split == "train" else (boundary, len(dataset))
        # Raw struct rows ({bytes, path}) whether or not the parquet carries the Hub's Image feature.
        rows = dataset.select_columns(["img", "label"]).with_format("arrow")[first:stop]
        images = rows.column("img").combine_chunks().field("bytes").to_pylist()
        pixels, labels, kept_rows = [], [], []
        skipped = 0
        for row, (data, label) in enumerate(zip(images, rows.column("label").to_pylist()), start=first):
            where = row_location(self.data_dir, self.task, source_split, row)
            if label not in range(NUM_CLASSES):
                raise DataError(f"{where}: label {label!r} is out of range; expected an integer in 0..9")
            try:
                pixels.append(decode_pixels(data or b"", RESOLUTION, where))
            except IMAGE_DECODE_ERRORS:
                skipped += 1
                continue
            labels.append(label)
            kept_rows.append(row)
        return pack_sequences(pixels, labels, kept_rows, dtype=np.uint8, skipped=skipped)
