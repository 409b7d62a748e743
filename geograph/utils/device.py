"""Device selection: CUDA when present (bf16 autocast), CPU otherwise."""

from __future__ import annotations

import contextlib

import torch


def select_device(device: str = "auto") -> torch.device:
    """Return the device to train on.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(device)


def autocast_context(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op context on CPU (keeps CPU runs bit-reproducible)."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
