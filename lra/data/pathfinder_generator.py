"""Pathfinder data sets in the LRA release layout, rendered in parallel and resumable per folder."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import Progress

from lra.atomic import write_atomic
from lra.data.layout import pathfinder_folder
from lra.data.pathfinder_contours import (
    PathfinderSample,
    PathfinderSettings,
    pathfinder_settings,
    render_image,
)

PROGRESS_MIN_IMAGES = 10_000


@dataclass(frozen=True)
class _FolderTask:
    """One `imgs/<folder>` directory and its metadata file: the unit of work handed to a process."""

    root: Path
    settings: PathfinderSettings
    seed: int
    folder: int
    first_index: int
    count: int


def _metadata_row(task: _FolderTask, number: int, sample: PathfinderSample) -> str:
    # The original's fields: folder, file, number, label, continuity, contour length, distractor length,
    # paddle length, paddle thickness, paddle margin, number of paddle contrasts.
    s = task.settings
    return (
        f"imgs/{task.folder} sample_{number}.png {number} {sample.label} {s.continuity} {s.contour_length} "
        f"{s.distractor_length} {s.paddle_length} {s.paddle_thickness} {sample.margin} 1\n"
    )


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _finished_folder(metadata_path: Path, task: _FolderTask) -> tuple[int, int, bool]:
    """Count a folder an earlier run completed, refusing one that was made with other settings."""
    rows = [row.split(" ") for row in metadata_path.read_text().splitlines()]
    expected = [[f"imgs/{task.folder}", f"sample_{number}.png"] for number in range(task.count)]
    if [row[:2] for row in rows] != expected or any(len(row) < 4 for row in rows):
        raise ValueError(
            f"{metadata_path} lists {len(rows)} images where this run puts {task.count} (imgs/"
            f"{task.folder}/sample_0.png ...): it was made with other settings; delete {task.root}"
            " or pick another data_dir"
        )
    return len(rows), sum(row[3] == "1" for row in rows), True


def _write_folder(task: _FolderTask) -> tuple[int, int, bool]:
    """Render and write one folder; returns (images, positives, whether an earlier run's folder was kept)."""
    metadata_path = task.root / "metadata" / f"{task.folder}.npy"
    if metadata_path.exists():
        return _finished_folder(metadata_path, task)
    image_dir = task.root / "imgs" / str(task.folder)
    image_dir.mkdir(parents=True, exist_ok=True)
    for leftover in image_dir.glob(".*.tmp"):  # from an interrupted run
        leftover.unlink()
    rows, positives = [], 0
    for number in range(task.count):
        sample = render_image(task.settings, task.seed, task.first_index + number)
        write_atomic(image_dir / f"sample_{number}.png", _png_bytes(sample.image), sync=False)
        rows.append(_metadata_row(task, number, sample))
        positives += sample.label
    # Written last: its presence means every image of the folder is on disk.
    metadata_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(metadata_path, "".join(rows).encode())
    return task.count, positives, False


def _require(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def generate_pathfinder(
    data_dir: Path,
    *,
    resolution: int = 32,
    contour_length: int = 14,
    num_images: int = 200_000,
    seed: int = 0,
    workers: int | None = None,
    images_per_folder: int = 1000,
) -> dict[str, float]:
    """Write `<data_dir>/pathfinder<resolution>/<difficulty>/{imgs/<b>/sample_<i>.png, metadata/<b>.npy}`.

    Image i depends only on (seed, i), so any number of workers gives the same files. A folder whose
    metadata file exists was finished by an earlier run and is kept as it is.
    """
    settings = pathfinder_settings(resolution, contour_length)
    workers = (os.cpu_count() or 1) if workers is None else workers
    for name, value, minimum in (
        ("num_images", num_images, 1),
        ("images_per_folder", images_per_folder, 1),
        ("workers", workers, 1),
        ("seed", seed, 0),
    ):
        _require(name, value, minimum)
    root = Path(data_dir) / pathfinder_folder(resolution, contour_length)
    tasks = [
        _FolderTask(root, settings, seed, folder, start, min(images_per_folder, num_images - start))
        for folder, start in enumerate(range(0, num_images, images_per_folder))
    ]
    started = time.perf_counter()
    results = _run(tasks, min(workers, len(tasks)), show_progress=num_images >= PROGRESS_MIN_IMAGES)
    seconds = time.perf_counter() - started
    generated = sum(images for images, _, kept in results if not kept)
    return {
        "images": sum(images for images, _, _ in results),
        "positives": sum(positives for _, positives, _ in results),
        "generated": generated,
        "kept_folders": sum(kept for _, _, kept in results),
        "seconds": seconds,
        "images_per_second": generated / seconds if seconds > 0 else 0.0,
    }


def _run(tasks: list[_FolderTask], workers: int, show_progress: bool) -> list[tuple[int, int, bool]]:
    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(Progress(transient=True, disable=not show_progress))
        bar = progress.add_task("pathfinder images", total=sum(task.count for task in tasks))
        if workers > 1:
            # Spawned, not forked: safe next to threads (torch, data loaders) in the calling process.
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
            outcomes = pool.imap_unordered(_write_folder, tasks)
        else:
            outcomes = map(_write_folder, tasks)
        results = []
        for outcome in outcomes:
            results.append(outcome)
            progress.advance(bar, outcome[0])
        return results
