"""Tests of the Pathfinder generator: release layout, metadata, images, labels, determinism, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lra.data.pathfinder import read_pathfinder
from lra.data.pathfinder_contours import image_label, pathfinder_settings, render_image
from lra.data.pathfinder_generator import generate_pathfinder

HARD_32 = "pathfinder32/curv_contour_length_14"
HARD_128 = "pathfinder128/curv_contour_length_14"


def read_rows(folder: Path) -> list[list[str]]:
    rows = []
    for metadata in sorted((folder / "metadata").glob("*.npy"), key=lambda path: int(path.stem)):
        text = metadata.read_text()
        assert text.endswith("\n"), (
            f"{metadata} must end with a newline (the LRA reader drops the last split)"
        )
        rows += [line.split(" ") for line in text.splitlines()]
    return rows


def file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def brightest_blobs(image: np.ndarray, radius: int) -> list[tuple[int, int]]:
    """Centres of the two brightest (2r+1)^2 windows that lie apart: the markers are the bulkiest shapes."""
    padded = np.pad(image.astype(np.float64), radius)
    size = image.shape[0]
    score = sum(
        padded[radius + dy : radius + dy + size, radius + dx : radius + dx + size]
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
    )
    rows, cols = np.indices(score.shape)
    found = []
    for _ in range(2):
        row, col = np.unravel_index(int(np.argmax(score)), score.shape)
        found.append((int(row), int(col)))
        score[(rows - row) ** 2 + (cols - col) ** 2 <= (2 * radius + 1) ** 2] = -1.0
    return found


def dilate(binary: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(binary, radius)
    out = np.zeros_like(binary)
    size = binary.shape[0]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                out |= padded[radius + dy : radius + dy + size, radius + dx : radius + dx + size]
    return out


def connected(binary: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> bool:
    """Breadth-first search over 8-connected foreground pixels."""
    if not (binary[start] and binary[goal]):
        return False
    seen = np.zeros_like(binary)
    seen[start] = True
    frontier = [start]
    while frontier:
        row, col = frontier.pop()
        if (row, col) == goal:
            return True
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                y, x = row + dy, col + dx
                if 0 <= y < binary.shape[0] and 0 <= x < binary.shape[1] and binary[y, x] and not seen[y, x]:
                    seen[y, x] = True
                    frontier.append((y, x))
    return False


@pytest.fixture(scope="module")
def small_32(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    data_dir = tmp_path_factory.mktemp("pf32")
    stats = generate_pathfinder(data_dir, num_images=40, seed=3, workers=1, images_per_folder=16)
    return data_dir, stats


@pytest.fixture(scope="module")
def small_128(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    data_dir = tmp_path_factory.mktemp("pf128")
    stats = generate_pathfinder(
        data_dir, resolution=128, num_images=24, seed=5, workers=1, images_per_folder=12
    )
    return data_dir, stats


def test_layout_and_file_names(small_32: tuple[Path, dict[str, float]]) -> None:
    data_dir, stats = small_32
    folder = data_dir / HARD_32
    assert sorted(path.name for path in (folder / "metadata").iterdir()) == ["0.npy", "1.npy", "2.npy"]
    counts = {"0": 16, "1": 16, "2": 8}
    assert sorted(path.name for path in (folder / "imgs").iterdir()) == sorted(counts)
    for name, count in counts.items():
        assert sorted(path.name for path in (folder / "imgs" / name).iterdir()) == sorted(
            f"sample_{number}.png" for number in range(count)
        )
    assert stats["images"] == 40 and stats["generated"] == 40 and stats["kept_folders"] == 0
    assert stats["seconds"] > 0 and stats["images_per_second"] > 0


def test_metadata_rows_parse_like_the_release(small_32: tuple[Path, dict[str, float]]) -> None:
    folder = small_32[0] / HARD_32
    rows = read_rows(folder)
    assert len(rows) == 40
    for index, row in enumerate(rows):
        batch, number = divmod(index, 16)
        assert row[:3] == [f"imgs/{batch}", f"sample_{number}.png", str(number)]
        assert row[3] in ("0", "1")
        # continuity, contour length, distractor length, paddle length, thickness, margin, contrasts
        assert row[4:] == ["1.0", "14", "4", "2", "0.5", "1", "1"]
        assert (folder / row[0] / row[1]).is_file()


def test_images_are_8_bit_grayscale(
    small_32: tuple[Path, dict[str, float]], small_128: tuple[Path, dict[str, float]]
) -> None:
    for data_dir, folder, size in ((small_32[0], HARD_32, 32), (small_128[0], HARD_128, 128)):
        for row in read_rows(data_dir / folder):
            with Image.open(data_dir / folder / row[0] / row[1]) as image:
                assert image.format == "PNG" and image.mode == "L" and image.size == (size, size)
                pixels = np.asarray(image)
            assert pixels.dtype == np.uint8 and pixels.max() == 255 and pixels.min() == 0


def test_labels_are_exactly_balanced(small_32: tuple[Path, dict[str, float]]) -> None:
    labels = [int(row[3]) for row in read_rows(small_32[0] / HARD_32)]
    assert sum(labels) == 20 and small_32[1]["positives"] == 20
    assert all(image_label(11, 2 * pair) + image_label(11, 2 * pair + 1) == 1 for pair in range(50))


def test_the_projects_loader_reads_the_output(small_32: tuple[Path, dict[str, float]]) -> None:
    split = read_pathfinder(small_32[0] / HARD_32, 32)
    assert len(split) == 40 and split.skipped == 0
    assert split.labels.tolist() == [int(row[3]) for row in read_rows(small_32[0] / HARD_32)]
    assert all(len(split.sequence(index)) == 32 * 32 for index in range(len(split)))


def test_same_seed_gives_identical_bytes_for_any_worker_count(tmp_path: Path) -> None:
    arguments = dict(num_images=12, seed=7, images_per_folder=4)
    generate_pathfinder(tmp_path / "one", workers=1, **arguments)
    generate_pathfinder(tmp_path / "again", workers=1, **arguments)
    generate_pathfinder(tmp_path / "two", workers=2, **arguments)
    reference = file_bytes(tmp_path / "one")
    assert len(reference) == 12 + 3
    assert file_bytes(tmp_path / "again") == reference
    assert file_bytes(tmp_path / "two") == reference
    generate_pathfinder(tmp_path / "other", workers=1, **{**arguments, "seed": 8})
    assert file_bytes(tmp_path / "other") != reference


def test_difficulty_folders(tmp_path: Path) -> None:
    for length, name, distractor in ((6, "curv_baseline", "2"), (9, "curv_contour_length_9", "3")):
        generate_pathfinder(tmp_path, contour_length=length, num_images=4, workers=1)
        rows = read_rows(tmp_path / "pathfinder32" / name)
        assert len(rows) == 4 and all(row[5] == str(length) and row[6] == distractor for row in rows)


def test_settings_follow_the_lra_arguments() -> None:
    hard = pathfinder_settings(32, 14)
    assert (hard.distractor_length, hard.distractor_count, hard.seed_distance, hard.marker_radius) == (
        4,
        5,
        7,
        1.5,
    )
    assert pathfinder_settings(32, 6).distractor_count == 10
    pathx = pathfinder_settings(128, 14)
    assert (pathx.margins, pathx.paddle_thickness, pathx.continuity, pathx.distractor_count) == (
        (2, 3),
        1.5,
        1.8,
        8,
    )


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(resolution=64), "resolution must be one of [32, 128]"),
        (dict(contour_length=10), "contour_length must be one of [6, 9, 14]"),
        (dict(num_images=0), "num_images must be an integer >= 1"),
        (dict(seed=-1), "seed must be an integer >= 0"),
        (dict(workers=0), "workers must be an integer >= 1"),
        (dict(images_per_folder=0), "images_per_folder must be an integer >= 1"),
    ],
    ids=["resolution", "contour_length", "num_images", "seed", "workers", "images_per_folder"],
)
def test_bad_arguments_are_refused(tmp_path: Path, arguments: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        generate_pathfinder(tmp_path, **{"num_images": 2, **arguments})
    assert not any(tmp_path.iterdir())


def test_a_rerun_keeps_finished_folders_and_redoes_interrupted_ones(tmp_path: Path) -> None:
    arguments = dict(num_images=6, seed=1, workers=1, images_per_folder=3)
    generate_pathfinder(tmp_path, **arguments)
    folder = tmp_path / HARD_32
    reference = file_bytes(tmp_path)
    # An interrupted run: folder 1 has no metadata yet, a half-written temporary file and a stray image.
    (folder / "metadata" / "1.npy").unlink()
    (folder / "imgs" / "1" / ".sample_2.png.99.tmp").write_bytes(b"half")
    (folder / "imgs" / "1" / "sample_2.png").write_bytes(b"")
    stats = generate_pathfinder(tmp_path, **arguments)
    assert (stats["kept_folders"], stats["generated"], stats["images"], stats["positives"]) == (1, 3, 6, 3)
    assert file_bytes(tmp_path) == reference


def test_a_folder_made_with_other_settings_is_refused(tmp_path: Path) -> None:
    generate_pathfinder(tmp_path, num_images=4, workers=1, images_per_folder=4)
    with pytest.raises(ValueError, match=r"0\.npy lists 4 images where this run puts 2"):
        generate_pathfinder(tmp_path, num_images=4, workers=1, images_per_folder=2)


def test_bookkeeping_agrees_with_the_label() -> None:
    settings = pathfinder_settings(32, 14)
    for index in range(40):
        sample = render_image(settings, 2, index)
        origin, terminal = sample.marker_contours
        assert sample.label == image_label(2, index) == int(origin == terminal)
        # One marker on the tail of one contour, the other on the head of the same or the other one.
        assert sample.markers == (sample.contour_ends[origin][0], sample.contour_ends[terminal][1])
        assert sample.markers[0] != sample.markers[1]
        assert all(sample.image[marker] >= 128 for marker in sample.markers)


def test_markers_found_in_the_pixels_are_the_reported_ones() -> None:
    settings = pathfinder_settings(32, 14)
    samples = [render_image(settings, 4, index) for index in range(40)]
    agree = sum(sorted(brightest_blobs(sample.image, 1)) == sorted(sample.markers) for sample in samples)
    assert agree >= 38


def test_positives_are_connected_far_more_often_than_negatives(
    small_128: tuple[Path, dict[str, float]],
) -> None:
    """Independent of the generator's bookkeeping: markers from the pixels, labels from the metadata.

    Dilating the drawn pixels by 3 bridges the gaps (2 x margin) between the paddles of one contour,
    so the two markers of a positive must end up in one component. A negative's contours may pass
    close to each other or to a distractor, so they are sometimes joined too; only the rate differs.
    At 32x32 contours run as close to each other as the gaps inside a contour, so no threshold
    separates them there, and this check is made on Path-X images.
    """
    data_dir = small_128[0]
    joined = {0: [], 1: []}
    for row in read_rows(data_dir / HARD_128):
        pixels = np.asarray(Image.open(data_dir / HARD_128 / row[0] / row[1]))
        first, second = brightest_blobs(pixels, 3)
        joined[int(row[3])].append(connected(dilate(pixels > 0, 3), first, second))
    assert len(joined[1]) == len(joined[0]) == 12
    assert all(joined[1])
    assert sum(joined[0]) <= 8
