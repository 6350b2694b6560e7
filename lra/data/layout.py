"""Where each task's files live on disk, and the error that says how to get them."""

from __future__ import annotations

from pathlib import Path

# The generators write straight into data_dir; the archive unpacks into one or two nested folders.
RELEASE_NESTINGS = (".", "lra_release", "lra_release/lra_release")

LISTOPS_FILES = {
    "train": "listops-1000/basic_train.tsv",
    "val": "listops-1000/basic_val.tsv",
    "test": "listops-1000/basic_test.tsv",
}
RETRIEVAL_FILES = {
    "train": "tsv_data/new_aan_pairs.train.tsv",
    "val": "tsv_data/new_aan_pairs.eval.tsv",
    "test": "tsv_data/new_aan_pairs.test.tsv",
}
CONTOUR_FOLDERS = {6: "curv_baseline", 9: "curv_contour_length_9", 14: "curv_contour_length_14"}
# The benchmark's "hard" setting, used by Pathfinder and Path-X alike.
DEFAULT_CONTOUR_LENGTH = 14
PATHFINDER_RESOLUTIONS = {"pathfinder": 32, "pathx": 128}

# Text and Image come from the Hugging Face Hub, not from the release archive.
HUB_REPOSITORIES = {"text": "stanfordnlp/imdb", "image": "uoft-cs/cifar10"}
HUB_LOCAL_FOLDERS = {"text": "imdb", "image": "cifar10"}
HUB_CONFIG = "plain_text"
HUB_SPLITS = ("train", "test")

TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")
GENERATED_TASKS = ("listops", "pathfinder", "pathx")


class DataError(Exception):
    """Data that is missing or malformed; the message says what is wrong and what to do."""


def pathfinder_folder(resolution: int, contour_length: int) -> str:
    """The release-relative folder of one Pathfinder difficulty, e.g. `pathfinder32/curv_baseline`."""
    if contour_length not in CONTOUR_FOLDERS:
        raise ValueError(
            f"contour_length={contour_length!r} is not one of {sorted(CONTOUR_FOLDERS)} "
            "(6 = curv_baseline, 9 = curv_contour_length_9, 14 = curv_contour_length_14)"
        )
    return f"pathfinder{resolution}/{CONTOUR_FOLDERS[contour_length]}"


def release_paths(task: str, contour_length: int = DEFAULT_CONTOUR_LENGTH) -> list[str]:
    """The release-relative paths that must exist for an archive task."""
    if task == "listops":
        return list(LISTOPS_FILES.values())
    if task == "retrieval":
        return list(RETRIEVAL_FILES.values())
    if task in PATHFINDER_RESOLUTIONS:
        return [pathfinder_folder(PATHFINDER_RESOLUTIONS[task], contour_length) + "/metadata"]
    raise ValueError(f"task {task!r} is not part of the lra_release archive")


def prepare_command(task: str, data_dir: Path, *, contour_length: int | None = None) -> str:
    """The `lra.prepare` command that downloads (or, with --generate, makes) a task's data."""
    command = f"python -m lra.prepare {task} --data-dir {data_dir}"
    if contour_length is not None and contour_length != DEFAULT_CONTOUR_LENGTH:
        command += f" --contour-length {contour_length}"
    return command


def how_to_prepare(task: str, data_dir: Path, *, contour_length: int | None = None) -> str:
    """One sentence naming the command(s) that produce the task's data."""
    command = prepare_command(task, data_dir, contour_length=contour_length)
    if task in GENERATED_TASKS:
        return f"Run `{command}` to download it, or `{command} --generate` to make it locally."
    return f"Run `{command}` (needs network access to download it)."


def find_release_root(data_dir: Path, task: str, *, contour_length: int = DEFAULT_CONTOUR_LENGTH) -> Path:
    """The first of data_dir, data_dir/lra_release, data_dir/lra_release/lra_release holding the task."""
    required = release_paths(task, contour_length)
    candidates = [data_dir / nesting for nesting in RELEASE_NESTINGS]
    for root in candidates:
        if all((root / relative).exists() for relative in required):
            return root
    searched = ", ".join(str(root) for root in candidates)
    hint_length = contour_length if task in PATHFINDER_RESOLUTIONS else None
    raise DataError(
        f"{task} data not found: expected {data_dir / required[0]} "
        f"(searched {searched}). {how_to_prepare(task, data_dir, contour_length=hint_length)}"
    )


def hub_parquet_files(data_dir: Path, task: str) -> dict[str, list[Path]] | None:
    """The local copy of a Hub dataset as {split: parquet files}, or None when there is no copy.

    A folder with some splits but not all is an error rather than a silent fall-back to the Hub.
    """
    folder = data_dir / HUB_LOCAL_FOLDERS[task]
    if not folder.exists():
        return None
    files = {split: sorted((folder / HUB_CONFIG).glob(f"{split}-*.parquet")) for split in HUB_SPLITS}
    missing = [split for split, paths in files.items() if not paths]
    if missing:
        expected = ", ".join(str(folder / HUB_CONFIG / f"{split}-*.parquet") for split in missing)
        raise DataError(
            f"{folder} is an incomplete copy of {HUB_REPOSITORIES[task]}: no files match {expected}. "
            f"Delete the folder and run `{prepare_command(task, data_dir)}` again."
        )
    return files


def locate_task_data(task: str, data_dir: Path, *, contour_length: int = DEFAULT_CONTOUR_LENGTH) -> Path:
    """Where a task's prepared files are; DataError (naming the prepare command) when absent."""
    if task in HUB_LOCAL_FOLDERS:
        if hub_parquet_files(data_dir, task) is None:
            raise DataError(
                f"{task} data not found: expected {data_dir / HUB_LOCAL_FOLDERS[task] / HUB_CONFIG}"
                f"/{{train,test}}-*.parquet. {how_to_prepare(task, data_dir)}"
            )
        return data_dir / HUB_LOCAL_FOLDERS[task] / HUB_CONFIG
    root = find_release_root(data_dir, task, contour_length=contour_length)
    return root / Path(release_paths(task, contour_length)[0]).parent
