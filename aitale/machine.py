"""What a run needs to compute the same bytes on every x86-64 CPU, and where a timing was taken.

The math libraries pick their kernels by the CPU they find, and kernels of another vector width or
thread count add in another order: the same params and data would give other weights on another
machine. :func:`pin` holds every library to one code path; every stage calls it before anything
loads them (``stages/__init__.py``), so ``dvc repro`` gets it without the Makefile.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# AVX2 (with FMA): the widest path that every x86-64 CPU of the last decade runs.
ISA = "avx2"
# Fixed rather than one per core: a parallel sum splits its work by thread count, so the count is
# part of the result (a 1-thread and a 2-thread run of the same matmul differ in the last bits).
THREADS = 2
# A decoding step (one token for a few rows) is too small to split: a second OpenMP thread mostly waits
# on the scheduler of a busy machine (8 rows x 250 tokens: 11 s on one thread, 270 s on two at load 9).
# The PyTorch decoders run each step on this many threads (decode_threads), on every machine, so tell,
# evaluate and export decode with the same numerics everywhere.
DECODE_THREADS = 1
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": ISA,  # PyTorch's own kernels: norms, softmax, reductions, attention
    "MKL_CBWR": "AVX2",  # MKL's GEMM behind torch's fp32 matmul: its reproducible AVX2 branch
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN, behind torch's bf16 matmul: native bf16 would round otherwise
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's AVX-512 loops
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's OpenBLAS (scikit-learn's solvers): the AVX2 kernels
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
    "OPENBLAS_NUM_THREADS": str(THREADS),
    "RAYON_NUM_THREADS": str(THREADS),  # the tokenizers' trainer
}
# Idle OpenMP threads sleep instead of spinning: changes no result, and on a busy machine (2 cores shared by
# two test workers, or a queue of experiments) a spinning thread takes the core its partner waits for. Measured
# here, 8 stories x 250 tokens at load 7 on 2 threads: 50 s spinning, 2.5 s passive.
SCHEDULING_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
# Set to 1 for the CPU's fastest kernels and all its cores (benchmarks, a one-off run): results then
# depend on the CPU, and the metrics say so (math_settings()).
NATIVE = "AITALE_NATIVE_MATH"
# Instruction sets that change which CPU kernels torch and onnxruntime pick.
_FLAGS_OF_NOTE = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def pin() -> None:
    """Hold the math libraries to :data:`PINNED_ENV`, unless :data:`NATIVE` asks for the CPU's own.

    Effective only before torch, numpy and the BLAS libraries load: each reads these once.
    """
    for key, value in SCHEDULING_ENV.items():
        os.environ.setdefault(key, value)
    if os.environ.get(NATIVE) == "1":
        return
    os.environ.update(PINNED_ENV)


@contextmanager
def decode_threads() -> Iterator[None]:
    """torch computes on :data:`DECODE_THREADS` threads inside the block; the caller's count is restored after."""
    import torch

    before = torch.get_num_threads()
    if before != DECODE_THREADS:
        torch.set_num_threads(DECODE_THREADS)
    try:
        yield
    finally:
        if before != DECODE_THREADS:
            torch.set_num_threads(before)


def pinned() -> bool:
    return os.environ.get(NATIVE) != "1" and all(os.environ.get(k) == v for k, v in PINNED_ENV.items())


def math_settings() -> dict:
    """How this process computes, for a stage's metrics: a diff across machines then explains itself."""
    import torch

    return {
        "math_path": "pinned" if pinned() else "native",
        "cpu_capability": torch.backends.cpu.get_cpu_capability().lower(),
        "threads": torch.get_num_threads(),
    }


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
    import torch
    import transformers

    flags = cpu_flags()
    return {
        "cpu_model": ", ".join(sorted(set(_cpuinfo("model name")))) or platform.processor(),
        "logical_cpus": os.cpu_count(),
        "cpu_flags_of_note": [f for f in _FLAGS_OF_NOTE if f in flags],
        "torch_threads": torch.get_num_threads(),
        "math_path": "pinned" if pinned() else "native",
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
