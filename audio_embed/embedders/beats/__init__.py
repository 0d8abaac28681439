"""BEATs (Chen et al., 2022, "Audio Pre-Training with Acoustic Tokenizers"), natively.

A from-scratch PyTorch implementation of the BEATs encoder whose state dict has
exactly the key names and shapes of the official checkpoints (``microsoft/unilm``,
folder ``beats/``), so a released ``.pt`` file loads strictly. It was checked
number for number against the reference code with the random-weight vectors in
``tests/data/beats_tiny*``.

The parts:

* :class:`BEATsConfig`: the official ``cfg`` dict as a frozen value.
* :class:`BEATsFeatureExtractor`: waveform → normalised Kaldi fbank (kept apart
  from the model, as transformers keeps feature extractors apart).
* :class:`BEATsModel`: fbank → patch tokens → transformer encoder (→ the
  AudioSet predictor head for fine-tuned checkpoints).
* :class:`BEATsEmbedder`: the library's :class:`LayeredEmbedder` over both.

What the architecture does, in short:

* 16×16 patches of the ``[frames, 128]`` fbank, flattened **time-major**
  (token ``t·8 + f``), LayerNorm over the patch channels, then a linear
  projection to the encoder width. There is no CLS token.
* A weight-normalised grouped convolution over the token sequence adds a
  relative positional signal before the first block.
* Post-LN "deep-norm" blocks: ``x = LN(α·x + Attn(x))``, ``x = LN(α·x + FFN(x))``
  with ``α = (2·layers)^¼``.
* Attention logits get a bucketed relative-position bias (T5-style, log-spaced
  buckets), computed once from layer 0's table and gated per layer and per query
  by a small GRU-like gate (``gru_rel_pos``).

Training-only behaviour (layer drop, layer-wise gradient decay) is not
implemented: the model is for inference. Dropout is applied in ``train()`` mode.

The package: ``config`` (settings), ``features`` (preprocessing), ``network``
(the native model), ``checkpoint`` (loading); this module holds the embedder
and its registry specs, and re-exports the public names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from audio_embed.embedders.base import FrameGeometry, LayeredEmbedder, default_device
from audio_embed.embedders.beats.checkpoint import load_beats_checkpoint
from audio_embed.embedders.beats.config import (
    DEFAULT_CHECKPOINT_NAME,
    OFFICIAL_PAGE,
    BEATsConfig,
    default_checkpoint_path,
)
from audio_embed.embedders.beats.features import BEATsFeatureExtractor, forward_padding_mask
from audio_embed.embedders.beats.network import BEATsModel, BEATsOutput, relative_position_bucket
from audio_embed.errors import CheckpointError, InvalidInputError
from audio_embed.registry import EmbedderSpec, declare_settings, register_embedder

__all__ = [
    "DEFAULT_CHECKPOINT_NAME",
    "BEATsConfig",
    "BEATsEmbedder",
    "BEATsFeatureExtractor",
    "BEATsModel",
    "BEATsOutput",
    "default_checkpoint_path",
    "forward_padding_mask",
    "load_beats_checkpoint",
    "relative_position_bucket",
]


class BEATsEmbedder(LayeredEmbedder):
    """BEATs as an :class:`Embedder`: the mean over tokens of the encoder output.

    Args:
        checkpoint: an official BEATs ``.pt`` file, as a local path or an https
            URL (downloaded once into torch hub's ``checkpoints`` folder). When
            None (and no ``model``), :func:`default_checkpoint_path` is used:
            ``BEATs_iter3_plus_AS2M.pt`` in torch hub's checkpoints folder.
        model: an already built :class:`BEATsModel` (tests and benchmarks use
            random-weight ones, see :meth:`from_config`).
        device: where to run; CUDA when present by default.
        feature_extractor: the fbank front end; the official settings by default.

    :meth:`hidden_states` returns the outputs of blocks 1..n (``[B, T, D]``,
    T = 8 tokens per 16 fbank frames, time-major) and runs only those blocks.
    The AudioSet predictor head of fine-tuned checkpoints is not used.
    """

    name = "BEATS"
    source: ClassVar[str] = OFFICIAL_PAGE
    #: Shorter segments than the default: the gated relative-position bias is
    #: computed densely, so attention grows faster with length than in wav2vec2.
    shared_chunk = 12.0

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        model: BEATsModel | None = None,
        device: str | torch.device | None = None,
        feature_extractor: BEATsFeatureExtractor | None = None,
    ) -> None:
        if model is not None and checkpoint is not None:
            raise InvalidInputError("BEATsEmbedder takes either 'checkpoint' or 'model', not both.")
        if model is None:
            if checkpoint is None:
                checkpoint = default_checkpoint_path()
                if not Path(checkpoint).is_file():
                    raise CheckpointError(
                        f"The BEATs checkpoint {DEFAULT_CHECKPOINT_NAME} was not found at "
                        f"{checkpoint}. Download 'BEATs_iter3+ (AS2M) (cpt2)' from the "
                        f"official list at {OFFICIAL_PAGE} and save it there, or pass "
                        "checkpoint=<path or https URL of a BEATs .pt file>."
                    )
            model = load_beats_checkpoint(checkpoint)
            if os.fspath(checkpoint) != os.fspath(default_checkpoint_path()):
                self.checkpoint = os.fspath(checkpoint)
        elif not isinstance(model, BEATsModel):
            raise InvalidInputError(
                f"The 'model' parameter of BEATsEmbedder must be a BEATsModel. "
                f"Got {type(model).__name__} instead."
            )
        self.model = model.eval()
        self.feature_extractor = feature_extractor or BEATsFeatureExtractor()
        cfg = model.cfg
        self.dim = cfg.encoder_embed_dim
        self.num_layers = cfg.encoder_layers
        self.sample_rate = self.feature_extractor.sample_rate
        self.min_samples = self.feature_extractor.min_samples(cfg.input_patch_size)
        self.to(device or default_device())

    @classmethod
    def from_config(
        cls,
        cfg: BEATsConfig | Mapping[str, Any] | None = None,
        *,
        seed: int | None = 0,
        device: str | torch.device | None = None,
    ) -> BEATsEmbedder:
        """A random-weight embedder of the given architecture (tests, benchmarks).

        ``seed`` makes the weights reproducible without touching the global RNG.
        """
        if seed is None:
            model = BEATsModel(cfg)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = BEATsModel(cfg)
        return cls(model=model, device=device)

    @property
    def model_config(self) -> BEATsConfig:
        """The network's architecture (:class:`BEATsConfig`)."""
        return self.model.cfg

    def weights_fingerprint(self) -> str:
        """The weights and the fbank settings."""
        import hashlib

        blob = super().weights_fingerprint() + repr(self.feature_extractor)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _fbank(self, waveforms: Tensor) -> Tensor:
        return self.feature_extractor(waveforms)

    def _hidden_states(self, waveforms: Tensor, num_layers: int) -> list[Tensor]:
        out = self.model.extract_features(
            self._fbank(waveforms), num_layers=num_layers, predict=False
        )
        return out.hidden_states[:num_layers]

    def frame_geometry(self) -> FrameGeometry:
        """One frame per time patch: 16 fbank frames (hop 2560 samples, field 2800)."""
        fe, patch = self.feature_extractor, self.model.cfg.input_patch_size
        return FrameGeometry(
            hop=patch * fe.frame_shift, field=fe.frame_length + (patch - 1) * fe.frame_shift
        )

    def encode_frames(self, waveforms: Tensor, layers: tuple[int, ...] | None) -> list[Tensor]:
        """Tokens averaged over the frequency patches of each time patch (time-major
        order); the last block's are the encoder output (final LayerNorm included
        for ``layer_norm_first`` models).

        The mean of these over a window's time patches is the mean over all its tokens.
        """
        depth = int(self.num_layers or 0)
        picked = (depth,) if layers is None else layers
        out = self.model.extract_features(
            self._fbank(waveforms), num_layers=max(picked), predict=False
        )
        chosen = [out.features if k == depth else out.hidden_states[k - 1] for k in picked]
        freq = self.feature_extractor.num_mel_bins // self.model.cfg.input_patch_size
        return [s.reshape(s.shape[0], -1, freq, s.shape[-1]).mean(dim=2) for s in chosen]


def _beats(**kwargs: Any) -> BEATsEmbedder:
    return BEATsEmbedder(**kwargs)


declare_settings(_beats, BEATsEmbedder)


def _beats_available() -> bool:
    return Path(default_checkpoint_path()).is_file()


register_embedder(
    EmbedderSpec(
        name="BEATS",
        factory=_beats,
        dim=768,
        num_layers=12,
        source=f"{DEFAULT_CHECKPOINT_NAME} (microsoft/unilm)",
        license="MIT",
        description="BEATs iter3+ (AS-2M fine-tuned), mean of the encoder output over time",
        weights_available=_beats_available,
    )
)
