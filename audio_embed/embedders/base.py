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
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import final

import numpy as np
import torch

from audio_embed.errors import InvalidInputError

__all__ = ["Embedder", "LayeredEmbedder", "as_waveform_batch", "default_device"]


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
        with torch.inference_mode():
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

        The embedding cache keys entries with it. The default is the name and
        dimension; subclasses with settings that change the output (a checkpoint,
        a pooling mode) add them.
        """
        return f"{self.name}:{self.dim}"

    def embed_windows(
        self,
        audio: np.ndarray,
        starts: np.ndarray,
        window: float,
        *,
        batch_size: int = 16,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed windows of ``window`` seconds starting at ``starts`` (seconds) in ``audio``.

        ``audio`` is mono at :attr:`sample_rate`. A window reaching past the
        end of ``audio`` is zero-padded. Returns float32 ``[len(starts), dim]``.
        ``on_batch(n)`` is called after each batch of ``n`` windows (progress,
        cancellation).
        """
        length = round(window * self.sample_rate)
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
    """

    num_layers: int | None = 0

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
        with torch.inference_mode():
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
