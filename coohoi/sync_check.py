"""A check that a block of tensor code never makes the host wait for the device, so that it can be captured as one
CUDA graph and never stalls the GPU's queue.

On CUDA it is torch's own sync debug mode, set to raise. On the CPU, where nothing waits, it raises from the
operations that would synchronise on a GPU: reading values on the host (item, tolist, bool/int/float of a tensor,
numpy, copies to the CPU) and operations whose output shape depends on the data (nonzero, boolean-mask indexing,
masked_select, unique). So the same test catches a synchronising step on a machine without a GPU.

    with forbid_host_sync(device):
        env.step(actions)
"""

from __future__ import annotations

import contextlib

import torch


class HostSyncError(RuntimeError):
    """A tensor operation inside forbid_host_sync() would make the host wait for the device."""


# Tensor methods that read a value on the host, or whose result's shape depends on the data.
_TENSOR_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "numpy", "cpu", "nonzero", "masked_select",
                   "unique")
_TORCH_FUNCTIONS = ("nonzero", "masked_select", "unique", "argwhere")


def _has_bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


@contextlib.contextmanager
def forbid_host_sync(device: torch.device | str = "cpu"):
    """Raise HostSyncError (CPU) or RuntimeError (CUDA, torch's message) from any synchronising operation in the
    block."""
    device = torch.device(device)
    if device.type == "cuda":
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(previous)
        return

    saved: list[tuple[object, str, object]] = []

    def forbid(owner, name: str, check=None) -> None:
        original = getattr(owner, name)

        def guarded(*args, **kwargs):
            if check is None or check(*args, **kwargs):
                raise HostSyncError(f"{getattr(owner, '__name__', owner)}.{name} would synchronise the host with the "
                                    "device")
            return original(*args, **kwargs)

        saved.append((owner, name, original))
        setattr(owner, name, guarded)

    for name in _TENSOR_METHODS:
        forbid(torch.Tensor, name)
    for name in _TORCH_FUNCTIONS:
        forbid(torch, name)
    forbid(torch.Tensor, "__getitem__", lambda self, index: _has_bool_index(index))
    forbid(torch.Tensor, "__setitem__", lambda self, index, value: _has_bool_index(index))
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)
