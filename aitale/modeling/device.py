"""Where training runs: device, precision and (optionally) the process group of DDP or FSDP.

``torchrun --nproc-per-node N`` and ``accelerate launch`` both set ``WORLD_SIZE``/``RANK``;
one process without them is plain single-device training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int
    world: int
    dtype: torch.dtype | None  # autocast dtype, None for plain fp32

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)


class DeviceError(RuntimeError):
    """The device asked for is not on this machine."""


def start(precision: str, device: str = "auto") -> Runtime:
    """``device``: ``auto`` (the GPU when there is one), ``cpu`` or ``cuda``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("train.device is cuda but torch sees no CUDA GPU here: set train.device: auto or cpu")
    if device != "cpu" and torch.cuda.is_available():
        where = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(where)
    else:
        where = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        # gloo beside NCCL: the loss sums travel as CPU tensors, which NCCL alone does not carry
        dist.init_process_group("cuda:nccl,cpu:gloo" if where.type == "cuda" else "gloo")
    return Runtime(device=where, rank=rank, world=world, dtype=autocast_dtype(precision, where))


def stop(runtime: Runtime) -> None:
    if runtime.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``train.precision``, the same on every machine: fp32, or bf16 autocast (emulated, so slow, on a CPU
    without native bf16, and held to the AVX2 path by aitale.machine.pin like every other kernel)."""
    if precision == "fp32":
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("train.precision is bf16 but this GPU has no bf16: set train.precision: fp32")
    return torch.bfloat16
