"""Writers of tiny LRA data sets in the real on-disk formats, for tests of data and training."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from lra.data.layout import (
    HUB_CONFIG,
    LISTOPS_FILES,
    RETRIEVAL_FILES,
    pathfinder_folder,
)

# Expressions in the release's binary-nested format, with their values.
LISTOPS_EXAMPLES = (
    ("( ( ( [MAX 2 ) 9 ) ] )", 9),
    ("( ( ( [MIN 4 ) 7 ) ] )", 4),
    ("( ( ( ( [SM 5 ) 6 ) 3 ) ] )", 4),
    ("( ( ( ( [MED 1 ) 8 ) 2 ) ] )", 2),
    ("( ( ( [MAX ( ( ( [MIN 3 ) 5 ) ] ) ) 0 ) ] )", 3),
)


def write_listops_tsv(path: Path, rows: Sequence[tuple[str, int | str]], *, header: bool = True) -> Path:
    """A `Source<TAB>Target` file as in `listops-1000/basic_*.tsv`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["Source\tTarget"] if header else []
    lines += [f"{source}\t{target}" for source, target in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_listops_release(root: Path, *, rows_per_split: int = 6) -> Path:
    """All three ListOps splits under root, cycling through LISTOPS_EXAMPLES."""
    rows = [LISTOPS_EXAMPLES[i % len(LISTOPS_EXAMPLES)] for i in range(rows_per_split)]
    for relative in LISTOPS_FILES.values():
        write_listops_tsv(root / relative, rows)
    return root


def write_retrieval_tsv(path: Path, rows: Sequence[tuple[str, str, str]]) -> Path:
    """A headerless `label id1 id2 text1 text2` file; labels are written as floats like the release."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{label}\tpaper{i}a\tpaper{i}b\t{first}\t{second}" for i, (label, first, second) in enumerate(rows)
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return path


def write_retrieval_release(root: Path, *, rows_per_split: int = 6) -> Path:
    """All three Retrieval splits under root, documents of different lengths."""
    rows = [
        (f"{i % 2}.0", "abstract " * (i + 1), "é" * (3 * i + 1))  # two-byte characters on purpose
        for i in range(rows_per_split)
    ]
    for relative in RETRIEVAL_FILES.values():
        write_retrieval_tsv(root / relative, rows)
    return root


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG encoding of a (H, W) uint8 grayscale or (H, W, 3) RGB array."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def pathfinder_image(index: int, resolution: int) -> np.ndarray:
    """A deterministic test image whose first pixel is black (0) and second is `index % 256`."""
    pixels = np.random.default_rng(index).integers(0, 256, size=(resolution, resolution), dtype=np.uint8)
    pixels.flat[0] = 0
    pixels.flat[1] = index % 256
    return pixels


def write_pathfinder_release(
    root: Path,
    *,
    resolution: int = 32,
    contour_length: int = 14,
    num_images: int = 20,
    images_per_folder: int = 10,
    empty: Sequence[int] = (),
    corrupt: Sequence[int] = (),
) -> Path:
    """`pathfinder<res>/<contour folder>/imgs/<b>/sample_<i>.png` + text `metadata/<b>.npy` files.

    Image i has label i % 2; indices in `empty` are written as 0-byte files (as one file in the
    real release) and those in `corrupt` as truncated PNGs. Returns the contour folder.
    """
    folder = root / pathfinder_folder(resolution, contour_length)
    (folder / "metadata").mkdir(parents=True, exist_ok=True)
    metadata: dict[int, list[str]] = {}
    for index in range(num_images):
        batch, name = index // images_per_folder, f"sample_{index % images_per_folder}.png"
        image_path = folder / "imgs" / str(batch) / name
        image_path.parent.mkdir(parents=True, exist_ok=True)
        data = png_bytes(pathfinder_image(index, resolution))
        if index in empty:
            data = b""
        elif index in corrupt:
            data = data[: len(data) // 2]
        image_path.write_bytes(data)
        metadata.setdefault(batch, []).append(f"imgs/{batch} {name} 0 {index % 2} 2 1.5 {contour_length} 1")
    for batch, lines in metadata.items():
        (folder / "metadata" / f"{batch}.npy").write_text("\n".join(lines) + "\n")
    return folder


# The schema metadata the Hub's own parquet files carry (datasets reads `img` as an Image feature).
CIFAR_HUB_FEATURES = {
    "img": {"_type": "Image"},
    "label": {"names": [str(label) for label in range(10)], "_type": "ClassLabel"},
}
CIFAR_HUB_METADATA = json.dumps({"info": {"features": CIFAR_HUB_FEATURES}})


def write_parquet(path: Path, columns: dict[str, pa.Array], metadata: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    if metadata is not None:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)
    return path


def write_imdb_parquet(folder: Path, splits: dict[str, Sequence[tuple[str, int]]]) -> Path:
    """`folder/plain_text/<split>-00000-of-00001.parquet` with columns `text`, `label`."""
    for split, rows in splits.items():
        write_parquet(
            folder / HUB_CONFIG / f"{split}-00000-of-00001.parquet",
            {
                "text": pa.array([text for text, _ in rows], pa.string()),
                "label": pa.array([label for _, label in rows], pa.int64()),
            },
        )
    return folder


def cifar_image(index: int) -> np.ndarray:
    """A deterministic 32x32 RGB image; its top-left pixel is black."""
    pixels = np.random.default_rng(index).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    pixels[0, 0] = 0
    return pixels


def write_cifar_parquet(
    folder: Path, splits: dict[str, Sequence[tuple[bytes, int]]], *, hub_metadata: bool = False
) -> Path:
    """`folder/plain_text/<split>-00000-of-00001.parquet`; `img` is a struct of PNG bytes and path.

    hub_metadata adds the Hub's feature description, as in the files of `uoft-cs/cifar10`.
    """
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for split, rows in splits.items():
        images = [{"bytes": data, "path": f"{split}_{i}.png"} for i, (data, _) in enumerate(rows)]
        write_parquet(
            folder / HUB_CONFIG / f"{split}-00000-of-00001.parquet",
            {
                "img": pa.array(images, image_type),
                "label": pa.array([label for _, label in rows], pa.int64()),
            },
            {"huggingface": CIFAR_HUB_METADATA} if hub_metadata else None,
        )
    return folder


def cifar_rows(count: int, *, first_index: int = 0) -> list[tuple[bytes, int]]:
    """`count` valid CIFAR rows, labels cycling 0..9."""
    return [(png_bytes(cifar_image(first_index + i)), (first_index + i) % 10) for i in range(count)]
