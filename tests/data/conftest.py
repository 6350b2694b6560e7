"""Data fixtures shared by the data tests: tiny releases written into tmp_path."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.data.fixtures import (
    write_listops_release,
    write_pathfinder_release,
    write_retrieval_release,
)


@pytest.fixture
def listops_dir(tmp_path: Path) -> Path:
    return write_listops_release(tmp_path / "data")


@pytest.fixture
def retrieval_dir(tmp_path: Path) -> Path:
    return write_retrieval_release(tmp_path / "data")


@pytest.fixture
def pathfinder_dir(tmp_path: Path) -> Path:
    """20 Pathfinder-32 images, one of them empty and one corrupt."""
    data_dir = tmp_path / "data"
    write_pathfinder_release(data_dir, num_images=20, empty=(3,), corrupt=(7,))
    return data_dir


@pytest.fixture
def data_warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog capturing the warnings of the lra.data modules."""
    caplog.set_level(logging.WARNING, logger="lra.data")
    return caplog
