"""Retrieval (ACL Anthology Network): do two papers cite one another? Byte-level document pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lra.data.base import LRADataModule
from lra.data.cache import TokenizedSplit, file_signature, pack_sequences
from lra.data.layout import RETRIEVAL_FILES, find_release_root
from lra.data.tokenizers import (
    BYTE_PAD_ID,
    BYTE_VOCAB_SIZE,
    encode_bytes,
)
from lra.data.tsv import iter_tsv_rows, parse_label

NUM_CLASSES = 2


def read_retrieval_tsv(path: Path, max_length: int) -> TokenizedSplit:
    """Tokenise a headerless `label id1 id2 text1 text2` file; each document is cut to max_length."""
    sequences, labels, rows = [], [], []
    truncated = 0
    for row, (where, fields) in enumerate(iter_tsv_rows(path, 5)):
        labels.append(parse_label(fields[0], NUM_CLASSES, where, via_float=True))
        for text in fields[3:5]:
            ids, was_cut = encode_bytes(text.encode("utf-8"), max_length)
            truncated += was_cut
            sequences.append(ids)
        rows.append(row)
    return pack_sequences(
        sequences, labels, rows, dtype=np.int16, sequences_per_example=2, truncated=truncated
    )


class RetrievalDataModule(LRADataModule):
    """AAN pairs from `tsv_data/new_aan_pairs.{train,eval,test}.tsv`; batches are (B, 2, N)."""

    tokenizer = "bytes"
    task = "retrieval"
    paired = True
    vocab_size = BYTE_VOCAB_SIZE
    num_classes = NUM_CLASSES
    pad_id = BYTE_PAD_ID

    def source_file(self, split: str) -> Path:
        return find_release_root(self.data_dir, self.task) / RETRIEVAL_FILES[split]

    def source_signatures(self, split: str) -> list[list[Any]]:
        return [file_signature(self.source_file(split))]

    def build_split(self, split: str) -> TokenizedSplit:
        return read_retrieval_tsv(self.source_file(split), self.max_length)
