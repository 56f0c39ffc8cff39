"""Where XGBoost trains: ``cuda`` when a usable NVIDIA GPU is present, else ``cpu``.

``device="cuda"`` on a machine without a GPU only warns in XGBoost and silently trains on the
CPU, so a run would *claim* a GPU it never used. We therefore decide once, from facts: the
XGBoost build has CUDA, the driver answers ``nvidia-smi -L`` with at least one GPU, and the
``ONCORANK_DEVICE`` override (``cpu``/``cuda``) wins over both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache

from pipelines.lakehouse.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


@cache
def gpu_available() -> bool:
    """True when XGBoost was built with CUDA and the NVIDIA driver lists a GPU."""
    try:
        import xgboost

        if not xgboost.build_info().get("USE_CUDA"):
            return False
    except Exception:  # an XGBoost without build info cannot be trusted with a GPU
        return False
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def resolve_device(device: str = "auto") -> str:
    """Turn ``auto`` into ``cuda`` or ``cpu``; an explicit ``cuda`` without a GPU is an error.

    >>> resolve_device("cpu")
    'cpu'
    """
    device = (os.environ.get("ONCORANK_DEVICE") or device or "auto").lower()
    if device not in DEVICES:
        raise ConfigError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    if device == "auto":
        return "cuda" if gpu_available() else "cpu"
    if device == "cuda" and not gpu_available():
        raise ConfigError(
            "device='cuda' was requested but no usable NVIDIA GPU was found (nvidia-smi -L "
            "lists none, or XGBoost lacks CUDA); use device='auto' or 'cpu'."
        )
    return device
