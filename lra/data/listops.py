"""ListOps: nested MIN/MAX/MED/SM expressions over digits, classified by their value (10 classes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lra.data.base import LRADataModule
from lra.data.cache import TokenizedSplit, file_signature, pack_sequences
from lra.data.layout import LISTOPS_FILES, find_release_root
from lra.data.tokenizers import (
    LISTOPS_PAD_ID,
    LISTOPS_VOCAB_SIZE,
    encode_listops,
)
from lra.data.tsv import iter_tsv_rows, parse_label

NUM_CLASSES = 10
HEADER = ("Source", "Target")


def read_listops_tsv(path: Path, max_length: int) -> TokenizedSplit:
    """Tokenise a `Source<TAB>Target` file; sequences longer than max_length are cut and counted."""
    sequences, labels, rows = [], [], []
    truncated = 0
    for row, (where, (source, target)) in enumerate(iter_tsv_rows(path, 2, header=HEADER)):
        label = parse_label(target, NUM_CLASSES, where)
        ids = encode_listops(source, where)
        if len(ids) > max_length:
            truncated += 1
            ids = ids[:max_length]
        sequences.append(ids)
        labels.append(label)
        rows.append(row)
    return pack_sequences(sequences, labels, rows, dtype=np.uint8, truncated=truncated)


class ListOpsDataModule(LRADataModule):
    """ListOps from `listops-1000/basic_{train,val,test}.tsv` (downloaded or generated)."""

    tokenizer = "listops"
    task = "listops"
    vocab_size = LISTOPS_VOCAB_SIZE
    num_classes = NUM_CLASSES
    pad_id = LISTOPS_PAD_ID

    def source_file(self, split: str) -> Path:
        return find_release_root(self.data_dir, self.task) / LISTOPS_FILES[split]

    def source_signatures(self, split: str) -> list[list[Any]]:
        return [file_signature(self.source_file(split))]

    def build_split(self, split: str) -> TokenizedSplit:
        return read_listops_tsv(self.source_file(split), self.max_length)
