"""LUNA's compiled CPU kernel (luna/csrc), built on first use and cached; None where it cannot be used."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

SOURCE = Path(__file__).resolve().parent / "csrc" / "segment_relu.cpp"
# Set to 0 to always take the PyTorch path (same results, slower on the CPU).
SWITCH = "LUNA_NATIVE"
DTYPES = (torch.float32, torch.float64)

log = logging.getLogger(__name__)


def enabled() -> bool:
    return os.environ.get(SWITCH, "1").strip() not in ("0", "false", "no", "off")


def _put_ninja_on_path() -> None:
    """torch looks ninja up on PATH; the one pip installs sits beside this interpreter, maybe not on PATH."""
    beside = Path(sys.executable).parent
    if shutil.which("ninja") is None and shutil.which("ninja", path=str(beside)) is not None:
        os.environ["PATH"] = os.pathsep.join([str(beside), os.environ.get("PATH", "")])


@functools.cache
def _build() -> ModuleType | None:
    from torch.utils.cpp_extension import load

    _put_ninja_on_path()

    log.info("loading LUNA's CPU kernel %s (compiled on first use, about 20 s, then cached)", SOURCE.name)
    try:
        # OpenMP, so that at::parallel_for uses torch's threads; torch's own libgomp is already loaded.
        return load(
            name="luna_segment_relu",
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
        )
    except Exception as error:  # a missing compiler or ninja: the PyTorch path gives the same results
        warnings.warn(
            f"LUNA's compiled CPU kernel could not be built ({type(error).__name__}: {error}); using "
            f"PyTorch operations instead, exact but about twice as slow on the CPU. Install a C++ "
            f"compiler and ninja to build it, or set {SWITCH}=0 to skip it silently.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def segment_relu_kernel(s: Tensor) -> ModuleType | None:
    """The compiled kernel if it applies to `s` (a CPU float32/float64 tensor) and can be built, else None."""
    if s.device.type != "cpu" or s.dtype not in DTYPES or not enabled():
        return None
    return _build()
