"""Data for the conversion recipe: GLUE tasks and image classification sets through `datasets`, as batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

# The text fields of each GLUE classification task (nyu-mll/glue); the second is None for single sentences.
# STS-B, a regression, is left out: the recipe measures accuracy.
GLUE_TEXT_FIELDS: dict[str, tuple[str, str | None]] = {
    "cola": ("sentence", None),
    "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
}

Batch = dict[str, torch.Tensor]


def glue_loaders(
    task: str,
    tokenizer_name: str,
    batch_size: int,
    max_length: int,
    train_split: str = "train",
    eval_split: str = "validation",
) -> tuple[DataLoader, DataLoader]:
    """Training and evaluation batches of a GLUE task, tokenised on the fly (padded per batch).

    Sequences longer than `max_length` tokens are truncated, as in BERT's GLUE fine-tuning.
    """
    from datasets import load_dataset
    from transformers import AutoTokenizer

    if task not in GLUE_TEXT_FIELDS:
        raise ValueError(f"unknown GLUE task {task!r}; known: {', '.join(GLUE_TEXT_FIELDS)}")
    first, second = GLUE_TEXT_FIELDS[task]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)

    def collate(rows: list[dict[str, Any]]) -> Batch:
        texts = [row[first] for row in rows]
        pairs = [row[second] for row in rows] if second else None
        batch = tokenizer(
            texts, pairs, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        batch["labels"] = torch.tensor([row["label"] for row in rows])
        return dict(batch)

    def loader(split: str, shuffle: bool) -> DataLoader:
        rows = load_dataset("nyu-mll/glue", task, split=split)
        return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, collate_fn=collate)

    return loader(train_split, True), loader(eval_split, False)


def image_loaders(
    dataset: str,
    processor_name: str,
    batch_size: int,
    image_column: str = "image",
    label_column: str = "label",
    train_split: str = "train",
    eval_split: str = "test",
    num_workers: int = 4,
) -> tuple[DataLoader, DataLoader]:
    """Training and evaluation batches of an image classification set, resized and normalised by the
    model's own image processor."""
    from datasets import load_dataset
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(processor_name)

    def collate(rows: list[dict[str, Any]]) -> Batch:
        images = [row[image_column].convert("RGB") for row in rows]
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels, "labels": torch.tensor([row[label_column] for row in rows])}

    def loader(split: str, shuffle: bool) -> DataLoader:
        rows = load_dataset(dataset, split=split)
        return DataLoader(
            rows, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, num_workers=num_workers
        )

    return loader(train_split, True), loader(eval_split, False)


def forever(batches: Iterable[Batch]) -> Iterator[Batch]:
    """The batches again and again (reshuffled each pass by a shuffling loader), without caching them."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("no batches to train on")


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {name: value.to(device) for name, value in batch.items()}
