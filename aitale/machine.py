"""Where a timing was taken: the machine, and how busy other processes kept it meanwhile."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
import transformers

# Instruction sets that change which CPU kernels torch and onnxruntime pick.
_FLAGS_OF_NOTE = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def _cpuinfo(field: str) -> list[str]:
    """The values of one field of /proc/cpuinfo, one per processor ([] where there is no such file)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
    return [line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == field]


def cpu_flags() -> list[str]:
    """The instruction-set flags of the first processor."""
    return next(iter(_cpuinfo("flags")), "").split()


def describe() -> dict:
    """The CPU, its instruction sets of note, and the versions and threads that run the timed code."""
    flags = cpu_flags()
    return {
        "cpu_model": ", ".join(sorted(set(_cpuinfo("model name")))) or platform.processor(),
        "logical_cpus": os.cpu_count(),
        "cpu_flags_of_note": [f for f in _FLAGS_OF_NOTE if f in flags],
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class LoadRange:
    """The 1-minute load average, sampled at the start and after each timed part."""

    def __init__(self) -> None:
        self.samples = [os.getloadavg()[0]]

    def sample(self) -> None:
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        return {"min": round(min(self.samples), 2), "max": round(max(self.samples), 2)}
