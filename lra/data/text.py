"""Text (IMDB reviews): byte-level sentiment classification of long documents."""

from __future__ import annotations

from typing import Any

import numpy as np

from lra.data.base import LRADataModule, TokenDataset
from lra.data.cache import TokenizedSplit, pack_sequences
from lra.data.hub import hub_source_signature, load_hub_split, row_location
from lra.data.layout import DataError
from lra.data.tokenizers import (
    BYTE_PAD_ID,
    BYTE_VOCAB_SIZE,
    encode_bytes,
)

NUM_CLASSES = 2
# IMDB has no validation split; like every public LRA harness, the test split doubles as one.
SOURCE_SPLITS = {"train": "train", "val": "test", "test": "test"}


class TextDataModule(LRADataModule):
    """IMDB from `stanfordnlp/imdb` (local `data_dir/imdb/plain_text/*.parquet` or the Hub).

    Train is the 25k training reviews; validation and test are both the 25k test reviews.
    """

    tokenizer = "bytes"
    task = "text"
    vocab_size = BYTE_VOCAB_SIZE
    num_classes = NUM_CLASSES
    pad_id = BYTE_PAD_ID

    def cached_split_name(self, split: str) -> str:
        return SOURCE_SPLITS[split]

    def make_dataset(self, split: str) -> TokenDataset:
        # val and test share one cache entry and one in-memory copy.
        source = SOURCE_SPLITS[split]
        for name, dataset in self.datasets.items():
            if SOURCE_SPLITS[name] == source:
                return dataset
        return super().make_dataset(source)

    def source_signatures(self, split: str) -> Any:
        return hub_source_signature(self.data_dir, self.task, split)

    def build_split(self, split: str) -> TokenizedSplit:
        dataset = load_hub_split(self.data_dir, self.task, split, self.cache.root / "huggingface")
        sequences, labels = [], []
        truncated = 0
        for row, example in enumerate(dataset):
            label = example["label"]
            if label not in range(NUM_CLASSES):
                where = row_location(self.data_dir, self.task, split, row)
                raise DataError(f"{where}: label {label!r} is out of range; expected 0 or 1")
            ids, was_cut = encode_bytes(example["text"].encode("utf-8"), self.max_length)
            truncated += was_cut
            sequences.append(ids)
            labels.append(label)
        return pack_sequences(sequences, labels, range(len(labels)), dtype=np.int16, truncated=truncated)
