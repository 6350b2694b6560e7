"""`python -m lra.prepare`: option checks, error exits, downloads (faked) and generation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lra.data.pathfinder_generator
import lra.prepare
from lra.data.download import DownloadError
from lra.data.listops import ListOpsDataModule
from lra.data.pathfinder import PathfinderDataModule
from lra.prepare import build_parser, main
from tests.data.fixtures import (
    write_imdb_parquet,
    write_listops_release,
    write_pathfinder_release,
    write_retrieval_release,
)


def test_parser_leaves_generator_options_unset() -> None:
    args = build_parser().parse_args(["listops", "--data-dir", "d", "--generate", "--num-train", "8"])
    assert args.num_train == 8 and args.seed is None and args.max_depth is None
    assert args.data_dir == Path("d")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["text", "--generate"], "text has no generator"),
        (["all", "--generate"], "all has no generator"),
        (["listops", "--num-train", "5"], "--num-train only apply with --generate"),
        (["listops", "--generate", "--num-images", "5"], "--num-images do not apply to listops"),
        (["pathfinder", "--generate", "--max-depth", "3"], "--max-depth do not apply to pathfinder"),
        (["pathx", "--generate", "--resolution", "32"], "pathx is Pathfinder at 128x128"),
        (["retrieval", "--contour-length", "9"], "--contour-length applies to pathfinder"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path: Path, capsys, argv: list[str], complaint: str) -> None:
    code = main([*argv, "--data-dir", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2 and complaint in error
    assert error.count("\n") == 1 and "Traceback" not in error


def test_download_error_exits_2(tmp_path: Path, capsys, monkeypatch) -> None:
    def no_network(url: str, dest: Path, *, progress: bool) -> Path:
        raise DownloadError("could not reach storage.googleapis.com")

    monkeypatch.setattr(lra.prepare, "download", no_network)
    assert main(["listops", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: could not reach storage.googleapis.com\n"


def test_argparse_errors_exit_2(capsys) -> None:
    assert main(["nonsense", "--data-dir", "d"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["listops"]) == 2  # --data-dir is required


def test_present_data_is_only_verified(tmp_path: Path, capsys, monkeypatch) -> None:
    write_listops_release(tmp_path / "lra_release")
    monkeypatch.setattr(lra.prepare, "download", pytest.fail)
    assert main(["listops", "--data-dir", str(tmp_path)]) == 0
    assert f"listops: ready in {tmp_path / 'lra_release' / 'listops-1000'}" in capsys.readouterr().out


def test_download_all_fetches_once_then_only_verifies(tmp_path: Path, monkeypatch, capsys) -> None:
    calls = []

    def fake_download(url: str, dest: Path, *, progress: bool) -> Path:
        calls.append(("download", url, dest))
        return dest

    def fake_extract(archive: Path, dest_dir: Path, prefixes: list[str], *, progress: bool) -> int:
        calls.append(("extract", archive, dest_dir, tuple(prefixes)))
        write_listops_release(dest_dir)
        write_retrieval_release(dest_dir)
        write_pathfinder_release(dest_dir, num_images=2)
        write_pathfinder_release(dest_dir, resolution=128, num_images=2)
        return 12

    def fake_fetch(repo_id: str, dest_dir: Path) -> Path:
        calls.append(("fetch", repo_id, dest_dir))
        write_imdb_parquet(dest_dir, {"train": [("a", 0)], "test": [("b", 1)]})  # any parquet will do
        return dest_dir / "plain_text"

    monkeypatch.setattr(lra.prepare, "download", fake_download)
    monkeypatch.setattr(lra.prepare, "extract", fake_extract)
    monkeypatch.setattr(lra.prepare, "fetch_hub_dataset", fake_fetch)
    assert main(["all", "--data-dir", str(tmp_path), "--quiet"]) == 0
    archive = tmp_path / "lra_release.gz"
    prefixes = (
        "listops-1000/",
        "tsv_data/new_aan_pairs.",
        "pathfinder32/curv_contour_length_14/",
        "pathfinder128/curv_contour_length_14/",
    )
    assert calls == [
        ("fetch", "stanfordnlp/imdb", tmp_path / "imdb"),
        ("fetch", "uoft-cs/cifar10", tmp_path / "cifar10"),
        ("download", lra.prepare.LRA_RELEASE_URL, archive),
        ("extract", archive, tmp_path, prefixes),
    ]
    printed = capsys.readouterr().out
    assert f"retrieval: ready in {tmp_path / 'tsv_data'}" in printed
    assert f"pathx: ready in {tmp_path / 'pathfinder128' / 'curv_contour_length_14'}" in printed
    calls.clear()
    assert main(["all", "--data-dir", str(tmp_path), "--quiet"]) == 0
    assert calls == []  # everything is in place: nothing is downloaded twice


def test_generate_passes_only_given_options(tmp_path: Path, monkeypatch) -> None:
    received = {}

    def fake_generate(
        data_dir: Path, *, resolution: int = 32, contour_length: int = 14, seed: int = 0
    ) -> dict:
        received.update(resolution=resolution, contour_length=contour_length, seed=seed)
        write_pathfinder_release(data_dir, resolution=resolution, contour_length=contour_length, num_images=2)
        return {}

    monkeypatch.setattr(lra.data.pathfinder_generator, "generate_pathfinder", fake_generate)
    assert main(["pathx", "--generate", "--data-dir", str(tmp_path), "--contour-length", "6"]) == 0
    assert received == {"resolution": 128, "contour_length": 6, "seed": 0}


def test_generate_tiny_listops_end_to_end(tmp_path: Path, capsys) -> None:
    sizes = ["--num-train", "6", "--num-val", "2", "--num-test", "2"]
    lengths = ["--min-length", "10", "--max-length", "60", "--seed", "3"]
    argv = ["listops", "--generate", "--data-dir", str(tmp_path), *sizes, *lengths]
    assert main(argv) == 0
    assert "listops: ready in" in capsys.readouterr().out
    module = ListOpsDataModule(data_dir=tmp_path, batch_size=3, max_length=60)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["inputs"].shape[0] == 3 and batch["inputs"].shape[1] <= 60
    assert len(module.datasets["train"]) == 6 and len(module.datasets["val"]) == 2


def test_runs_as_a_module(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lra.prepare", "retrieval", "--generate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: --generate works for") and "Traceback" not in result.stderr


def test_generate_tiny_pathfinder_end_to_end(tmp_path: Path, capsys) -> None:
    argv = ["pathfinder", "--generate", "--data-dir", str(tmp_path), "--num-images", "12", "--seed", "1"]
    assert main([*argv, "--workers", "1"]) == 0
    folder = tmp_path / "pathfinder32" / "curv_contour_length_14"
    assert f"pathfinder: ready in {folder}" in capsys.readouterr().out
    module = PathfinderDataModule(data_dir=tmp_path, batch_size=4)
    module.setup(None)
    assert [len(module.datasets[split]) for split in ("train", "val", "test")] == [9, 1, 2]
    batch = next(iter(module.train_dataloader()))
    assert batch["inputs"].shape == (4, 1024) and batch["mask"].all()
    assert set(batch["label"].tolist()) <= {0, 1}
