"""Token vocabularies of the LRA tasks: ListOps symbols, UTF-8 bytes and pixel intensities."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from lra.data.layout import DataError

# Part of every cache key: bump one when its encoding changes so stale caches are rebuilt.
TOKENIZER_VERSIONS = {"listops": 1, "bytes": 1, "pixels": 1}

LISTOPS_PAD_ID = 0
LISTOPS_SYMBOLS = (*(str(digit) for digit in range(10)), "[MIN", "[MAX", "[MED", "[SM", "]")
LISTOPS_VOCAB = {symbol: index + 1 for index, symbol in enumerate(LISTOPS_SYMBOLS)}
LISTOPS_VOCAB_SIZE = len(LISTOPS_VOCAB) + 1
# Parentheses only mark the binary nesting of the release format; they carry no information.
LISTOPS_IGNORED = frozenset({"(", ")"})

BYTE_PAD_ID = 0
BYTE_VOCAB_SIZE = 257  # byte b is id b + 1, leaving 0 for padding

PIXEL_VOCAB_SIZE = 256  # intensity 0-255 is the id; pixels are never padding

# What PIL raises for empty, truncated or otherwise undecodable image bytes.
IMAGE_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


def encode_listops(source: str, where: str) -> np.ndarray:
    """ListOps expression -> uint8 ids; `where` (file:line) names the culprit of an unknown token."""
    ids = []
    for token in source.split():
        if token in LISTOPS_IGNORED:
            continue
        index = LISTOPS_VOCAB.get(token)
        if index is None:
            raise DataError(
                f"{where}: unknown ListOps token {token!r}; expected one of "
                f"{' '.join(LISTOPS_SYMBOLS)} (and parentheses). Regenerate or re-download the file."
            )
        ids.append(index)
    return np.array(ids, dtype=np.uint8)


def encode_bytes(data: bytes, max_length: int) -> tuple[np.ndarray, bool]:
    """UTF-8 bytes -> int16 ids (byte + 1), cut to max_length; also says whether it was cut."""
    truncated = len(data) > max_length
    ids = np.frombuffer(data[:max_length], dtype=np.uint8).astype(np.int16)
    ids += 1
    return ids, truncated


def decode_pixels(data: bytes, resolution: int, where: str) -> np.ndarray:
    """PNG (or any PIL image) bytes -> flat uint8 grayscale intensities of a resolution^2 image.

    Undecodable bytes raise one of IMAGE_DECODE_ERRORS (callers skip and count those); an image
    of the wrong size is a DataError, since it means the wrong task's files were given.
    """
    with Image.open(io.BytesIO(data)) as image:
        gray = image.convert("L")
    if gray.size != (resolution, resolution):
        raise DataError(
            f"{where}: image is {gray.size[0]}x{gray.size[1]}, expected {resolution}x{resolution}. "
            "Check that the data folder belongs to this task."
        )
    return np.asarray(gray, dtype=np.uint8).reshape(-1)


def check_pixel_length(task: str, max_length: int | None, resolution: int) -> int:
    """Pixel tasks see every pixel: max_length must be resolution**2 (None means exactly that)."""
    expected = resolution * resolution
    if max_length is None:
        return expected
    if max_length != expected:
        raise ValueError(
            f"{task}: max_length={max_length} but a {resolution}x{resolution} image has {expected} "
            f"pixels; set max_length to {expected} (pixels are never truncated or padded)"
        )
    return max_length
