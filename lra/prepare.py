"""`python -m lra.prepare`: download or generate a task's data, then check it is where it is read."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lra.data.download import (
    LRA_RELEASE_URL,
    DownloadError,
    download,
    extract,
    fetch_hub_dataset,
)
from lra.data.layout import (
    CONTOUR_FOLDERS,
    DEFAULT_CONTOUR_LENGTH,
    GENERATED_TASKS,
    HUB_LOCAL_FOLDERS,
    HUB_REPOSITORIES,
    LISTOPS_FILES,
    PATHFINDER_RESOLUTIONS,
    RETRIEVAL_FILES,
    TASKS,
    DataError,
    locate_task_data,
    pathfinder_folder,
)

ARCHIVE_NAME = "lra_release.gz"
LISTOPS_OPTIONS = ("num_train", "num_val", "num_test", "min_length", "max_length", "max_depth", "max_args")
PATHFINDER_OPTIONS = ("resolution", "num_images", "workers")
GENERATOR_OPTIONS = (*LISTOPS_OPTIONS, *PATHFINDER_OPTIONS, "seed")
TASK_BY_RESOLUTION = {resolution: task for task, resolution in PATHFINDER_RESOLUTIONS.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lra.prepare",
        description="Download (or, with --generate, make) the data of an LRA task and check its layout.",
    )
    parser.add_argument("task", choices=(*TASKS, "all"), help="the task to prepare, or all of them")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder the data modules read from")
    parser.add_argument("--generate", action="store_true", help="make listops/pathfinder/pathx data locally")
    parser.add_argument(
        "--contour-length", type=int, choices=sorted(CONTOUR_FOLDERS), help="Pathfinder difficulty"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    # Generator options default to None so that only what the user gave is passed on and the
    # generators' own defaults apply.
    generation = parser.add_argument_group("generation (with --generate)")
    generation.add_argument("--seed", type=int)
    for name in LISTOPS_OPTIONS:
        generation.add_argument("--" + name.replace("_", "-"), type=int, help="listops")
    generation.add_argument("--resolution", type=int, choices=sorted(TASK_BY_RESOLUTION), help="pathfinder")
    generation.add_argument("--num-images", type=int, help="pathfinder/pathx")
    generation.add_argument("--workers", type=int, help="pathfinder/pathx")
    return parser


def given_options(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def check_options(args: argparse.Namespace) -> None:
    """ValueError for option combinations that would be silently ignored."""
    flag = {name: "--" + name.replace("_", "-") for name in GENERATOR_OPTIONS}
    if args.contour_length is not None and args.task not in ("pathfinder", "pathx", "all"):
        raise ValueError(f"--contour-length applies to pathfinder and pathx, not {args.task}")
    if not args.generate:
        stray = given_options(args, GENERATOR_OPTIONS)
        if stray:
            raise ValueError(f"{', '.join(flag[name] for name in stray)} only apply with --generate")
        return
    if args.task not in GENERATED_TASKS:
        raise ValueError(
            f"--generate works for {', '.join(GENERATED_TASKS)}; {args.task} has no generator, "
            f"download it with `python -m lra.prepare {args.task} --data-dir {args.data_dir}`"
        )
    stray = given_options(args, PATHFINDER_OPTIONS if args.task == "listops" else LISTOPS_OPTIONS)
    if stray:
        raise ValueError(f"{', '.join(flag[name] for name in stray)} do not apply to {args.task}")
    if args.task == "pathx" and args.resolution not in (None, PATHFINDER_RESOLUTIONS["pathx"]):
        raise ValueError("pathx is Pathfinder at 128x128; drop --resolution or use the pathfinder task")


def default_of(function: Callable[..., Any], name: str) -> Any:
    """A keyword's default as the function itself declares it (never written down twice)."""
    return inspect.signature(function).parameters[name].default


def generate_listops_data(args: argparse.Namespace) -> dict[str, Path]:
    # Imported here: the generators are needed only with --generate.
    from lra.data.listops_generator import generate_listops

    generate_listops(args.data_dir, **given_options(args, (*LISTOPS_OPTIONS, "seed")))
    return {"listops": locate_task_data("listops", args.data_dir)}


def generate_pathfinder_data(args: argparse.Namespace) -> dict[str, Path]:
    from lra.data.pathfinder_generator import generate_pathfinder

    options = given_options(args, (*PATHFINDER_OPTIONS, "seed", "contour_length"))
    if args.task == "pathx":
        options["resolution"] = PATHFINDER_RESOLUTIONS["pathx"]
    generate_pathfinder(args.data_dir, **options)
    resolution = options.get("resolution", default_of(generate_pathfinder, "resolution"))
    contour_length = options.get("contour_length", default_of(generate_pathfinder, "contour_length"))
    task = TASK_BY_RESOLUTION[resolution]
    return {task: locate_task_data(task, args.data_dir, contour_length=contour_length)}


GENERATORS = {
    "listops": generate_listops_data,
    "pathfinder": generate_pathfinder_data,
    "pathx": generate_pathfinder_data,
}


def archive_prefixes(task: str, contour_length: int) -> list[str]:
    """The release paths a task needs, as prefixes for `extract`."""
    if task == "listops":
        return [str(Path(LISTOPS_FILES["train"]).parent) + "/"]
    if task == "retrieval":
        return sorted({str(Path(path).parent) + "/new_aan_pairs." for path in RETRIEVAL_FILES.values()})
    return [pathfinder_folder(PATHFINDER_RESOLUTIONS[task], contour_length) + "/"]


def is_prepared(task: str, data_dir: Path, contour_length: int) -> bool:
    try:
        locate_task_data(task, data_dir, contour_length=contour_length)
    except DataError:
        return False
    return True


def download_data(
    tasks: Sequence[str], data_dir: Path, contour_length: int, *, progress: bool
) -> dict[str, Path]:
    """Fetch whatever the tasks lack (Hub datasets, release archive members), then locate them."""
    from_archive = []
    for task in tasks:
        if is_prepared(task, data_dir, contour_length):
            continue
        if task in HUB_REPOSITORIES:
            fetch_hub_dataset(HUB_REPOSITORIES[task], data_dir / HUB_LOCAL_FOLDERS[task])
        else:
            from_archive.append(task)
    if from_archive:
        data_dir.mkdir(parents=True, exist_ok=True)
        archive = download(LRA_RELEASE_URL, data_dir / ARCHIVE_NAME, progress=progress)
        prefixes = [prefix for task in from_archive for prefix in archive_prefixes(task, contour_length)]
        extract(archive, data_dir, prefixes, progress=progress)
    return {task: locate_task_data(task, data_dir, contour_length=contour_length) for task in tasks}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse has printed usage (or --help) already
        return int(exit_request.code or 0)
    try:
        check_options(args)
        if args.generate:
            locations = GENERATORS[args.task](args)
        else:
            tasks = TASKS if args.task == "all" else (args.task,)
            contour_length = args.contour_length or DEFAULT_CONTOUR_LENGTH
            locations = download_data(tasks, args.data_dir, contour_length, progress=not args.quiet)
    except (DataError, DownloadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for task, folder in locations.items():
        print(f"{task}: ready in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
