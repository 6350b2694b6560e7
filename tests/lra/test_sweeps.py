"""Hydra launchers: a parallel local sweep writes one record per run; the SLURM preset follows the trainer."""

from __future__ import annotations

import subprocess
import sys

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.lra.conftest import CONFIG_DIR, TINY

REPO = CONFIG_DIR.parent


def test_slurm_preset_asks_one_task_and_one_gpu_per_device():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "trainer=ddp",
                "trainer.devices=8",
                "trainer.num_nodes=2",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 8, 8)
    assert launcher.partition == "gpu"
    assert OmegaConf.select(cfg, "hydra.launcher.timeout_min") >= 24 * 60


def test_joblib_sweep_over_two_backends_writes_two_records(tmp_path, data_dir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lra.train",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "task=listops",
            "attention=softmax,linear",
            *TINY,
            f"data_dir={data_dir}",
            f"results_dir={tmp_path / 'results'}",
            f"outputs_dir={tmp_path / 'outputs'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Joblib.Parallel" in result.stdout + result.stderr
    records = sorted(path.name for path in (tmp_path / "results" / "runs").glob("*.json"))
    assert records == ["cpu-listops-linear-seed0.json", "cpu-listops-softmax-seed0.json"]
    for attention in ("softmax", "linear"):
        assert (tmp_path / "outputs" / "cpu" / "listops" / attention / "seed0" / "csv").is_dir()
