"""The :class:`Embedder` contract every model implements.

An embedder maps a batch of mono waveforms at :attr:`Embedder.sample_rate` to
one vector per waveform. The public, final :meth:`Embedder.embed` validates its
input and calls the one abstract method :meth:`Embedder._embed_batch`.

Documented hooks (all optional; README, "Adding a model"):

* :meth:`Embedder.settings`: constructor settings that change the vectors;
  with the weights they make :meth:`Embedder.config` and the cache key.
* :meth:`Embedder.weights_fingerprint`: a digest of the weights (default:
  every torch module, tensor and numpy array the embedder holds).
* :meth:`Embedder.frame_geometry` and :meth:`Embedder.encode_frames`: time
  frames for shared-context encoding; :attr:`Embedder.frame_pooling` says how
  frames become a vector (mean or max).

Layered models (transformer encoders) derive from :class:`LayeredEmbedder`:
"layer k" means the output of block k everywhere, whatever the backend's own
indexing; :meth:`LayeredEmbedder.hidden_states` returns the raw block outputs
and :meth:`Embedder.frame_states` the time frames of chosen blocks.

Sliding windows reach the encoder in one of two ways (:meth:`Embedder.embed_windows`):

* ``encoding="per_window"``: every window is encoded on its own, as if it were
  a clip. With 8 s windows every 1 s, each second of audio goes through the
  encoder eight times.
* ``encoding="shared"``: each stretch of audio is encoded once, in segments of
  :attr:`Embedder.shared_chunk` seconds with at least
  :attr:`Embedder.shared_context` seconds of context on both sides, and a
  window's vector pools the frames whose receptive field lies inside it
  (:mod:`audio_embed.embedders.shared`). Models without a frame geometry are
  encoded per window.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, final

import numpy as np
import torch

from audio_embed.embedders.runtime import (
    CPU_BATCH_BYTES,
    MAX_AUTO_BATCH,
    as_waveform_batch,
    available_cpus,
    available_memory,
    check_cpu_threads,
    default_device,
)
from audio_embed.embedders.shared import (
    FrameGeometry,
    FramePooling,
    min_shared_context,
    pool_frames,
    shared_embed_windows,
)
from audio_embed.errors import InvalidInputError
from audio_embed.types import ScanDefaults, check_sample_rate

__all__ = [
    "CONFIG_VERSION",
    "CPU_BATCH_BYTES",
    "MAX_AUTO_BATCH",
    "Embedder",
    "Encoding",
    "FrameGeometry",
    "FramePooling",
    "LayeredEmbedder",
    "as_waveform_batch",
    "available_cpus",
    "available_memory",
    "check_cpu_threads",
    "config_differences",
    "default_device",
    "fingerprint_files",
    "setting_differences",
]

log = logging.getLogger(__name__)

#: How sliding windows reach the encoder (see the module docstring).
Encoding = Literal["per_window", "shared"]
ENCODINGS: tuple[Encoding, ...] = ("per_window", "shared")


def _check_encoding(encoding: str, owner: str) -> None:
    if encoding not in ENCODINGS:
        raise InvalidInputError(
            f"The 'encoding' parameter of {owner}.embed_windows must be 'per_window' or "
            f"'shared'. Got {encoding!r} instead."
        )


#: Version of the :meth:`Embedder.config` layout.
CONFIG_VERSION = 1
_JSON = dict[str, Any]


_SAME_SIZE_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _digest_tensor(digest: Any, key: str, values: torch.Tensor) -> None:
    """Name, shape, dtype, the first 64 values and a checksum of all of them.

    The checksum adds up the values' bit patterns as integers (wrapping int64
    sums): exact whatever the order, unlike a floating-point sum, which
    changes in its last bits with the thread count, so another process or
    machine would see other weights.
    """
    flat = values.detach().cpu().contiguous().flatten()
    int_type = _SAME_SIZE_INT.get(flat.element_size())
    if int_type is None:  # complex128: no integer of its size
        checksum = hashlib.sha256(flat.numpy().tobytes()).hexdigest()
    else:
        checksum = str(int(flat.view(int_type).to(torch.int64).sum().item()))
    digest.update(f"{key}{tuple(values.shape)}{flat.dtype}{checksum}".encode())
    digest.update(flat[:64].view(torch.uint8).numpy().tobytes())


def fingerprint_files(*paths: str | os.PathLike[str]) -> str:
    """SHA-256 of files' contents, for weights a non-torch runtime loads (``.tflite``, ONNX…).

    Use it in :meth:`Embedder.weights_fingerprint` of such a model.
    """
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _normalise_json(value: Any) -> Any:
    """Plain JSON values: tuples become lists, numpy scalars Python numbers, others strings."""
    if isinstance(value, dict):
        return {str(k): _normalise_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise_json(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value) if isinstance(value, float | np.floating) else int(value)
    return str(value)


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two :meth:`Embedder.config` dicts, one line per field.

    The weight *source* may differ (a local copy of the same checkpoint); the
    fingerprint may not.
    """

    def flat(config: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in config.items() if k not in ("weights", "settings", "version")}
        out.update({f"settings.{k}": v for k, v in (config.get("settings") or {}).items()})
        out["weights.fingerprint"] = (config.get("weights") or {}).get("fingerprint")
        return out

    a, b = flat(_normalise_json(saved)), flat(_normalise_json(current))
    return [
        f"{key}: saved {a.get(key)!r}, this embedder {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


#: Memory a window takes, in multiples of its float32 samples: measured with LOGMEL
#: (session 17 review: about 8 times on the shared path, 25 per window).
WINDOW_MEMORY_FACTOR = 32


def setting_differences(saved: Mapping[str, Any] | None, embedder: Embedder) -> list[str]:
    """The settings (``--model-option``) in which ``embedder`` differs from the saved
    config of the same model, one ``"n_mels: saved 64, this embedder 32"`` each (none
    for another model or no saved config): named where a scanner or index refuses it."""
    from audio_embed.registry import with_saved_defaults

    if saved is None or str(saved.get("name")) != embedder.name:
        return []
    lines = config_differences(with_saved_defaults(saved), with_saved_defaults(embedder.config()))
    return [line.removeprefix("settings.") for line in lines if line.startswith("settings.")]


class Embedder(abc.ABC):
    """Maps batches of mono waveforms to fixed-size vectors.

    Subclasses set (as class attributes or properties) :attr:`name`,
    :attr:`dim`, and optionally :attr:`sample_rate` and :attr:`num_layers`,
    and implement :meth:`_embed_batch`. See the module docstring for the
    optional hooks.
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
    #: Where the weights came from (a path, Hub id or URL), None for the spec's
    #: default weights or a model passed in. Rebuilding from :meth:`config`
    #: passes it back as ``checkpoint``.
    checkpoint: str | None = None

    device: torch.device = torch.device("cpu")
    #: CUDA only: run the model under ``torch.autocast`` with this dtype
    #: (``torch.bfloat16`` or ``torch.float16``); None (default) = float32.
    #: Ignored on CPU. Outputs are always float32.
    autocast_dtype: torch.dtype | None = None
    #: Rough peak activation memory of one forward pass, in bytes per second of
    #: input audio (sizes automatic batches, see :meth:`auto_batch_size`).
    activation_bytes_per_second: int = 8 * 1024 * 1024
    #: Seconds every input is padded to before the model sees it (AST: 10.24,
    #: Whisper: 30), or None when the cost follows the input's length.
    padded_input_seconds: float | None = None
    #: How time frames become one vector, in per-window and shared encoding alike.
    frame_pooling: FramePooling = "mean"
    #: Shared encoding: seconds of audio whose frames one segment produces.
    shared_chunk: float = 20.0
    #: Shared encoding: seconds of extra audio on each side of a segment, raised
    #: to what the frame geometry needs (:func:`~audio_embed.embedders.shared.min_shared_context`).
    shared_context: float = 2.0
    #: Seconds of audio before a window that its vector depends on, besides the
    #: window's own (0: none; LOGMEL's PCEN front end: its smoother's warm-up).
    #: Streaming keeps that much audio before every block's first window, so a
    #: vector never depends on where a block begins.
    lead_in: float = 0.0
    #: Digest of the weights, computed by the first :meth:`weights_fingerprint` call.
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
        Estimated from :attr:`activation_bytes_per_second` times the seconds
        the model really processes (:attr:`padded_input_seconds` when every
        input is padded to a fixed length); between 1 and 64.
        """
        seconds = max(float(seconds), float(self.padded_input_seconds or 0.0), 1e-3)
        per_item = seconds * self.activation_bytes_per_second
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            budget = free // 2
            if self.autocast_dtype in (torch.float16, torch.bfloat16):
                per_item /= 2
        else:
            budget = min(CPU_BATCH_BYTES, available_memory() // 4)
        return int(max(1, min(MAX_AUTO_BATCH, budget // per_item)))

    # ------------------------------------------------------------------ embedding

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
        batch = self.prepare(waveforms, sample_rate)
        check_cpu_threads()
        with torch.inference_mode(), self.autocast():
            out = self._embed_batch(batch)
        return out.detach().float().cpu()

    @final
    def prepare(
        self, waveforms: torch.Tensor | np.ndarray, sample_rate: int | None = None
    ) -> torch.Tensor:
        """Validate ``waveforms`` and return them as a float32 ``[B, N]`` batch on :attr:`device`.

        Checks the sample rate when given, refuses NaN/inf and empty input,
        scales integer PCM and zero-pads inputs shorter than :attr:`min_samples`.
        """
        owner = type(self).__name__
        if sample_rate is not None:
            sample_rate = check_sample_rate(sample_rate, f"{owner}.embed")
        if sample_rate is not None and sample_rate != self.sample_rate:
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

    # ------------------------------------------------------------------ frames

    def frame_geometry(self) -> FrameGeometry | None:
        """Hook: the time-frame grid of :meth:`encode_frames`, or None (default).

        None means no shared-context encoding: windows are encoded one by one.
        """
        return None

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """Hook: time frames of a validated ``[B, N]`` batch on :attr:`device`.

        Returns one ``[B, T, D]`` tensor per 1-based block in ``layers``, or,
        when ``layers`` is None, the frames :meth:`embed` pools (one tensor,
        or several whose pooled vectors are concatenated). Time frames only:
        no CLS/distillation tokens, frequency patches averaged per time step,
        no frames made only of padding. Frame ``t`` lies where
        :meth:`frame_geometry` puts it. Called only when that is not None.
        """
        raise NotImplementedError(f"{type(self).__name__} has no time frames.")

    @final
    def frame_states(
        self,
        waveforms: torch.Tensor | np.ndarray,
        layers: Sequence[int] | None = None,
        sample_rate: int | None = None,
    ) -> list[torch.Tensor]:
        """Time frames ``[B, T, D]`` per requested block (see :meth:`encode_frames`).

        ``layers`` are 1-based block numbers (None: the frames :meth:`embed`
        pools). Pooling them with :meth:`pool` gives the embedding.
        """
        picked = None if layers is None else tuple(int(k) for k in layers)
        if picked is not None:
            total = int(self.num_layers or 0)
            if not picked or not all(1 <= k <= total for k in picked):
                raise InvalidInputError(
                    f"{type(self).__name__} has blocks 1..{total}; cannot give frames of "
                    f"layers {list(picked)}."
                )
        batch = self.prepare(waveforms, sample_rate)
        check_cpu_threads()
        with torch.inference_mode(), self.autocast():
            states = self.encode_frames(batch, picked)
        return [s.detach().float() for s in states]

    def pool(self, frames: torch.Tensor) -> torch.Tensor:
        """Pool ``[B, T, D]`` time frames to ``[B, D]`` with :attr:`frame_pooling`."""
        return pool_frames(frames, self.frame_pooling)

    def shared_settings(self) -> dict[str, float]:
        """What shared encoding does with this embedder: ``{}`` when it has no frames.

        Otherwise ``{"chunk": seconds, "context": seconds}``, the context raised
        to what the frame geometry needs. The :class:`~audio_embed.Scanner` keys
        its cache with it and keeps ``context`` seconds of audio on both sides
        of its streaming block boundaries.
        """
        geometry = self.frame_geometry()
        if geometry is None:
            return {}
        geometry.check(type(self).__name__)
        least = min_shared_context(geometry) / self.sample_rate
        context = max(float(self.shared_context), least)
        return {"chunk": float(self.shared_chunk), "context": context}

    def scan_defaults(self) -> ScanDefaults:
        """Hook: scan settings measured best for this model (window, hop, classifier,
        context, detection extent); a :class:`~audio_embed.Scanner` uses each one its
        caller leaves unset. The default sets none: the library's generic defaults."""
        return ScanDefaults()

    # ------------------------------------------------------------------ identity

    def settings(self) -> dict[str, Any]:
        """Hook: constructor settings (JSON values) that change the vectors.

        Passed back to the registry factory when a saved scanner rebuilds this
        embedder (:func:`~audio_embed.registry.embedder_from_config`), so the
        keys must be keyword arguments of the factory.
        """
        return {}

    def weights_fingerprint(self) -> str:
        """Hook: a digest of the weights (computed once).

        The default reads every ``torch.nn.Module``, tensor and numpy array
        held in the embedder's attributes (each tensor's name, shape, sum and
        first values). A model run by another runtime overrides it, e.g. with
        :func:`fingerprint_files` of its model file.
        """
        if self._weights_digest is None:
            digest = hashlib.sha256()
            with torch.no_grad():
                for attr, value in sorted(vars(self).items()):
                    if isinstance(value, torch.nn.Module):
                        for key, tensor in value.state_dict().items():
                            _digest_tensor(digest, f"{attr}.{key}", tensor)
                    elif isinstance(value, torch.Tensor):
                        _digest_tensor(digest, attr, value)
                    elif isinstance(value, np.ndarray) and value.dtype != object:
                        _digest_tensor(digest, attr, torch.from_numpy(np.asarray(value, float)))
            self._weights_digest = digest.hexdigest()
        return self._weights_digest

    def config(self) -> dict[str, Any]:
        """JSON describing everything that changes this embedder's vectors.

        ``name`` (registry name), ``class``, ``dim``, ``sample_rate``,
        ``settings`` (:meth:`settings`), ``layers`` (blocks concatenated, or
        None), ``frame_pooling``, ``shared`` (chunk and context, when the model
        has frames) and ``weights``: ``source`` (:attr:`checkpoint`) and
        ``fingerprint`` (:meth:`weights_fingerprint`). A saved scanner stores
        it, rebuilds the embedder from it and refuses a mismatch.
        """
        config: dict[str, Any] = {
            "version": CONFIG_VERSION,
            "name": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "dim": int(self.dim),
            "sample_rate": int(self.sample_rate),
            "settings": self.settings(),
            "layers": None,
            "frame_pooling": self.frame_pooling,
            "shared": self.shared_settings() or None,
            "weights": {"source": self.checkpoint, "fingerprint": self.weights_fingerprint()},
        }
        return dict(_normalise_json(config))

    def cache_id(self) -> str:
        """A string that changes whenever this embedder's output would change.

        ``name:dim:`` and a digest of :meth:`config` (settings, layers, pooling
        and the weights' fingerprint, whatever runtime runs them), so two
        checkpoints, two random seeds or two pooling modes never share cache
        entries. The weight source is left out: a local copy of the same
        weights shares entries.
        """
        config = self.config()
        config["weights"] = {"fingerprint": config["weights"]["fingerprint"]}
        blob = json.dumps(config, sort_keys=True).encode()
        return f"{self.name}:{self.dim}:{hashlib.sha256(blob).hexdigest()[:16]}"

    # ------------------------------------------------------------------ windows

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
        the audio once and pools frames per window (models with a
        :meth:`frame_geometry`); other embedders encode per window.
        """
        _check_encoding(encoding, type(self).__name__)
        self._check_window_fits(window)
        if encoding == "shared" and self.frame_geometry() is not None:
            return shared_embed_windows(
                self, audio, starts, window, batch_size=batch_size, on_batch=on_batch
            )
        return self._embed_each_window(audio, starts, window, batch_size, on_batch)

    def _check_window_fits(self, window: float) -> None:
        """Refuse a window that would take more than the free memory (``--window
        100000``, seconds typed for milliseconds): every window is held whole,
        zero-padded past the end of the audio, and its features several times over,
        about :data:`WINDOW_MEMORY_FACTOR` times its float32 samples (before: LOGMEL
        took 22 GB for a two-minute recording)."""
        need = WINDOW_MEMORY_FACTOR * 4 * round(float(window) * self.sample_rate)
        free = available_memory()
        if need > free:
            raise InvalidInputError(
                f"A window of {window:g} s needs about {need / 1e9:.3g} GB at "
                f"{self.sample_rate} Hz (its audio, zero-padded past the recording's end, "
                f"and what is computed from it), more than the {free / 1e9:.2g} GB of "
                "memory free: it cannot be embedded. A window is about as long as the "
                "sound to find (the default is 1 s; a song: a few minutes)."
            )

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

    # ------------------------------------------------------------------ device

    def to(self, device: str | torch.device) -> Embedder:
        """Move the model, and every tensor the embedder holds, to ``device``; return ``self``."""
        self.device = torch.device(device)
        for attr, value in list(vars(self).items()):
            if isinstance(value, torch.nn.Module):
                value.to(self.device)
            elif isinstance(value, torch.Tensor):
                setattr(self, attr, value.to(self.device))
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.device})"


class LayeredEmbedder(Embedder):
    """An embedder whose model is a stack of transformer blocks.

    Subclasses implement :meth:`_hidden_states` (which must stop after
    ``num_layers`` blocks, so callers never pay for blocks they do not use)
    and, for the frame contract, :meth:`~Embedder.encode_frames` and
    :meth:`~Embedder.frame_geometry`.

    Where the final norm belongs: the output of the *last* block, as
    :meth:`~Embedder.frame_states` and the embedding see it, includes the
    encoder's final normalisation when the model has one (pre-LN wav2vec2 /
    HuBERT / WavLM large models, AST, BEATs with ``layer_norm_first``): that is
    the model's own output (``model(x)``, transformers' ``last_hidden_state``).
    So the last slice of an ``_ML`` embedding that selects the last block equals
    the plain embedding. :meth:`hidden_states` returns the raw block outputs,
    as the backend computes them.
    """

    num_layers: int | None = 0

    @final
    def hidden_states(
        self,
        waveforms: torch.Tensor | np.ndarray,
        num_layers: int | None = None,
        sample_rate: int | None = None,
    ) -> list[torch.Tensor]:
        """Raw outputs of blocks 1..``num_layers`` (all when None), each ``[B, T, D]``.

        Element ``k - 1`` of the list is the output of block ``k``.
        """
        total = int(self.num_layers or 0)
        n = total if num_layers is None else int(num_layers)
        if not 1 <= n <= total:
            raise InvalidInputError(
                f"The 'num_layers' parameter of {type(self).__name__}.hidden_states must be "
                f"in [1, {total}]. Got {num_layers!r} instead."
            )
        batch = self.prepare(waveforms, sample_rate)
        check_cpu_threads()
        with torch.inference_mode(), self.autocast():
            states = self._hidden_states(batch, n)
        return [s.detach().float() for s in states[:n]]

    @abc.abstractmethod
    def _hidden_states(self, waveforms: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
        """Block outputs 1..num_layers for a validated batch on :attr:`device`."""

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """Default frames: the raw block outputs (models whose tokens are time frames)."""
        depth = int(self.num_layers or 0)
        picked = (depth,) if layers is None else layers
        states = self._hidden_states(waveforms, max(picked))
        return [states[k - 1] for k in picked]

    def embed_layers(
        self, waveforms: torch.Tensor | np.ndarray, layers: Sequence[int]
    ) -> torch.Tensor:
        """The pooled frames of each block in ``layers``, concatenated: ``[B, len(layers)·dim]``.

        What :class:`~audio_embed.MultiLayerEmbedder` returns. Models whose
        embedding is not a pooling of frames (EAT's ``pooling="cls"``) override it.
        """
        states = self.frame_states(waveforms, layers)
        return torch.cat([self.pool(s) for s in states], dim=-1)

    @property
    def embedding_layer(self) -> int:
        """The block (1-based) whose pooled frames :meth:`embed` returns: the last,
        unless a model was measured to do better with another (Whisper tiny.en: 2)."""
        return int(self.num_layers or 0)

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Default embedding: the pooled frames of block :attr:`embedding_layer`."""
        return self.pool(self.encode_frames(waveforms, (self.embedding_layer,))[0])
