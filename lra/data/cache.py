"""On-disk cache of tokenised splits, keyed by everything that shaped them, written atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Bump when the on-disk layout below changes, so old entries are never misread.
CACHE_FORMAT_VERSION = 1
ARRAY_NAMES = ("tokens", "offsets", "labels", "source_rows")


@dataclass(frozen=True)
class TokenizedSplit:
    """Token ids of many variable-length sequences, stored flat with offsets.

    Example e owns sequences e*sequences_per_example ... (e+1)*sequences_per_example - 1, and
    sequence s is tokens[offsets[s]:offsets[s + 1]]. `source_rows` is the row (or line) of the
    source each example came from; `truncated` and `skipped` are counted while building, so the
    warnings can be repeated when the split is later served from the cache.
    """

    tokens: np.ndarray  # (total tokens,) uint8 or int16
    offsets: np.ndarray  # (num examples * sequences_per_example + 1,) int64
    labels: np.ndarray  # (num examples,) int64
    source_rows: np.ndarray  # (num examples,) int64
    sequences_per_example: int = 1
    truncated: int = 0
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    def sequence(self, index: int) -> np.ndarray:
        return self.tokens[self.offsets[index] : self.offsets[index + 1]]


def pack_sequences(
    sequences: Sequence[np.ndarray],
    labels: Sequence[int],
    source_rows: Sequence[int],
    *,
    dtype: np.dtype,
    sequences_per_example: int = 1,
    truncated: int = 0,
    skipped: int = 0,
) -> TokenizedSplit:
    """Concatenate per-sequence id arrays into one compact TokenizedSplit."""
    lengths = np.fromiter((len(sequence) for sequence in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(sequences).astype(dtype, copy=False) if sequences else np.zeros(0, dtype)
    return TokenizedSplit(
        tokens=tokens,
        offsets=offsets,
        labels=np.asarray(labels, dtype=np.int64),
        source_rows=np.asarray(source_rows, dtype=np.int64),
        sequences_per_example=sequences_per_example,
        truncated=truncated,
        skipped=skipped,
    )


def file_signature(path: Path) -> list[Any]:
    """Path, size and modification time: enough to notice that a source file changed."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _checksum(array: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


class CorruptCacheEntry(Exception):
    """A cache entry that cannot be trusted; it is deleted and rebuilt."""


class TokenCache:
    """A folder of cache entries, one sub-folder of .npy arrays plus meta.json per key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def entry_dir(self, key: Mapping[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.root / f"{key['task']}-{key['split']}-{digest}"

    def contains(self, key: Mapping[str, Any]) -> bool:
        return (self.entry_dir(key) / "meta.json").is_file()

    def get_or_build(self, key: Mapping[str, Any], build: Callable[[], TokenizedSplit]) -> TokenizedSplit:
        """The verified cached split for key; built, saved and returned when absent or corrupt."""
        cached = self.load(key)
        if cached is not None:
            return cached
        split = build()
        self.save(key, split)
        return split

    def load(self, key: Mapping[str, Any]) -> TokenizedSplit | None:
        """The cached split, or None when there is none or it is corrupt (then it is removed)."""
        folder = self.entry_dir(key)
        if not folder.exists():
            return None
        try:
            return self._read(folder, key)
        except (CorruptCacheEntry, OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("cache entry %s is unusable (%s); rebuilding it", folder, error)
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def save(self, key: Mapping[str, Any], split: TokenizedSplit) -> Path:
        """Write the split under a temporary name, then rename it into place in one step."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.entry_dir(key)
        temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=self.root))
        try:
            arrays = {name: getattr(split, name) for name in ARRAY_NAMES}
            for name, array in arrays.items():
                np.save(temporary / f"{name}.npy", array, allow_pickle=False)
            meta = {
                "format": CACHE_FORMAT_VERSION,
                "key": dict(key),
                "sequences_per_example": split.sequences_per_example,
                "truncated": split.truncated,
                "skipped": split.skipped,
                "arrays": {
                    name: {"dtype": array.dtype.str, "shape": list(array.shape), "crc32": _checksum(array)}
                    for name, array in arrays.items()
                },
            }
            (temporary / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(temporary, folder)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return folder

    def _read(self, folder: Path, key: Mapping[str, Any]) -> TokenizedSplit:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != CACHE_FORMAT_VERSION or meta.get("key") != json.loads(json.dumps(key)):
            raise CorruptCacheEntry("its format or key does not match")
        arrays = {}
        for name in ARRAY_NAMES:
            expected = meta["arrays"][name]
            # Memory-mapped so that large pixel splits are paged in on demand, not copied.
            array = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            if array.dtype.str != expected["dtype"] or list(array.shape) != expected["shape"]:
                raise CorruptCacheEntry(f"{name}.npy has dtype {array.dtype} and shape {array.shape}")
            if _checksum(array) != expected["crc32"]:
                raise CorruptCacheEntry(f"{name}.npy fails its checksum")
            arrays[name] = array
        split = TokenizedSplit(
            **arrays,
            sequences_per_example=int(meta["sequences_per_example"]),
            truncated=int(meta["truncated"]),
            skipped=int(meta["skipped"]),
        )
        sequences = len(split.labels) * split.sequences_per_example
        if len(split.offsets) != sequences + 1 or split.offsets[-1] != len(split.tokens):
            raise CorruptCacheEntry("its offsets do not match its tokens")
        return split
