"""Multi-layer embeddings: pooled block outputs, concatenated (the ``_ML`` variants)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from audio_embed.embedders.base import Embedder, FrameGeometry, LayeredEmbedder
from audio_embed.errors import InvalidInputError
from audio_embed.registry import ML_SUFFIX, quartile_layers, register_layer_selector
from audio_embed.types import ScanDefaults

__all__ = ["MultiLayerEmbedder", "resolve_layers"]


def resolve_layers(
    layers: Literal["quartiles", "all"] | int | Sequence[int], num_layers: int
) -> tuple[int, ...]:
    """Turn a layer selection into sorted-as-given 1-based block numbers.

    Follows timm's ``feature_take_indices`` rules: ``"all"`` (or None) = every
    block, an int n = the last n blocks, a sequence = those blocks (1-based;
    negative numbers count from the end, -1 = the last block), ``"quartiles"``
    = blocks n/4, n/2, 3n/4, n.
    """
    if layers == "quartiles":
        return quartile_layers(num_layers)
    if layers == "all":
        return tuple(range(1, num_layers + 1))
    if isinstance(layers, int):
        if not 1 <= layers <= num_layers:
            raise InvalidInputError(
                f"The 'layers' parameter of MultiLayerEmbedder must be in [1, {num_layers}] "
                f"when an int (the last n blocks). Got {layers} instead."
            )
        return tuple(range(num_layers - layers + 1, num_layers + 1))
    picked = []
    for k in layers:
        block = int(k) + num_layers + 1 if int(k) < 0 else int(k)
        if not 1 <= block <= num_layers:
            raise InvalidInputError(
                f"Layer {k} does not exist: the model has blocks 1..{num_layers} "
                "(layer k = output of block k; -1 = the last)."
            )
        picked.append(block)
    if not picked:
        raise InvalidInputError("The 'layers' parameter of MultiLayerEmbedder is empty.")
    return tuple(picked)


class MultiLayerEmbedder(Embedder):
    """Concatenate the pooled time frames of several blocks of a layered model.

    Runs only the blocks it needs (up to the deepest selected one), through the
    base model's public :meth:`~Embedder.frame_states` / ``embed_layers``.
    Shared encoding uses the same frames, so ``_ML`` variants are shared too.
    Everything else (sample rate, device, autocast, frame geometry, pooling,
    shared chunk and context) is the base model's, read and set through it.

    Args:
        base: any :class:`LayeredEmbedder`.
        layers: ``"quartiles"`` (default), ``"all"``, the last n blocks (int) or
            explicit 1-based block numbers.
    """

    def __init__(
        self,
        base: Embedder,
        layers: Literal["quartiles", "all"] | int | Sequence[int] = "quartiles",
    ) -> None:
        if not isinstance(base, LayeredEmbedder) or not base.num_layers:
            raise InvalidInputError(
                f"MultiLayerEmbedder needs a layered embedder (one with hidden_states). "
                f"{type(base).__name__} ({base.name}) has no layers to pick."
            )
        self.base = base
        self.layers = resolve_layers(layers, int(base.num_layers))
        self.name = base.name + ML_SUFFIX
        self.dim = base.dim * len(self.layers)

    # Everything but the name, dim and layers is the base model's.
    sample_rate = property(lambda self: self.base.sample_rate)
    min_samples = property(lambda self: self.base.min_samples)
    checkpoint = property(lambda self: self.base.checkpoint)
    device = property(lambda self: self.base.device)
    activation_bytes_per_second = property(lambda self: self.base.activation_bytes_per_second)
    padded_input_seconds = property(lambda self: self.base.padded_input_seconds)
    frame_pooling = property(lambda self: self.base.frame_pooling)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The base model's (setting it sets the base model's)."""
        return self.base.autocast_dtype

    @autocast_dtype.setter
    def autocast_dtype(self, value: torch.dtype | None) -> None:
        self.base.autocast_dtype = value

    @property
    def shared_chunk(self) -> float:
        """The base model's (setting it sets the base model's)."""
        return self.base.shared_chunk

    @shared_chunk.setter
    def shared_chunk(self, value: float) -> None:
        self.base.shared_chunk = value

    @property
    def shared_context(self) -> float:
        """The base model's (setting it sets the base model's)."""
        return self.base.shared_context

    @shared_context.setter
    def shared_context(self, value: float) -> None:
        self.base.shared_context = value

    def to(self, device: str | torch.device) -> MultiLayerEmbedder:
        self.base.to(device)
        return self

    def frame_geometry(self) -> FrameGeometry | None:
        return self.base.frame_geometry()

    def encode_frames(
        self, waveforms: torch.Tensor, layers: tuple[int, ...] | None
    ) -> list[torch.Tensor]:
        """The base model's frames of the selected blocks (``layers`` must be None)."""
        if layers is not None:
            raise InvalidInputError(
                f"{self.name} has no layers of its own to pick; ask its base model."
            )
        return self.base.frame_states(waveforms, self.layers)

    def settings(self) -> dict[str, Any]:
        return self.base.settings()

    def scan_defaults(self) -> ScanDefaults:
        """The base model's window, hop and classifier (they were measured on its
        default embedding, not on these blocks)."""
        return self.base.scan_defaults()

    def weights_fingerprint(self) -> str:
        return self.base.weights_fingerprint()

    def config(self) -> dict[str, Any]:
        """The base model's config, with this name and dim and ``layers`` set."""
        config = self.base.config()
        config.update(
            name=self.name,
            dim=int(self.dim),
            layers=list(self.layers),
            **{"class": f"{type(self).__module__}.{type(self).__qualname__}"},
        )
        return config

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.base.embed_layers(waveforms, self.layers)


def _select_layers(base: Embedder, layers: Sequence[int] | str | int) -> MultiLayerEmbedder:
    picked: Any = layers
    return MultiLayerEmbedder(base, picked)


register_layer_selector(_select_layers)
