"""Multi-layer embeddings: mean-pooled block outputs, concatenated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from audio_embed.embedders.base import (
    Embedder,
    LayeredEmbedder,
    shared_embed_windows,
)
from audio_embed.errors import InvalidInputError

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
    from audio_embed.registry import quartile_layers

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
    """Concatenate the time-averaged outputs of several blocks of a layered model.

    Runs only the blocks it needs (up to the deepest selected one). Shared
    encoding (``embed_windows(..., encoding="shared")``) uses the base model's
    frame hooks with the selected blocks, so ``_ML`` variants are shared too.

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
        self.name = base.name + "_ML"
        self.sample_rate = base.sample_rate
        self.min_samples = base.min_samples
        self.dim = base.dim * len(self.layers)
        self.device = base.device
        self.activation_bytes_per_second = base.activation_bytes_per_second

    def to(self, device: str | torch.device) -> MultiLayerEmbedder:
        self.base.to(device)
        self.device = self.base.device
        return self

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The base model's (setting it sets the base model's)."""
        return self.base.autocast_dtype

    @autocast_dtype.setter
    def autocast_dtype(self, value: torch.dtype | None) -> None:
        self.base.autocast_dtype = value

    def shared_settings(self) -> dict[str, float]:
        return self.base.shared_settings()

    def _embed_shared(
        self,
        audio: np.ndarray,
        starts: np.ndarray,
        window: float,
        batch_size: int | None,
        on_batch: Callable[[int], None] | None,
    ) -> np.ndarray | None:
        return shared_embed_windows(
            self, self.base, self.layers, audio, starts, window, batch_size, on_batch
        )

    def cache_id(self) -> str:
        return f"{self.base.cache_id()}:layers={','.join(map(str, self.layers))}"

    def _embed_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        states = self.base._hidden_states(waveforms, max(self.layers))
        return torch.cat([self.base.pool(states[k - 1]) for k in self.layers], dim=-1)
