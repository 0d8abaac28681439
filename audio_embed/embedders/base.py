"""The :class:`Embedder` contract every model implements.

An embedder maps a batch of mono waveforms at :attr:`Embedder.sample_rate` to
one vector per waveform. The public, final :meth:`Embedder.embed` validates its
input and calls the one abstract hook :meth:`Embedder._embed_batch`.

Layered models (transformer encoders) derive from :class:`LayeredEmbedder` and
also expose :meth:`LayeredEmbedder.hidden_states`: one ``[B, T, D]`` tensor per
transformer block, block 1 first. "Layer k" means the output of block k
everywhere in the library, whatever the backend's own indexing.

Adding a model::

    class MyEmbedder(Embedder):
        name = "MY_MODEL"
        dim = 128

        def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
            return my_model(waveforms)

    register_embedder(EmbedderSpec(name="MY_MODEL", factory=MyEmbedder, dim=128))

Sliding windows reach the encoder in one of two ways (:meth:`Embedder.embed_windows`):

* ``encoding="per_window"``: every window is encoded on its own, as if it were
  a clip. With 8 s windows every 1 s, each second of audio goes through the
  encoder eight times.
* ``encoding="shared"``: each stretch of audio is encoded once, in segments of
  :attr:`LayeredEmbedder.shared_chunk` seconds with
  :attr:`LayeredEmbedder.shared_context` seconds of context on both sides, and
  a window's vector is the mean of the frame features whose receptive field
  lies inside it. A layered model opts in with two small hooks,
  :meth:`LayeredEmbedder.frame_geometry` and :meth:`LayeredEmbedder._frame_states`;
  models without them (and non-layered models) are encoded per window.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import itertools
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, final

import numpy as np
import torch

from audio_embed.errors import InvalidInputError

__all__ = [
    "Embedder",
    "Encoding",
    "FrameGeometry",
    "LayeredEmbedder",
    "as_waveform_batch",
    "available_cpus",
    "default_device",
    "shared_embed_windows",
]

log = logging.getLogger(__name__)

#: How sliding windows reach the encoder (see the module docstring).
Encoding = Literal["per_window", "shared"]
ENCODINGS: tuple[Encoding, ...] = ("per_window", "shared")
#: On CPU, automatic batches hold at most this many bytes of activations:
#: batching does not make CPU inference faster, it only costs memory.
CPU_BATCH_BYTES = 512 * 1024 * 1024
MAX_AUTO_BATCH = 64


def _check_encoding(encoding: str, owner: str) -> None:
    if encoding not in ENCODINGS:
        raise InvalidInputError(
            f"The 'encoding' parameter of {owner}.embed_windows must be 'per_window' or "
            f"'shared'. Got {encoding!r} instead."
        )


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


def _check_cpu_threads() -> None:
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


def _available_memory() -> int:
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


class FrameGeometry(NamedTuple):
    """Where the frames of :meth:`LayeredEmbedder._frame_states` lie in the input, in samples.

    Frame ``j`` of an input sees samples ``[j * hop, j * hop + field)``, so an
    input of ``n >= field`` samples has ``(n - field) // hop + 1`` frames.
    ``max_samples`` is the longest input the model accepts (a fixed-size
    positional table), None when any length works.
    """

    hop: int
    field: int
    max_samples: int | None = None


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
    scaled to [-1, 1). NaN and infinite values are refused: they would poison
    every window they touch without any visible sign.
    """
    if isinstance(waveforms, np.ndarray):
        array = waveforms
        if np.issubdtype(array.dtype, np.integer):
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


class Embedder(abc.ABC):
    """Maps batches of mono waveforms to fixed-size vectors.

    Subclasses set (as class attributes or properties) :attr:`name`,
    :attr:`dim`, and optionally :attr:`sample_rate` and :attr:`num_layers`,
    and implement :meth:`_embed_batch`.
    """

    #: Registry name (``"HUBERT_BASE"``…).
    name: str = ""
    #: Sample rate the model expects, in Hz. 16 kHz for every built-in.
    sample_rate: int = 16000
    #: Length of the vectors :meth:`embed` returns.
    dim: int = 0
    #: Number of transformer blocks, or None when the model has none to pick.
    num_layers: int | None = None
    #: Shortest input, in samples, the model can take (shorter input is zero-padded).
    min_samples: int = 400

    device: torch.device = torch.device("cpu")
    #: CUDA only: run the model under ``torch.autocast`` with this dtype
    #: (``torch.bfloat16`` or ``torch.float16``); None (default) = float32.
    #: Ignored on CPU. Outputs are always float32.
    autocast_dtype: torch.dtype | None = None
    #: Rough peak activation memory of one forward pass, in bytes per second of
    #: input audio (sizes automatic batches, see :meth:`auto_batch_size`).
    activation_bytes_per_second: int = 8 * 1024 * 1024
    #: Digest of the weights, computed by the first :meth:`cache_id` call.
    _weights_digest: str | None = None

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The ``torch.autocast`` context for :attr:`autocast_dtype` on CUDA, else a no-op."""
        if self.autocast_dtype is not None and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=self.autocast_dtype)
        return contextlib.nullcontext()

    def auto_batch_size(self, seconds: float) -> int:
        """How many inputs of ``seconds`` seconds to encode per forward pass.

        On CUDA: as many as fit in half of the free device memory; on CPU: as
        many as fit in :data:`CPU_BATCH_BYTES` (or a quarter of the available
        memory, when less), since batching does not make CPU inference faster.
        Estimated from :attr:`activation_bytes_per_second`; between 1 and 64.
        """
        per_item = max(float(seconds), 1e-3) * self.activation_bytes_per_second
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            budget = free // 2
            if self.autocast_dtype in (torch.float16, torch.bfloat16):
                per_item /= 2
        else:
            budget = min(CPU_BATCH_BYTES, _available_memory() // 4)
        return int(max(1, min(MAX_AUTO_BATCH, budget // per_item)))

    def shared_settings(self) -> dict[str, float]:
        """What shared encoding does with this embedder: ``{}`` when it has none.

        Otherwise ``{"chunk": seconds, "context": seconds}`` (see
        :class:`LayeredEmbedder`). The :class:`~audio_embed.Scanner` keys its
        cache with it, and keeps ``context`` seconds of audio on both sides of
        its streaming block boundaries so that frames there keep their context.
        """
        return {}

    @final
    def embed(
        self,
        waveforms: torch.Tensor | np.ndarray,
        sample_rate: int | None = None,
    ) -> torch.Tensor:
        """Embed a batch of waveforms.

        Args:
            waveforms: ``[B, N]`` (or ``[N]``) mono audio at :attr:`sample_rate`,
                float in [-1, 1] or integer PCM.
            sample_rate: the rate of ``waveforms``, checked against the model's
                when given. Resample first (``audio_embed.resample``) otherwise.

        Returns:
            A float32 CPU tensor of shape ``[B, dim]``.
        """
        batch = self._prepare(waveforms, sample_rate)
        _check_cpu_threads()
        with torch.inference_mode(), self.autocast():
            out = self._embed_batch(batch)
        return out.detach().float().cpu()

    @final
    def _prepare(
        self, waveforms: torch.Tensor | np.ndarray, sample_rate: int | None
    ) -> torch.Tensor:
        owner = type(self).__name__
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise InvalidInputError(
                f"{owner} ({self.name}) expects audio at {self.sample_rate} Hz. Got "
                f"{sample_rate} Hz instead; resample with audio_embed.resample(audio, "
                f"{sample_rate}, {self.sample_rate}) or load with load_audio(path, "
                f"sample_rate={self.sample_rate})."
            )
        batch = as_waveform_batch(waveforms, owner=owner)
        if batch.shape[1] < self.min_samples:
            batch = torch.nn.functional.pad(batch, (0, self.min_samples - batch.shape[1]))
        return batch.to(self.device)

    @abc.abstractmethod
    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Embed a validated float32 ``[B, N]`` batch on :attr:`device`. Returns ``[B, dim]``."""

    def cache_id(self) -> str:
        """A string that changes whenever this embedder's output would change.

        The embedding cache keys entries with it: the name, the dimension and a
        fingerprint of :meth:`_output_settings` and of the weights of every torch
        module the embedder owns (each tensor's name, shape, first values and
        sum), so two checkpoints, two random seeds or two pooling modes never
        share cache entries. The weights are read once, on the first call.
        """
        weights = self._weights_digest
        if weights is None:
            digest = hashlib.sha256()
            with torch.no_grad():
                for module in self._modules():
                    for key, tensor in module.state_dict().items():
                        values = tensor.detach().flatten().double()
                        digest.update(f"{key}{tuple(tensor.shape)}{values.sum().item()!r}".encode())
                        digest.update(values[:64].cpu().numpy().tobytes())
            weights = self._weights_digest = digest.hexdigest()
        settings = json.dumps(self._output_settings(), sort_keys=True, default=str)
        fingerprint = hashlib.sha256((settings + weights).encode()).hexdigest()
        return f"{self.name}:{self.dim}:{fingerprint[:16]}"

    def _output_settings(self) -> dict[str, object]:
        """Settings besides the weights that change the vectors (for :meth:`cache_id`)."""
        return {}

    def embed_windows(
        self,
        audio: np.ndarray,
        starts: np.ndarray,
        window: float,
        *,
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
        encoding: Encoding = "per_window",
    ) -> np.ndarray:
        """Embed windows of ``window`` seconds starting at ``starts`` (seconds) in ``audio``.

        ``audio`` is mono at :attr:`sample_rate`. ``batch_size`` windows go
        through the encoder per call (None: :meth:`auto_batch_size`).
        ``on_batch(n)`` is called after each batch of ``n`` windows (progress,
        cancellation). Returns float32 ``[len(starts), dim]``.

        ``encoding="per_window"`` encodes every window on its own; a window
        reaching past the end of ``audio`` is zero-padded. ``"shared"`` encodes
        the audio once and pools frames per window (layered models with the
        hooks, see :class:`LayeredEmbedder`); embedders without it ignore it.
        """
        _check_encoding(encoding, type(self).__name__)
        if encoding == "shared":
            out = self._embed_shared(audio, starts, window, batch_size, on_batch)
            if out is not None:
                return out
        return self._embed_each_window(audio, starts, window, batch_size, on_batch)

    def _embed_shared(
        self,
        audio: np.ndarray,
        starts: np.ndarray,
        window: float,
        batch_size: int | None,
        on_batch: Callable[[int], None] | None,
    ) -> np.ndarray | None:
        """Shared-context window vectors, or None to fall back to per-window (the default)."""
        return None

    def _embed_each_window(
        self,
        audio: np.ndarray,
        starts: np.ndarray,
        window: float,
        batch_size: int | None,
        on_batch: Callable[[int], None] | None,
    ) -> np.ndarray:
        """Per-window encoding: every window zero-padded to ``window`` and encoded alone."""
        length = round(window * self.sample_rate)
        if batch_size is None:
            batch_size = self.auto_batch_size(window)
        out = np.empty((len(starts), self.dim), dtype=np.float32)
        for lo in range(0, len(starts), batch_size):
            chunk = starts[lo : lo + batch_size]
            batch = np.zeros((len(chunk), length), dtype=np.float32)
            for i, start in enumerate(chunk):
                a = round(float(start) * self.sample_rate)
                piece = audio[a : a + length]
                batch[i, : len(piece)] = piece
            out[lo : lo + len(chunk)] = self.embed(batch).numpy()
            if on_batch is not None:
                on_batch(len(chunk))
        return out

    def to(self, device: str | torch.device) -> Embedder:
        """Move the model to ``device`` and return ``self``."""
        self.device = torch.device(device)
        for module in self._modules():
            module.to(self.device)
        return self

    def _modules(self) -> list[torch.nn.Module]:
        """The torch modules this embedder owns (moved by :meth:`to`)."""
        return [v for v in vars(self).values() if isinstance(v, torch.nn.Module)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.device})"


class LayeredEmbedder(Embedder):
    """An embedder whose model is a stack of transformer blocks.

    Subclasses implement :meth:`_hidden_states`, which must stop after
    ``num_layers`` blocks so callers never pay for blocks they do not use.

    Shared-context encoding (``embed_windows(..., encoding="shared")``) needs
    two more hooks: :meth:`frame_geometry` (the frame grid) and
    :meth:`_frame_states` (frame features of a batch of segments). Without
    them the model falls back to per-window encoding.
    """

    num_layers: int | None = 0
    #: Shared encoding: seconds of audio whose frames one segment produces.
    shared_chunk: float = 20.0
    #: Shared encoding: seconds of extra audio on each side of a segment, so
    #: every frame is computed with at least this much context around it.
    shared_context: float = 2.0

    def frame_geometry(self) -> FrameGeometry | None:
        """The frame grid of :meth:`_frame_states`, or None: no shared encoding (default)."""
        return None

    def _frame_states(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """Frame features of a validated ``[B, N]`` batch on :attr:`device`, time in order.

        Returns one ``[B, T, D]`` tensor per 1-based block number in ``layers``
        (each as :meth:`pool` would see it), or, when ``layers`` is None, one
        tensor: the features :meth:`_embed_batch` pools. Frame ``t`` must be
        the one :meth:`frame_geometry` places at ``t * hop``, and the mean of a
        window's frames must be what :meth:`pool` computes for that window
        (models with extra tokens drop them; models with several tokens per
        time step average them). Only called when :meth:`frame_geometry` is
        not None.
        """
        raise NotImplementedError(f"{type(self).__name__} has no shared-encoding hook.")

    def shared_settings(self) -> dict[str, float]:
        if self.frame_geometry() is None:
            return {}
        return {"chunk": float(self.shared_chunk), "context": float(self.shared_context)}

    def _embed_shared(
        self,
        audio: np.ndarray,
        starts: np.ndarray,
        window: float,
        batch_size: int | None,
        on_batch: Callable[[int], None] | None,
    ) -> np.ndarray | None:
        return shared_embed_windows(self, self, None, audio, starts, window, batch_size, on_batch)

    @final
    def hidden_states(
        self,
        waveforms: torch.Tensor | np.ndarray,
        num_layers: int | None = None,
        sample_rate: int | None = None,
    ) -> list[torch.Tensor]:
        """Outputs of blocks 1..``num_layers`` (all when None), each ``[B, T, D]``.

        Element ``k - 1`` of the list is the output of block ``k``.
        """
        total = int(self.num_layers or 0)
        n = total if num_layers is None else int(num_layers)
        if not 1 <= n <= total:
            raise InvalidInputError(
                f"The 'num_layers' parameter of {type(self).__name__}.hidden_states must be "
                f"in [1, {total}]. Got {num_layers!r} instead."
            )
        batch = self._prepare(waveforms, sample_rate)
        _check_cpu_threads()
        with torch.inference_mode(), self.autocast():
            states = self._hidden_states(batch, n)
        return [s.detach().float() for s in states[:n]]

    @abc.abstractmethod
    def _hidden_states(self, waveforms: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
        """Block outputs 1..num_layers for a validated batch on :attr:`device`."""

    def pool(self, state: torch.Tensor) -> torch.Tensor:
        """Pool one block output ``[B, T, D]`` to ``[B, D]``: the mean over tokens.

        Models with special tokens (a CLS token…) override this to leave them out.
        """
        return state.mean(dim=1)

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Default embedding: the pooled output of the last block."""
        return self.pool(self._hidden_states(waveforms, int(self.num_layers or 0))[-1])


def _segments(
    t0: int, t1: int, n: int, core: int, context: int, hop: int
) -> list[tuple[int, int, int, int]]:
    """Tile ``[t0, t1)`` with cores of about ``core`` samples; add ``context`` on each side.

    Returns ``(s0, s1, u0, u1)``: the segment's input ``[s0, s1)`` (clipped to
    ``[0, n)``) and the core ``[u0, u1)`` whose frames it contributes. Core
    starts and contexts are multiples of ``hop``, so every segment's frame grid
    is the global one.
    """
    span = t1 - t0
    count = max(1, math.ceil(span / core))
    step = max(hop, math.ceil(span / count / hop) * hop)
    bounds = [t0 + i * step for i in range(count) if t0 + i * step < t1] + [t1]
    return [
        (max(0, u0 - context), min(n, u1 + context), u0, u1)
        for u0, u1 in itertools.pairwise(bounds)
    ]


def shared_embed_windows(
    embedder: Embedder,
    model: LayeredEmbedder,
    layers: tuple[int, ...] | None,
    audio: np.ndarray,
    starts: np.ndarray,
    window: float,
    batch_size: int | None,
    on_batch: Callable[[int], None] | None,
) -> np.ndarray | None:
    """Shared-context window embeddings, or None when ``model`` has no frame hooks.

    ``embedder`` is the embedder whose vectors are asked for: ``model`` itself
    (``layers`` None) or a :class:`~audio_embed.MultiLayerEmbedder` over it
    (``layers`` = its blocks, concatenated in that order).

    The audio the windows cover is cut into segments (cores of
    ``model.shared_chunk`` seconds plus ``model.shared_context`` seconds of
    context on each side, clipped at the ends of ``audio``); each segment is
    encoded once, keeps the frames that start in its core, and each window is
    the mean of the frames whose receptive field lies inside it. Windows past
    the end of ``audio`` pool the frames that exist (no zero padding); a window
    with no frame at all (audio shorter than one receptive field) is encoded on
    its own, zero-padded, as in per-window mode.

    With ``shared_context = 0`` and ``shared_chunk`` = the window (a multiple
    of the frame hop), windows that start on multiples of the window are
    encoded exactly as per window. Otherwise the vectors are close to, not
    equal to, per-window ones: every frame sees at least ``shared_context``
    seconds of audio on both sides (per-window frames see none past the
    window's edges), and a vector depends slightly on where segments are cut.
    """
    geometry = model.frame_geometry()
    if geometry is None:
        return None
    sr = model.sample_rate
    hop, field = int(geometry.hop), int(geometry.field)
    if hop <= 0 or field < hop:
        raise InvalidInputError(
            f"{type(model).__name__}.frame_geometry() must have hop > 0 and field >= hop. "
            f"Got {geometry}."
        )
    audio = np.asarray(audio, dtype=np.float32)
    starts = np.asarray(starts, dtype=np.float64)
    n = len(audio)
    length = round(window * sr)
    outputs = 1 if layers is None else len(layers)
    out = np.empty((len(starts), embedder.dim), dtype=np.float32)
    if len(starts) == 0:
        return out
    first = np.round(starts * sr).astype(np.int64)
    lo = -(-first // hop)  # first frame starting at or after the window start
    hi = (np.minimum(first + length, n) - field) // hop + 1  # one past the last frame inside
    has = hi > lo
    if has.any():
        context = max(0, math.ceil(model.shared_context * sr / hop)) * hop
        core = max(1, round(model.shared_chunk * sr / hop)) * hop
        if geometry.max_samples is not None:
            context = min(context, max(0, (geometry.max_samples - field) // (4 * hop)) * hop)
            room = (geometry.max_samples - 2 * context) // hop * hop
            core = max(hop, min(core, room))
        t0 = int(lo[has].min()) * hop
        t1 = int(min(n, int((first[has] + length).max())))
        base = t0 // hop
        n_frames = -(-t1 // hop) - base
        frames = [torch.zeros(n_frames, model.dim) for _ in range(outputs)]
        valid = torch.zeros(n_frames, dtype=torch.bool)
        segments = [s for s in _segments(t0, t1, n, core, context, hop) if s[1] - s[0] >= field]
        longest = max((s[1] - s[0] for s in segments), default=field)
        if batch_size is None:
            per_call = model.auto_batch_size(longest / sr)
        else:  # the audio of batch_size windows per call
            per_call = max(1, (batch_size * length) // max(longest, 1))
        reported = 0
        done_until = np.full(len(starts), np.iinfo(np.int64).max)
        done_until[has] = hi[has] - base
        _check_cpu_threads()
        i = 0
        while i < len(segments):
            size = segments[i][1] - segments[i][0]
            j = i + 1
            while (
                j < len(segments) and j - i < per_call and segments[j][1] - segments[j][0] == size
            ):
                j += 1
            group = segments[i:j]
            batch = np.stack([audio[s0:s1] for s0, s1, _, _ in group])
            x = model._prepare(batch, None)
            with torch.inference_mode(), model.autocast():
                states = model._frame_states(x, layers)
            if len(states) != outputs:
                raise AssertionError(
                    f"{type(model).__name__}._frame_states returned {len(states)} tensors "
                    f"for {outputs} requested outputs."
                )
            frontier = 0
            for b, (s0, s1, u0, u1) in enumerate(group):
                count = min(int(states[0].shape[1]), (s1 - s0 - field) // hop + 1)
                g0 = s0 // hop
                j_lo = -(-u0 // hop) - g0
                j_hi = min(count, -(-u1 // hop) - g0)
                if j_hi <= j_lo:
                    continue
                dst = slice(g0 + j_lo - base, g0 + j_hi - base)
                for f, state in zip(frames, states, strict=True):
                    f[dst] = state[b, j_lo:j_hi].detach().float().cpu()
                valid[dst] = True
                frontier = max(frontier, -(-u1 // hop) - base)
            if on_batch is not None:
                newly = int((done_until <= frontier).sum()) - reported
                if newly > 0 or j == len(segments):
                    on_batch(max(newly, 0))
                    reported += max(newly, 0)
            i = j
        if on_batch is not None and reported < int(has.sum()):
            on_batch(int(has.sum()) - reported)
        # Window means from prefix sums (float64); frames never computed are zero
        # and not counted.
        w_lo = np.clip(lo - base, 0, n_frames)
        w_hi = np.clip(hi - base, 0, n_frames)
        seen = np.concatenate([[0], np.cumsum(valid.numpy(), dtype=np.int64)])
        counts = seen[w_hi] - seen[w_lo]
        ok = has & (counts > 0)
        rows = np.flatnonzero(ok)
        top = torch.from_numpy(w_hi[rows] - 1)
        bottom = torch.from_numpy(w_lo[rows] - 1)
        from_start = bottom < 0
        denominator = torch.from_numpy(counts[rows]).to(torch.float64)[:, None]
        for k, f in enumerate(frames):
            sums = torch.cumsum(f, 0, dtype=torch.float64)
            del f
            below = sums[bottom.clamp_min(0)].masked_fill_(from_start[:, None], 0.0)
            pooled = (sums[top] - below) / denominator
            out[rows, k * model.dim : (k + 1) * model.dim] = pooled.float().numpy()
            frames[k] = torch.empty(0)
    else:
        ok = has
    # No frame inside the window (audio shorter than one receptive field): encode
    # it alone, zero-padded, as per-window mode does.
    for pick, report in ((~has, on_batch), (has & ~ok, None)):
        if pick.any():
            out[pick] = embedder._embed_each_window(audio, starts[pick], window, batch_size, report)
    return out
