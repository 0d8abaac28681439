"""Where embedders run: devices, CPU threads, memory, and input validation.

Torch-dependent helpers the :class:`~audio_embed.embedders.base.Embedder`
contract uses (kept apart so ``base.py`` holds the contract only).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from audio_embed.errors import InvalidInputError

__all__ = [
    "CPU_BATCH_BYTES",
    "MAX_AUTO_BATCH",
    "as_waveform_batch",
    "available_cpus",
    "available_memory",
    "check_cpu_threads",
    "default_device",
]

log = logging.getLogger(__name__)

#: On CPU, automatic batches hold at most this many bytes of activations:
#: batching does not make CPU inference faster, it only costs memory.
CPU_BATCH_BYTES = 512 * 1024 * 1024
MAX_AUTO_BATCH = 64


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:  # cgroup v2: "<quota> <period>" or "max <period>"
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


_THREADS_CHECKED = False
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "AUDIO_EMBED_NUM_THREADS")


def check_cpu_threads() -> None:
    """Once per process: never run more torch CPU threads than there are CPUs to run them.

    torch sizes its intra-op pool from the machine's cores, which in a container
    with a CPU quota can be many more than the process may use; oversubscribed
    threads make inference several times slower. The pool is only ever lowered,
    and left alone entirely when the user set a thread count (the environment
    variables above, or ``torch.set_num_threads`` before the first embedding).
    ``AUDIO_EMBED_NUM_THREADS`` sets the count explicitly.
    """
    global _THREADS_CHECKED
    if _THREADS_CHECKED:
        return
    _THREADS_CHECKED = True
    explicit = os.environ.get("AUDIO_EMBED_NUM_THREADS", "").strip()
    if explicit.isdigit() and int(explicit) > 0:
        torch.set_num_threads(int(explicit))
        return
    if any(os.environ.get(name) for name in _THREAD_ENV):
        return
    cpus = available_cpus()
    if torch.get_num_threads() > cpus:
        log.debug("Lowering torch's CPU threads from %d to %d", torch.get_num_threads(), cpus)
        torch.set_num_threads(cpus)


def available_memory() -> int:
    """Bytes of memory available to new allocations (a guess when it cannot be read)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 4 * 1024**3


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_waveform_batch(
    waveforms: torch.Tensor | np.ndarray | Sequence[float],
    *,
    owner: str = "Embedder",
) -> torch.Tensor:
    """Return ``waveforms`` as a float32 ``[B, N]`` tensor, or raise a clear error.

    A 1-D input is treated as a batch of one. Integer PCM (int16, int32) is
    scaled to [-1, 1); unsigned PCM (uint8: 8-bit WAV as ``scipy.io.wavfile.read``
    gives it, silence at 128) is centred first. NaN and infinite values are
    refused: they would poison every window they touch without any visible sign;
    so are complex and boolean arrays.
    """
    if isinstance(waveforms, np.ndarray):
        array = waveforms
        if array.dtype.kind in "cb":  # before: complex lost its imaginary part, bool 0/1
            raise InvalidInputError(
                f"{owner} expects real sample values (float, or integer PCM). Got an "
                f"array of dtype {array.dtype}."
            )
        if np.issubdtype(array.dtype, np.unsignedinteger):  # before: scaled to [0, 1)
            half = float(np.iinfo(array.dtype).max // 2 + 1)
            array = (array.astype(np.float64) - half) / half
        elif np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    elif isinstance(waveforms, torch.Tensor):
        tensor = waveforms
        if not tensor.is_floating_point():
            if tensor.dtype in (torch.int16, torch.int32, torch.int64, torch.int8):
                tensor = tensor.float() / float(torch.iinfo(tensor.dtype).max + 1)
            else:
                raise InvalidInputError(
                    f"{owner} expects a floating-point waveform. Got dtype {tensor.dtype}."
                )
        tensor = tensor.float()
    else:
        tensor = torch.as_tensor(np.asarray(waveforms, dtype=np.float32))
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 2:
        raise InvalidInputError(
            f"{owner} expects waveforms of shape [batch, samples] (or [samples]). "
            f"Got shape {tuple(tensor.shape)} instead; average or select channels first."
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise InvalidInputError(
            f"{owner} got an empty batch of shape {tuple(tensor.shape)}; "
            "pass at least one waveform with at least one sample."
        )
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise InvalidInputError(
            f"{owner} got {bad} NaN or infinite sample(s). Clean the audio "
            "(e.g. numpy.nan_to_num) before embedding it."
        )
    return tensor
